// The cache directory and its control file: ownership checks, creation (published by rename, so
// no one maps a half-made table), validation of an existing file (anything that does not add up
// is discarded and rebuilt, never trusted), and repair of the totals after a crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cache/region.hpp"
#include "config/config.hpp"
#include "util/error.hpp"

namespace ossshim::cache {

// Every cache error has the same shape (op "cache", the place, why).
Error cache_error(const std::string& target, int err, const std::string& message);
// Creates `dir` (mode 0700, and its parent) if missing and insists it is this user's alone.
Status own_directory(const std::string& dir);
// cache_dir, or /dev/shm/ossshim-<uid>.
std::string root_directory(const Config& config);
// The directory of the cache for `config` (root/<namespace of endpoint and chunk size>).
std::string cache_directory(const Config& config);
// A 128-bit identity hash of a byte string (not SHA-256 on purpose: reads from atexit handlers
// and static destructors may come after OpenSSL's clean-up).
void identity_hash(std::string_view data, std::uint8_t out[16]);

namespace control {

// Why a control file cannot be trusted; empty when it can.
std::string invalid_header(const layout::Header& h, std::uint64_t file_bytes, std::uint64_t chunk_size);

// Removes every file of a cache directory except `lock` and `procs`.
void remove_contents(const std::string& dir);

// A held flock on the directory's lock file (released on close, and by the kernel on death).
struct DirLock {
  int fd = -1;
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
};

// A mapping of a control file.
struct Mapping {
  layout::Header* header = nullptr;
  std::size_t bytes = 0;
};

// Maps `path` read-write when it is a valid control file for `chunk_size`. Otherwise nothing is
// mapped and `why` says what was wrong ("" with errno ENOENT set when there is no file).
Mapping open_existing(const std::string& path, std::uint64_t chunk_size, std::string& why, int& err);

// Creates a fresh control file at `path` sized for `budget`, through `path`.new and rename.
Result<Mapping> create(const std::string& path, std::uint64_t chunk_size, std::uint64_t budget);

// Re-derives every total (used bytes, counts, per-object ready chunks) from the entries and turns
// entries that point nowhere into tombstones. Under the node mutex.
void repair(Region& r);

}  // namespace control
}  // namespace ossshim::cache
