// The node's shared chunk cache: knows bytes, not files or HTTP. One directory per user and
// configuration (default /dev/shm/ossshim-<uid>/<namespace>/) holds
//   control   — the shared table (layout.hpp): objects, one state word per chunk, pins, counters;
//   o-<id>    — one sparse file per object version, sized to the object; chunk i lives at
//               offset i × chunk_size, so mmap of a virtual file maps this file directly;
//   lock      — flock'ed while a process attaches (creation and validation are serialised).
// Processes coordinate with a robust process-shared mutex (short sections) and futexes on chunk
// state words (single flight: one fetcher per chunk on the node; waiters take back the chunks of
// a fetcher that died). Eviction punches holes in least-recently-used chunks that no mapping pins.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/layout.hpp"
#include "cache/liveness.hpp"
#include "cache/region.hpp"
#include "config/config.hpp"
#include "util/error.hpp"
#include "util/forksafe.hpp"

namespace ossshim::cache {

struct ObjectKey {
  std::string bucket, key, etag;
  std::uint64_t size = 0;
  std::string display;  // "/oss/bucket/key", for messages and stats
};

// This process's handle on one object version: its data file. Readers pread from it, a program's
// mmap maps it (shared read-only, or private); only a fetcher writes, with pwrite, so no process
// holds a writable mapping of the node's copy.
struct Object {
  ObjectKey key;
  std::uint32_t slot = 0, generation = 0;
  int fd = -1;
  std::uint64_t inode = 0;  // of `fd`: chunks count only while the table names this file
  std::uint64_t chunks = 0;
  mutable std::atomic<bool> verified{false};  // Cache::verified() said yes once: it stays yes
  ~Object();
};

// A ready chunk as seen by a reader: valid while the slot's seq is unchanged (its CRC64 lets a
// reader that also gets bytes past the cache check the whole object). For a claimed chunk,
// `ticket` names the claim (complete/abandon of a superseded claim change nothing).
struct ChunkRef {
  std::uint32_t slot = 0, seq = 0, ticket = 0;
  std::uint64_t crc64 = 0;  // of a ready chunk's bytes, as its fetcher computed them
};

enum class Claim {
  ready,     // the bytes are there (ref filled)
  claimed,   // the caller must fetch it, then complete() or abandon()
  busy,      // another fetcher (this or another process) has it: wait()
  uncached,  // no room (budget pinned or in flight) or no space: fetch past the cache
  damaged,   // this version failed its whole-object CRC64 check: every read of it is EIO
};

struct Stats {  // a snapshot for `ossrun stat`
  std::uint64_t budget = 0, used = 0, pinned = 0, chunk_size = 0;
  std::string budget_source;  // how this process's view of the budget came about (budget.hpp)
  std::uint64_t origin = 0, served = 0, waited = 0, uncached = 0, evicted = 0, unique = 0;
  std::uint64_t requests = 0, inflight = 0, errors = 0, takeovers = 0, crc_ok = 0, crc_bad = 0;
  struct ObjectRow {
    std::string name;
    std::uint64_t size = 0, ready = 0, origin = 0, served = 0;
    bool crc_checked = false;
  };
  std::vector<ObjectRow> objects;
  std::vector<pid_t> processes;  // live users
};

class Cache {
 public:
  // Attaches to (creating if needed) the cache for `config`. Errors name the directory and the
  // fix: foreign owner or loose mode, too small a file system, unusable control file.
  static Result<std::unique_ptr<Cache>> attach(const Config& config);
  // Opens the existing cache read-only for inspection (no process slot taken).
  static Result<std::unique_ptr<Cache>> inspect(const Config& config);
  ~Cache();

  const std::string& dir() const { return dir_; }
  std::uint64_t chunk_size() const { return chunk_size_; }
  std::uint64_t budget() const { return header_->budget; }

  // The object's data file (created sparse). One per process per version: cached here.
  Result<std::shared_ptr<Object>> object(const ObjectKey& key);

  // Chunk `index` of `o`: see Claim. `ref` is filled for ready chunks.
  Claim claim(Object& o, std::uint64_t index, ChunkRef& ref);
  // Waits until chunk `index` is not being fetched by a live process; then behaves as claim().
  Claim wait(Object& o, std::uint64_t index, ChunkRef& ref);
  // After claim() returned `claimed`: the bytes are in o.fd (crc = their CRC64) — or not.
  // complete() returns an error when the object is now whole and its CRC64 disagrees with the
  // server's (the object's chunks are dropped).
  Status complete(Object& o, std::uint64_t index, const ChunkRef& claim, std::uint64_t crc);
  void abandon(Object& o, std::uint64_t index, const ChunkRef& claim);
  // A fetcher of this process received bytes: renews the lease on every chunk it is fetching.
  void progress();
  // After copying from a ready chunk: were the bytes still valid (not evicted meanwhile)?
  bool still_valid(const ChunkRef& ref) const;
  // After copying [off, off+len) of a valid chunk: false (and the object's chunks dropped) when the
  // data file has a hole there, i.e. it was truncated behind the cache's back and the copy is zeros.
  bool intact(Object& o, std::uint64_t off, std::uint64_t len);

  // The whole-object CRC64 the server reported (first report wins).
  void note_crc(Object& o, std::uint64_t crc);
  std::optional<std::uint64_t> server_crc(const Object& o) const;
  // Whether the cache itself compared the whole object with the server's CRC64 and it matched.
  bool verified(const Object& o) const;
  // A reader found the version damaged by a check of its own (bytes that came partly past the
  // cache, or from chunks evicted before the object was whole): every later read of it is EIO.
  void mark_damaged(Object& o);
  void count_served(Object& o, std::uint64_t bytes, bool waited);
  void count_uncached(std::uint64_t bytes);
  void count_error();

  // Pins chunks [first, last] of `o` for a mapping; false when pinning would leave no room.
  std::optional<std::uint32_t> pin(Object& o, std::uint64_t first, std::uint64_t last);
  void unpin(std::uint32_t pin);

  Stats stats(bool per_object) const;

  // Reads every ready chunk back from its data file and compares its CRC64 with the one its
  // fetcher stored: a data file overwritten in place (which no other check sees: the file is still
  // whole and the table's) loses exactly the chunks that differ, fetched again when next read.
  struct VerifyReport {
    std::uint64_t chunks = 0, bytes = 0, mismatches = 0;
    std::vector<std::string> dropped;  // "/oss/bucket/key chunk N" per mismatch
  };
  VerifyReport verify();
  // Removes every data file and the control file; refuses (naming the pids) while others use it.
  static Status clear(const Config& config);

  // In a forked child: a new process slot (the parent keeps its own); `pins` are the parent's
  // pins this child's inherited mappings still need, re-pinned in the child's name.
  void after_fork_child(std::vector<std::uint32_t>& pins);
  // Release this process's slot (at exit); with cache_persist=false the last user removes all.
  void detach();

 private:
  Cache() = default;
  class Lock;
  // A chunk invalidated under the node lock whose hole is punched outside it (cache.cpp,
  // "Eviction"): what steps 2 and 3 need, copied out under the lock.
  struct Pending {
    std::uint32_t object, generation;
    std::uint64_t index, at, bytes, inode;
    std::string path;
  };
  using Batch = std::vector<Pending>;

  layout::ObjectEntry* objects() const { return r_.objects; }
  layout::ChunkEntry* chunks() const { return r_.chunks; }
  layout::ProcessEntry* processes() const { return r_.processes; }
  layout::PinEntry* pins() const { return r_.pins; }
  layout::ChunkEntry* find_locked(std::uint32_t object, std::uint32_t generation, std::uint64_t index) const;
  // The table slot of the object with hash `id` (same() compares the full identity), or a free
  // slot for it; when the table is crowded, least recently used objects are dropped (their data
  // files are added to `forgotten`, to be unlinked outside the lock). Nullopt: every object is busy.
  std::optional<std::uint32_t> find_object_locked(const std::uint8_t* id,
                                                  const std::function<bool(const layout::ObjectEntry&)>& same,
                                                  std::vector<std::string>& forgotten);
  // Drops chunk `c`: with `punch_later`, invalidated and marked evicting (step 1; the caller runs
  // finish_evictions() once the lock is released); without, freed at once (no hole to punch).
  void drop_locked(layout::ChunkEntry& c, Batch* punch_later);
  // Every chunk of `o`'s version in the table (a damaged, truncated or replaced object).
  void drop_chunks_locked(const Object& o, Batch* punch_later);
  Pending pending_locked(const layout::ChunkEntry& c) const;
  // Steps 2 and 3 of the eviction protocol; takes the node lock itself.
  void finish_evictions(Batch& batch);
  // True when `bytes` fit now; otherwise victims (down to the low watermark) are in `batch`.
  bool make_room_locked(std::uint64_t bytes, Batch& batch);
  bool alive_locked(std::uint32_t process) const;
  // A live owner whose lease ran out: no fetch progress for lease_ms_ (stopped, frozen, stuck).
  bool stalled_locked(std::uint32_t process, const layout::ChunkEntry& c) const;
  Claim take_over_locked(Object& o, std::uint64_t index, layout::ChunkEntry& c, ChunkRef& ref,
                         const char* why);
  std::uint64_t pinned_bytes_locked(const layout::PinEntry* extra) const;
  void repair_locked();
  Status register_process_locked(Batch& left);
  std::string data_path(const std::uint8_t* id) const;
  std::uint64_t chunk_bytes(const Object& o, std::uint64_t index) const;

  std::string dir_;
  std::uint64_t chunk_size_ = 0;
  std::string budget_source_;  // per process, never in the shared table
  bool persist_ = true;
  bool read_only_ = false;
  bool detached_ = false;
  layout::Header* header_ = nullptr;
  Region r_;  // the tables in our mapping of header_
  std::size_t map_bytes_ = 0;
  std::uint32_t process_ = 0;  // our slot
  Liveness live_;              // holds the OFD lock on byte process_ of `procs` (our liveness)
  std::uint64_t lease_ms_ = 10000;
  std::uint8_t endpoint_id_[16] = {};

  // Set (by the fatal-signal handler, guard.hpp) when the control file was truncated under us:
  // from then on every call behaves as if the cache had no room.
  std::atomic<bool> broken_{false};
  mutable std::atomic<bool> broken_told_{false};
  bool unusable() const;

  std::mutex objects_mu_;  // this process's handles
  forksafe::Guard fork_guard_{forksafe::Rank::cache_handles, objects_mu_};
  std::vector<std::weak_ptr<Object>> handles_;
};

// For tests of the eviction protocol (cache.cpp, "Eviction"): called by the evicting thread, not
// holding the node lock, at "evict:invalidated" (a batch is invalidated and marked evicting, no
// hole punched yet), "evict:punched" (holes punched, entries not yet freed) and "evict:freed".
// Null in use.
using TestHook = void (*)(const char* point);
void set_test_hook(TestHook hook);

// The fix for a cache that does not fit, named in every such message.
extern const char* const kSpaceAdvice;

}  // namespace ossshim::cache
