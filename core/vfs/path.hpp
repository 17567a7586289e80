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

// Symbolic links in a bucket. OSS stores a link's target as a key of the same bucket; POSIX
// programs write and read it relative to the link's directory (ln -s ../../blobs/x). Both
// conversions are lexical (keys have no "." or ".." segments).
// The key that `text` names from link `link_key` (a relative text, or an absolute one already
// made bucket-relative by the caller with a leading '/'); false when it leaves the bucket or
// names the bucket itself.
bool link_target_key(std::string_view link_key, std::string_view text, std::string& key);
// The text readlink shows for link `link_key` pointing at `target_key`: relative to the link's
// directory ("../../blobs/x").
std::string link_text(std::string_view link_key, std::string_view target_key);

}  // namespace ossshim::vfs
