// Virtual paths: "<prefix>/<bucket>/<key>" <-> (bucket, key). Pure string work, no I/O.
#pragma once

#include <string>
#include <string_view>

namespace ossshim::vfs {

struct VPath {
  std::string bucket;  // empty: the prefix directory itself
  std::string key;     // empty: the bucket's top directory; no leading or trailing '/'
  bool is_prefix_root() const { return bucket.empty(); }
  bool is_bucket_root() const { return !bucket.empty() && key.empty(); }
};

// Collapses "//", "." and ".." of an absolute path, lexically (virtual paths have no symlinks).
std::string normalize(std::string_view absolute);

// True when `absolute` (normalised or not) lies under `prefix`; fills `out`.
bool parse(std::string_view prefix, std::string_view absolute, VPath& out);

// The directory holding `p` (a bucket's top-level key: the bucket root).
VPath parent_of(const VPath& p);

// The path a VPath came from, e.g. "/oss/bucket/a/b".
std::string to_string(std::string_view prefix, const VPath& p);

}  // namespace ossshim::vfs
