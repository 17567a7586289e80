// Time formats of the OSS/S3 protocols. All UTC.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace ossshim::util {

std::string format_rfc1123(std::time_t t);        // "Wed, 28 Dec 2022 10:27:41 GMT"
std::string format_iso8601_basic(std::time_t t);  // "20231216T162057Z"
std::string format_iso8601_ms(std::time_t t);     // "2020-05-18T05:45:43.000Z"
std::optional<std::time_t> parse_rfc1123(std::string_view s);
std::optional<std::time_t> parse_iso8601_basic(std::string_view s);
std::optional<std::time_t> parse_iso8601(std::string_view s);  // "2020-05-18T05:45:43.000Z" / without millis

}  // namespace ossshim::util
