// The control file as this process sees it: where each table of the layout (layout.hpp) starts
// in its mapping, and the few helpers every unit of the cache shares (hash mixing, pages, clocks,
// futexes). Internal to core/cache.
#pragma once

#include <atomic>
#include <cstdint>

#include "cache/layout.hpp"

namespace ossshim::cache {

constexpr std::uint32_t kObjectCapacity = 4096;
constexpr std::uint32_t kProcessCapacity = 1024;
constexpr std::uint32_t kPinCapacity = 8192;
constexpr std::uint64_t kPage = 4096;

inline std::uint64_t round_page(std::uint64_t n) {
  return (n + kPage - 1) / kPage * kPage;
}

inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

std::uint64_t monotonic_ms();
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, int ms);
void futex_wake(std::atomic<std::uint32_t>* word);

// Offsets of the tables in a control file whose chunk table has `chunk_capacity` entries.
struct Sizes {
  std::uint32_t chunk_capacity;
  std::uint64_t objects_at, chunks_at, processes_at, pins_at, total;
};
Sizes sizes_for(std::uint32_t chunk_capacity);

// Pointers into one mapping of the control file (computed once, at attach).
struct Region {
  layout::Header* header = nullptr;
  layout::ObjectEntry* objects = nullptr;
  layout::ChunkEntry* chunks = nullptr;
  layout::ProcessEntry* processes = nullptr;
  layout::PinEntry* pins = nullptr;
  std::uint64_t chunk_size = 0;

  static Region of(layout::Header* h, std::uint64_t chunk_size);
};

}  // namespace ossshim::cache
