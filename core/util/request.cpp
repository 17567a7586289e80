#include "util/request.hpp"

#include <algorithm>

#include "util/encode.hpp"

namespace ossshim {

const std::string* Request::header(std::string_view name) const {
  for (const auto& h : headers)
    if (util::iequals(h.name, name)) return &h.value;
  return nullptr;
}

void Request::set_header(std::string_view name, std::string_view value) {
  for (auto& h : headers)
    if (util::iequals(h.name, name)) {
      h.value = std::string(value);
      return;
    }
  headers.push_back({std::string(name), std::string(value)});
}

void Request::remove_header(std::string_view name) {
  std::erase_if(headers, [&](const Header& h) { return util::iequals(h.name, name); });
}

const QueryParam* Request::query_param(std::string_view name) const {
  for (const auto& q : query)
    if (q.name == name) return &q;
  return nullptr;
}

}  // namespace ossshim
