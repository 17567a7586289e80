#include "oss/errors.hpp"

#include <cerrno>

namespace ossshim::oss {

int errno_for(int http_status, std::string_view code) {
  if (code == "QuotaExceeded" || code == "UserQuotaExceeded" || code == "BucketQuotaExceeded") return EDQUOT;
  if (code == "InsufficientStorage" || code == "NotEnoughSpace" || http_status == 507) return ENOSPC;
  if (code == "FileAlreadyExists") return EEXIST;
  if (code == "PreconditionFailed" || http_status == 412) return ESTALE;
  if (code == "EntityTooLarge") return EFBIG;
  switch (http_status) {
    case 0:
      return EIO;
    case 400:
      return EINVAL;
    case 401:
    case 403:
      return EACCES;
    case 404:
      return ENOENT;
    case 405:
      return EPERM;
    case 408:
      return ETIMEDOUT;
    case 409:
      return EBUSY;
    case 416:
      return EINVAL;
    case 501:
      return ENOSYS;
    default:
      break;
  }
  if (http_status >= 500) return EIO;
  if (http_status >= 300) return EIO;
  return 0;
}

}  // namespace ossshim::oss
