#include "util/size.hpp"

#include <cmath>
#include <cstdio>

#include "util/encode.hpp"

namespace ossshim::util {

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::string s = to_lower(trim(text));
  if (s.empty()) return std::nullopt;
  std::size_t i = 0;
  bool dot = false;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '.' && !dot))) {
    if (s[i] == '.') dot = true;
    ++i;
  }
  if (i == 0 || s[0] == '.') return std::nullopt;
  std::string number = s.substr(0, i);
  std::string unit(trim(std::string_view(s).substr(i)));
  double mult = 1;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else {
    static const char kUnits[] = "kmgt";
    std::size_t u = std::string_view(kUnits).find(unit[0]);
    std::string rest = unit.substr(1);
    if (u == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib")) return std::nullopt;
    for (std::size_t k = 0; k <= u; ++k) mult *= 1024;  // exact powers of two; no libm in the shim
  }
  double value = std::strtod(number.c_str(), nullptr) * mult;
  if (!std::isfinite(value) || value >= 18446744073709551615.0) return std::nullopt;
  return static_cast<std::uint64_t>(value);
}

std::string format_size(std::uint64_t bytes) {
  static const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024 && i < 5) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  if (i == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kNames[i]);
  return buf;
}

}  // namespace ossshim::util
