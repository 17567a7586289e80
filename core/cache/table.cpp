#include "cache/table.hpp"

#include <vector>

namespace ossshim::cache::table {

using namespace layout;

std::uint64_t chunk_home(std::uint32_t object, std::uint32_t generation, std::uint64_t index,
                         std::uint64_t mask) {
  return mix((static_cast<std::uint64_t>(object) << 32 | generation) ^ mix(index)) & mask;
}

ChunkEntry* find(const Region& r, std::uint32_t object, std::uint32_t generation, std::uint64_t index) {
  ChunkEntry* c = r.chunks;
  std::uint64_t mask = r.header->chunk_capacity - 1;
  std::uint64_t h = chunk_home(object, generation, index, mask);
  for (std::uint64_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    std::uint32_t s = c[h].state.load();
    if (s == kFree) return nullptr;
    if (s != kTomb && c[h].object == object && c[h].generation == generation && c[h].index == index)
      return &c[h];
  }
  return nullptr;
}

ChunkEntry* insert(Region& r, std::uint32_t object, std::uint32_t generation, std::uint64_t index) {
  Header& hd = *r.header;
  if (hd.chunk_count + hd.chunk_tombs + 1 > hd.chunk_capacity / 4 * 3) rehash(r);
  ChunkEntry* c = r.chunks;
  std::uint64_t mask = hd.chunk_capacity - 1;
  std::uint64_t h = chunk_home(object, generation, index, mask);
  for (std::uint64_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    std::uint32_t s = c[h].state.load();
    if (s != kFree && s != kTomb) continue;
    if (s == kTomb) --hd.chunk_tombs;
    ++hd.chunk_count;
    c[h].object = object;
    c[h].generation = generation;
    c[h].index = index;
    c[h].stamp = ++hd.clock;
    c[h].seq.fetch_add(1);
    return &c[h];
  }
  return nullptr;
}

void rehash(Region& r) {
  Header& hd = *r.header;
  ChunkEntry* c = r.chunks;
  struct Live {
    std::uint32_t state, object, generation, ticket;
    std::uint64_t index, bytes, stamp, crc64, since_ms;
  };
  std::vector<Live> live;
  for (std::uint32_t k = 0; k < hd.chunk_capacity; ++k) {
    std::uint32_t s = c[k].state.load();
    if (s != kFree && s != kTomb)
      live.push_back({s, c[k].object, c[k].generation, c[k].ticket, c[k].index, c[k].bytes, c[k].stamp,
                      c[k].crc64, c[k].since_ms});
    c[k].seq.fetch_add(1);
    c[k].state.store(kFree);
  }
  hd.chunk_count = 0;
  hd.chunk_tombs = 0;
  std::uint64_t mask = hd.chunk_capacity - 1;
  for (const Live& e : live) {
    std::uint64_t h = chunk_home(e.object, e.generation, e.index, mask);
    while (c[h].state.load() != kFree) h = (h + 1) & mask;
    c[h].object = e.object;
    c[h].generation = e.generation;
    c[h].index = e.index;
    c[h].bytes = e.bytes;
    c[h].stamp = e.stamp;
    c[h].crc64 = e.crc64;
    c[h].ticket = e.ticket;  // a claim in flight keeps its ticket: its complete() still counts
    c[h].since_ms = e.since_ms;
    c[h].state.store(e.state);
    ++hd.chunk_count;
  }
  for (std::uint32_t k = 0; k < hd.chunk_capacity; ++k) futex_wake(&c[k].state);
}

ObjectProbe probe_object(const Region& r, const std::uint8_t* id,
                         const std::function<bool(const ObjectEntry&)>& same) {
  ObjectProbe p;
  ObjectEntry* o = r.objects;
  std::uint32_t mask = kObjectCapacity - 1;
  std::uint64_t first;
  __builtin_memcpy(&first, id, sizeof first);
  std::uint32_t h = static_cast<std::uint32_t>(mix(first)) & mask;
  for (std::uint32_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    if (o[h].used == 0) {
      if (!p.hole) p.hole = h;
      break;
    }
    if (o[h].used == 2) {
      if (!p.hole) p.hole = h;
      continue;
    }
    ++p.in_use;
    if (same(o[h])) {
      p.found = h;
      return p;
    }
  }
  return p;
}

}  // namespace ossshim::cache::table
