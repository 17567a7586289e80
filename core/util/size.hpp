// Human sizes: "16g", "512m", "64k", "1024", "1.5g" (powers of 1024; suffix b/k/m/g/t, optional "ib"/"b").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ossshim::util {

std::optional<std::uint64_t> parse_size(std::string_view text);
std::string format_size(std::uint64_t bytes);  // "1.5 GiB"

}  // namespace ossshim::util
