#include "vfs/path.hpp"

#include <vector>

namespace ossshim::vfs {

std::string normalize(std::string_view absolute) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < absolute.size()) {
    while (i < absolute.size() && absolute[i] == '/') ++i;
    std::size_t j = absolute.find('/', i);
    if (j == std::string_view::npos) j = absolute.size();
    std::string_view seg = absolute.substr(i, j - i);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    i = j;
  }
  std::string out;
  for (auto seg : parts) {
    out += '/';
    out += seg;
  }
  return out.empty() ? "/" : out;
}

bool parse(std::string_view prefix, std::string_view absolute, VPath& out) {
  std::string norm = normalize(absolute);
  if (norm.size() < prefix.size() || norm.compare(0, prefix.size(), prefix) != 0) return false;
  if (norm.size() > prefix.size() && norm[prefix.size()] != '/') return false;
  std::string_view rest = std::string_view(norm).substr(prefix.size());
  if (!rest.empty()) rest.remove_prefix(1);
  std::size_t slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  out.key = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  return true;
}

std::string to_string(std::string_view prefix, const VPath& p) {
  std::string s(prefix);
  if (!p.bucket.empty()) s += "/" + p.bucket;
  if (!p.key.empty()) s += "/" + p.key;
  return s;
}

VPath parent_of(const VPath& p) {
  VPath up = p;
  auto slash = up.key.rfind('/');
  up.key = slash == std::string::npos ? "" : up.key.substr(0, slash);
  return up;
}

}  // namespace ossshim::vfs
