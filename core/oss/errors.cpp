#include "oss/errors.hpp"

#include <cerrno>

namespace ossshim::oss {

namespace {

// A store that refuses a write for a quota (a limit someone set) -> EDQUOT. Alibaba's OSS documents
// no such code: its buckets have no capacity limit ("The storage capacity of a bucket is unlimited",
// alibabacloud.com/help/en/oss/support/http-400-status-code, TooManyBuckets). S3-compatible stores do:
//   QuotaExceeded, 403: Ceph RGW (src/rgw/rgw_common.cc: ERR_QUOTA_EXCEEDED), versitygw
//     (github.com/versity/versitygw/pull/503), CSC Allas (docs/cloud/object-storage-error-msgs.md);
//   XMinioAdminBucketQuotaExceeded, 400: MinIO bucket quota (cmd/api-errors.go ErrAdminBucketQuotaExceeded);
//   InsufficientStorageSpace, 403: Huawei OBS, a bucket over its storage quota
//     (support.huaweicloud.com/api-obs/obs_04_0052.html, obs_errorcode_0008).
bool quota_code(std::string_view code) {
  return code == "QuotaExceeded" || code == "XMinioAdminBucketQuotaExceeded" ||
         code == "InsufficientStorageSpace";
}

// A store that is out of space -> ENOSPC. HTTP 507 Insufficient Storage (RFC 4918 11.5): MinIO's
// XMinioStorageFull ("Storage backend has reached its minimum free drive threshold", cmd/api-errors.go
// ErrStorageFull), Dell ECS ("Error Code: Insufficient Storage", EMCECS/ECS-CommunityEdition#126).
bool space_code(std::string_view code) {
  return code == "XMinioStorageFull" || code == "InsufficientStorage";
}

}  // namespace

int errno_for(int http_status, std::string_view code) {
  if (quota_code(code)) return EDQUOT;
  if (space_code(code) || http_status == 507) return ENOSPC;
  if (code == "FileAlreadyExists") return EEXIST;
  if (code == "PreconditionFailed" || http_status == 412) return ESTALE;
  if (code == "EntityTooLarge" || http_status == 413) return EFBIG;
  // The body did not arrive as sent (Content-MD5 mismatch: OSS says InvalidDigest, error
  // 0017-00000503; S3 says BadDigest): an I/O error, not a bad argument.
  if (code == "InvalidDigest" || code == "BadDigest") return EIO;
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
