#include "cache/eviction.hpp"

#include <algorithm>
#include <tuple>

namespace ossshim::cache::eviction {

using namespace layout;

Pins::Pins(const Region& r, const Alive& alive) {
  for (std::uint32_t k = 0; k < kPinCapacity; ++k)
    if (r.pins[k].used && alive(r.pins[k].process)) live_.push_back(&r.pins[k]);
}

bool Pins::covers(const ChunkEntry& c) const {
  for (const PinEntry* p : live_)
    if (p->object == c.object && p->generation == c.generation && p->first <= c.index && c.index <= p->last)
      return true;
  return false;
}

std::uint64_t pinned_bytes(const Region& r, const Alive& alive, const PinEntry* extra) {
  struct Range {
    std::uint32_t object, generation;
    std::uint64_t first, last;
    bool operator<(const Range& o) const {
      return std::tie(object, generation, first, last) < std::tie(o.object, o.generation, o.first, o.last);
    }
  };
  std::vector<Range> ranges;
  for (std::uint32_t k = 0; k < kPinCapacity; ++k)
    if (r.pins[k].used && alive(r.pins[k].process))
      ranges.push_back({r.pins[k].object, r.pins[k].generation, r.pins[k].first, r.pins[k].last});
  if (extra) ranges.push_back({extra->object, extra->generation, extra->first, extra->last});
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t chunks = 0;
  for (std::size_t i = 0; i < ranges.size();) {
    Range g = ranges[i++];
    while (i < ranges.size() && ranges[i].object == g.object && ranges[i].generation == g.generation &&
           ranges[i].first <= g.last + 1)
      g.last = std::max(g.last, ranges[i++].last);
    chunks += g.last - g.first + 1;
  }
  return chunks * r.chunk_size;
}

bool fits(const Region& r, std::uint64_t bytes) {
  const Header& h = *r.header;
  return h.used_bytes + bytes <= h.budget && h.chunk_count + 1 <= h.chunk_capacity / 2;
}

std::vector<std::uint32_t> choose(const Region& r, const Pins& pins, std::uint64_t bytes) {
  const Header& h = *r.header;
  std::uint64_t target_bytes = h.budget / 100 * kLowWatermarkPercent;
  std::uint64_t target_chunks = std::uint64_t{h.chunk_capacity} / 2 * kLowWatermarkPercent / 100;
  std::uint64_t used = h.used_bytes, count = h.chunk_count;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> candidates;
  for (std::uint32_t k = 0; k < h.chunk_capacity; ++k) {
    std::uint32_t s = r.chunks[k].state.load();
    if (s == kReady && !pins.covers(r.chunks[k])) {
      candidates.emplace_back(r.chunks[k].stamp, k);
    } else if (is_evicting(s)) {  // on its way out already
      used -= std::min(used, round_page(r.chunks[k].bytes));
      if (count) --count;
    }
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<std::uint32_t> victims;
  for (auto& [stamp, k] : candidates) {
    if (used + bytes <= target_bytes && count + 1 <= target_chunks) break;
    victims.push_back(k);
    used -= std::min(used, round_page(r.chunks[k].bytes));
    if (count) --count;
  }
  return victims;
}

void invalidate(Region& r, ChunkEntry& c, std::uint32_t new_state) {
  std::uint32_t s = c.state.load();
  c.seq.fetch_add(1, std::memory_order_seq_cst);
  c.state.store(new_state, std::memory_order_seq_cst);
  if (s == kReady) {
    ObjectEntry& o = r.objects[c.object];
    if (o.ready_chunks) --o.ready_chunks;
    o.ready_bytes -= std::min(o.ready_bytes, c.bytes);
  }
}

void release(Region& r, ChunkEntry& c) {
  Header& h = *r.header;
  std::uint32_t s = c.state.load();
  if (s == kFree || s == kTomb) return;
  if (s == kReady || is_fetching(s)) invalidate(r, c, s);  // a drop in one step
  ObjectEntry& o = r.objects[c.object];
  if (o.chunk_entries) --o.chunk_entries;
  h.used_bytes -= std::min(h.used_bytes, round_page(c.bytes));
  if (h.chunk_count) --h.chunk_count;
  ++h.chunk_tombs;
  c.seq.fetch_add(1, std::memory_order_seq_cst);
  c.state.store(kTomb, std::memory_order_seq_cst);
  futex_wake(&c.state);
}

}  // namespace ossshim::cache::eviction
