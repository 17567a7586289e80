// The shared cache's control file: what every process of the node maps and trusts only after
// checking. Plain structs of fixed size, no pointers (each process maps it at its own address).
// Every field is either written under Header::mutex or is an atomic that says why it need not be.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace ossshim::cache::layout {

constexpr std::uint64_t kMagic = 0x3148434153534f31ull;  // "1OSSCAH1"
// 2: OFD-lock liveness, leases, inode check; 3: stored identity; 4: the evicting state
constexpr std::uint32_t kVersion = 4;

// Chunk state word (the futex): readers wait on it while a fetch is under way.
constexpr std::uint32_t kFree = 0;             // never used: ends a probe chain
constexpr std::uint32_t kTomb = 1;             // was used: probes continue past it
constexpr std::uint32_t kReady = 2;            // bytes are in the data file and verified
constexpr std::uint32_t kFetching = 1u << 31;  // | process slot: that process is fetching it
// | process slot: that process invalidated it and is punching its hole (eviction.hpp's protocol);
// its bytes are never served, its space is still counted in used_bytes until it is freed.
constexpr std::uint32_t kEvicting = 1u << 30;
constexpr std::uint32_t kSlotMask = 0xffff;  // the process slot in a fetching or evicting state
inline bool is_fetching(std::uint32_t s) {
  return (s & kFetching) != 0;
}
inline bool is_evicting(std::uint32_t s) {
  return (s & (kFetching | kEvicting)) == kEvicting;
}
inline std::uint32_t owner_of(std::uint32_t s) {
  return s & kSlotMask;
}
constexpr std::uint32_t kUniqueBits = 4096;  // chunks per object tracked for "unique bytes"

constexpr std::size_t kIdentityBytes = 1276;

struct Counters {
  std::atomic<std::uint64_t> origin_bytes;    // bytes received from the store into the cache
  std::atomic<std::uint64_t> served_bytes;    // bytes handed to readers (read + mmap)
  std::atomic<std::uint64_t> waited_bytes;    // ... of which the reader had to wait for a fetch
  std::atomic<std::uint64_t> uncached_bytes;  // bytes fetched past the cache (no room, no space)
  std::atomic<std::uint64_t> evicted_bytes;
  std::atomic<std::uint64_t> requests;  // range GETs issued into the cache
  std::atomic<std::uint64_t> inflight_requests;
  std::atomic<std::uint64_t> fetch_errors;
  std::atomic<std::uint64_t> takeovers;    // chunks taken back from dead fetchers
  std::atomic<std::uint64_t> crc_checked;  // whole objects whose CRC64 matched
  std::atomic<std::uint64_t> crc_mismatches;
};

struct Header {
  std::uint64_t magic;  // written last at creation: a half-made file never validates
  std::uint32_t version;
  std::uint32_t header_bytes, object_bytes, chunk_bytes, process_bytes, pin_bytes;
  std::uint32_t object_capacity, chunk_capacity, process_capacity, pin_capacity;
  std::uint64_t chunk_size;
  std::uint64_t budget;
  std::uint64_t file_bytes;
  // Random, fixed at creation, part of every data file's name: processes still attached to a
  // control file that was deleted or replaced never touch the new table's files, nor it theirs.
  std::uint64_t nonce;
  pthread_mutex_t mutex;  // process-shared, robust: a holder's death is reported, not a hang
  // Under mutex:
  std::uint64_t used_bytes;  // bytes of fetching and ready chunks (page-rounded)
  std::uint64_t pinned_bytes;
  std::uint32_t chunk_count, chunk_tombs;
  std::uint64_t clock;  // LRU stamps
  Counters counters;
};

struct ObjectEntry {
  std::uint32_t used;        // 0 never, 1 in use, 2 free again (tombstone)
  std::uint32_t generation;  // bumped on every reuse of the slot
  std::uint8_t id[16];       // hash of endpoint, bucket, key, ETag, size
  std::uint64_t size;
  std::atomic<std::uint64_t> crc64;  // whole-object CRC64 once known (has_crc set after)
  std::atomic<std::uint32_t> has_crc;
  std::uint32_t chunk_entries;  // fetching + ready entries in the chunk table
  std::uint32_t ready_chunks;
  std::uint32_t crc_verified;  // the whole object matched the server's CRC64
  std::uint32_t crc_failed;    // ... or did not: every later read of this version is EIO
  std::uint32_t pad;
  std::uint64_t data_inode;  // the data file the chunks live in (0: not yet opened)
  std::uint64_t last_use;
  std::atomic<std::uint64_t> origin_bytes, served_bytes;
  std::uint64_t ready_bytes, unique_bytes;
  std::uint64_t seen[kUniqueBits / 64];  // chunks ever fetched (for unique bytes)
  char name[224];                        // "/oss/bucket/key" (truncated), for `ossrun stat`
  // What `id` hashes, compared in full on lookup: endpoint id, bucket, key, ETag, size. Fits
  // OSS's limits (bucket 63, key 1023 bytes); a longer identity is never cached.
  std::uint32_t identity_len;
  char identity[kIdentityBytes];
};

struct ChunkEntry {
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> seq;  // bumped whenever the slot changes meaning (readers recheck)
  std::uint32_t object, generation;
  std::uint64_t index;
  std::uint64_t bytes;
  std::uint64_t stamp;
  std::uint64_t crc64;
  std::uint32_t ticket;  // which claim owns a fetching chunk: a superseded fetcher's is stale
  std::uint32_t pad;
  std::uint64_t since_ms;  // CLOCK_MONOTONIC ms of the claim (leases count from here)
};

// A process is alive while it holds the OFD write lock on byte <slot> of the directory's `procs`
// file: the kernel drops it when the process exits (zombies included), in any PID namespace.
struct ProcessEntry {
  std::atomic<std::int32_t> pid;  // 0: free; for display only (pids differ across namespaces)
  std::uint32_t pad;
  std::atomic<std::uint64_t> progress_ms;  // CLOCK_MONOTONIC ms of its last fetch progress
};

struct PinEntry {  // a mapping of [first, last] chunks of an object by a process
  std::uint32_t used;
  std::uint32_t process;
  std::uint32_t object, generation;
  std::uint64_t first, last;
};

}  // namespace ossshim::cache::layout
