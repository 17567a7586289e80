// The two hash tables of the control file, over a Region, with no policy: the object table
// (open addressing by identity hash, tombstones `used == 2`) and the chunk table (open addressing
// by (object, generation, index), tombstones kTomb). Every call is made under the node mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "cache/region.hpp"

namespace ossshim::cache::table {

// The home slot of a chunk in a table of mask + 1 entries.
std::uint64_t chunk_home(std::uint32_t object, std::uint32_t generation, std::uint64_t index,
                         std::uint64_t mask);

// The live (not free, not tomb) entry of that chunk, or null.
layout::ChunkEntry* find(const Region& r, std::uint32_t object, std::uint32_t generation,
                         std::uint64_t index);

// A new entry for that chunk (seq bumped, stamp set; state still kFree or kTomb: the caller
// sets it). Rebuilds the table first when live entries and tombstones pass 3/4 of it. Null when
// the table is full (callers keep it at most half full of live entries).
layout::ChunkEntry* insert(Region& r, std::uint32_t object, std::uint32_t generation, std::uint64_t index);

// Rebuilds the chunk table in place without tombstones. Entries move, so every seq changes
// (readers recheck) and every state word is woken (waiters look again).
void rehash(Region& r);

// Looking up an object by identity hash: the entry whose identity is the same (same() compares
// it in full), else the first reusable slot on the probe path, and how many live entries it met.
struct ObjectProbe {
  std::optional<std::uint32_t> found, hole;
  std::uint32_t in_use = 0;
};
ObjectProbe probe_object(const Region& r, const std::uint8_t* id,
                         const std::function<bool(const layout::ObjectEntry&)>& same);

}  // namespace ossshim::cache::table
