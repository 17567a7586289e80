// HTTP status + OSS error code -> errno, one table (DESIGN.md principle 7).
#pragma once

#include <string_view>

namespace ossshim::oss {

// 404 -> ENOENT, 403 -> EACCES, 416 -> EINVAL, 412 -> ESTALE, 409 -> EEXIST/EBUSY by code,
// 400 -> EINVAL, 413/EntityTooLarge -> EFBIG, InvalidDigest/BadDigest -> EIO, 5xx -> EIO,
// quota codes -> EDQUOT, out-of-space codes and 507 -> ENOSPC (sources in errors.cpp),
// 0 (no response) -> EIO.
int errno_for(int http_status, std::string_view oss_code);

}  // namespace ossshim::oss
