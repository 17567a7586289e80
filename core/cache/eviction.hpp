// Eviction policy and accounting over a Region, with no file work: which ready chunks go (least
// recently used first, never one a live mapping pins), down to a low watermark, and the table
// bookkeeping of the two halves of a drop. Cache runs the protocol (cache.cpp, "Eviction").
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "cache/region.hpp"

namespace ossshim::cache::eviction {

// Once a claim does not fit, eviction frees down to this share of the budget (and of the chunk
// table's working half), not just the claim's bytes: one batch serves the next claims, instead of
// a table scan and sort under the node lock per claim.
constexpr std::uint64_t kLowWatermarkPercent = 90;

using Alive = std::function<bool(std::uint32_t process)>;

// The pins of live processes, gathered once: a mapped chunk is never evicted.
class Pins {
 public:
  Pins(const Region& r, const Alive& alive);
  bool covers(const layout::ChunkEntry& c) const;

 private:
  std::vector<const layout::PinEntry*> live_;
};

// Bytes of the chunks the live pins (and `extra`, if any) cover: their union per object version.
std::uint64_t pinned_bytes(const Region& r, const Alive& alive, const layout::PinEntry* extra);

// Whether `bytes` more (one more chunk entry) fit the budget now.
bool fits(const Region& r, std::uint64_t bytes);

// Chunk-table slots of the ready, unpinned chunks to evict, least recently used first, so that
// after freeing them `bytes` more fit under the low watermark (or every candidate, if fewer).
// Chunks already evicting count as freed.
std::vector<std::uint32_t> choose(const Region& r, const Pins& pins, std::uint64_t bytes);

// Step 1 of a drop, the part readers see: seq first, then the state (a reader that copied the
// bytes validates seq after its copy, so it can never accept bytes of a chunk being punched).
// A ready chunk stops counting as ready; its space stays counted until release().
void invalidate(Region& r, layout::ChunkEntry& c, std::uint32_t new_state);
// The last step: the entry becomes a tombstone and its space is free.
void release(Region& r, layout::ChunkEntry& c);

}  // namespace ossshim::cache::eviction
