// The whole-object CRC64 check for reads that do not go through the node's shared cache (private
// cache, a cache directory refused or full, a chunk with no room): every piece of one object
// version this process receives from the store is folded in once, in any order, and when the
// pieces cover the object the result is compared with the server's x-oss-hash-crc64ecma.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "util/forksafe.hpp"

namespace ossshim::vfs {

class WholeCrc {
 public:
  enum class State { pending, matched, mismatched };
  explicit WholeCrc(std::uint64_t size);
  ~WholeCrc();
  WholeCrc(const WholeCrc&) = delete;
  WholeCrc& operator=(const WholeCrc&) = delete;

  // Bytes [off, off+len) of the object as received. Bytes already folded in are skipped (a
  // re-read of an evicted chunk). Returns the state after: `mismatched` the first time means this
  // piece completed a damaged object.
  State add(std::uint64_t off, const char* data, std::size_t len);
  // The same for bytes whose CRC64 is already known (a chunk of the shared cache): nothing is read.
  State add_known(std::uint64_t off, std::uint64_t len, std::uint64_t crc);
  // The server's CRC64 of the whole object (first report wins).
  State note_server(std::uint64_t crc);
  State state() const;
  // For messages: the CRC64 of the bytes received (once they cover the object) and the server's.
  std::uint64_t computed() const;
  std::uint64_t expected() const;
  // Around fork (forksafe): held, so that a child never inherits it locked.
  void fork_lock() { mu_.lock(); }
  void fork_unlock() { mu_.unlock(); }

 private:
  State settle_locked();
  // Inserts the span [from, to) with CRC `crc` (disjoint from every span) and joins neighbours.
  void insert_locked(std::uint64_t from, std::uint64_t to, std::uint64_t crc);
  std::uint64_t size_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> spans_;  // start -> {end, crc}
  std::optional<std::uint64_t> server_;
  std::atomic<State> state_{State::pending};  // written under mu_; state() reads it without
  forksafe::Set::Member fork_member_;         // every live check's mu_ is held across fork
};

}  // namespace ossshim::vfs
