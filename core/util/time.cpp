#include "util/time.hpp"

#include <cstdio>
#include <cstring>

namespace ossshim::util {

namespace {
std::string format(std::time_t t, const char* fmt) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, fmt, &tm);
  return std::string(buf, n);
}

// strptime honours the C locale's names, which is what HTTP dates use.
std::optional<std::time_t> parse(std::string_view s, const char* fmt) {
  std::string text(s);
  std::tm tm{};
  const char* end = strptime(text.c_str(), fmt, &tm);
  if (end == nullptr) return std::nullopt;
  return timegm(&tm);
}
}  // namespace

std::string format_rfc1123(std::time_t t) {
  return format(t, "%a, %d %b %Y %H:%M:%S GMT");
}
std::string format_iso8601_basic(std::time_t t) {
  return format(t, "%Y%m%dT%H%M%SZ");
}
std::string format_iso8601_ms(std::time_t t) {
  return format(t, "%Y-%m-%dT%H:%M:%S.000Z");
}

std::optional<std::time_t> parse_rfc1123(std::string_view s) {
  return parse(s, "%a, %d %b %Y %H:%M:%S GMT");
}

std::optional<std::time_t> parse_iso8601_basic(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  return parse(s, "%Y%m%dT%H%M%SZ");
}

std::optional<std::time_t> parse_iso8601(std::string_view s) {
  // "2020-05-18T05:45:43.000Z" or "2020-05-18T05:45:43Z"; fractional seconds are dropped.
  if (s.size() < 20) return std::nullopt;
  return parse(s.substr(0, 19), "%Y-%m-%dT%H:%M:%S");
}

}  // namespace ossshim::util
