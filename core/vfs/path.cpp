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

namespace {
std::vector<std::string_view> segments(std::string_view s) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = s.find('/', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}
}  // namespace

bool link_target_key(std::string_view link_key, std::string_view text, std::string& key) {
  if (text.empty()) return false;
  std::vector<std::string_view> parts;
  if (text[0] != '/') {
    parts = segments(link_key);
    if (!parts.empty()) parts.pop_back();  // the link's own name
  }
  for (auto seg : segments(text)) {
    if (seg == ".") continue;
    if (seg == "..") {
      if (parts.empty()) return false;  // above the bucket
      parts.pop_back();
    } else {
      parts.push_back(seg);
    }
  }
  if (parts.empty()) return false;
  key.clear();
  for (auto seg : parts) {
    if (!key.empty()) key += '/';
    key += seg;
  }
  return true;
}

std::string link_text(std::string_view link_key, std::string_view target_key) {
  auto from = segments(link_key), to = segments(target_key);
  if (!from.empty()) from.pop_back();
  std::size_t common = 0;
  // The last segment of the target stays even when it equals a directory of the link's path.
  while (common < from.size() && common + 1 < to.size() && from[common] == to[common]) ++common;
  std::string out;
  for (std::size_t i = common; i < from.size(); ++i) out += "../";
  for (std::size_t i = common; i < to.size(); ++i) {
    out += to[i];
    if (i + 1 < to.size()) out += '/';
  }
  return out;
}

}  // namespace ossshim::vfs
