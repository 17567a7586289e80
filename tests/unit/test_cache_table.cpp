// The cache's hash tables (core/cache/table.hpp) and the eviction policy (eviction.hpp) on a
// control-file layout in private memory: no files, no processes.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include "cache/eviction.hpp"
#include "cache/region.hpp"
#include "cache/table.hpp"

using namespace ossshim::cache;
using namespace ossshim::cache::layout;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// A zeroed control-file image with a chunk table of `capacity` entries.
struct Image {
  std::unique_ptr<char, decltype(&std::free)> mem{nullptr, &std::free};
  Region r;
  explicit Image(std::uint32_t capacity = 1024, std::uint64_t budget = 64 * kMiB,
                 std::uint64_t chunk = kMiB) {
    Sizes s = sizes_for(capacity);
    mem.reset(static_cast<char*>(std::aligned_alloc(4096, s.total)));
    std::memset(mem.get(), 0, s.total);
    auto* h = reinterpret_cast<Header*>(mem.get());
    h->chunk_capacity = capacity;
    h->chunk_size = chunk;
    h->budget = budget;
    r = Region::of(h, chunk);
    r.objects[1].used = 1;
    r.objects[1].generation = 1;
    r.objects[1].size = 1 << 30;
  }
  // A ready chunk of object 1 at `index`, accounted as claim() + complete() would.
  ChunkEntry* ready(std::uint64_t index, std::uint64_t stamp = 0) {
    ChunkEntry* c = table::insert(r, 1, 1, index);
    REQUIRE(c);
    c->bytes = kMiB;
    c->state.store(kReady);
    if (stamp) c->stamp = stamp;
    ++r.objects[1].chunk_entries;
    ++r.objects[1].ready_chunks;
    r.objects[1].ready_bytes += kMiB;
    r.header->used_bytes += kMiB;
    return c;
  }
};

}  // namespace

TEST_CASE("table: an inserted chunk is found by object, generation and index only", "[cache][table]") {
  Image img;
  ChunkEntry* c = img.ready(7);
  CHECK(table::find(img.r, 1, 1, 7) == c);
  CHECK(table::find(img.r, 1, 2, 7) == nullptr);  // another version of the object
  CHECK(table::find(img.r, 2, 1, 7) == nullptr);
  CHECK(table::find(img.r, 1, 1, 8) == nullptr);
  CHECK(img.r.header->chunk_count == 1);
}

TEST_CASE("table: probes continue past tombstones, and a tombstone is reused", "[cache][table]") {
  Image img;
  // Enough entries that many share probe paths.
  for (std::uint64_t i = 0; i < 600; ++i) img.ready(i);
  for (std::uint64_t i = 0; i < 600; i += 2) eviction::release(img.r, *table::find(img.r, 1, 1, i));
  CHECK(img.r.header->chunk_count == 300);
  CHECK(img.r.header->chunk_tombs == 300);
  for (std::uint64_t i = 1; i < 600; i += 2) CHECK(table::find(img.r, 1, 1, i) != nullptr);
  for (std::uint64_t i = 0; i < 600; i += 2) CHECK(table::find(img.r, 1, 1, i) == nullptr);
  CHECK(img.r.header->used_bytes == 300 * kMiB);
  CHECK(img.r.objects[1].ready_chunks == 300);
}

TEST_CASE("table: a rebuild keeps every live entry, its claim ticket and lease, and changes every seq",
          "[cache][table]") {
  Image img;
  for (std::uint64_t i = 0; i < 400; ++i) img.ready(i);
  // A claim whose home slot is taken: it lands further on, and the rebuild moves it home.
  std::uint64_t mask = img.r.header->chunk_capacity - 1, index = 1000;
  while (img.r.chunks[table::chunk_home(1, 1, index, mask)].state.load() == kFree) ++index;
  ChunkEntry* fetching = table::insert(img.r, 1, 1, index);
  fetching->bytes = kMiB;
  fetching->ticket = 4242;
  fetching->since_ms = 777;
  fetching->state.store(kFetching | 3);
  std::uint32_t seq_before = fetching->seq.load();  // a reader's reference names slot and seq
  for (std::uint64_t i = 0; i < 400; ++i) eviction::release(img.r, *table::find(img.r, 1, 1, i));
  for (std::uint64_t i = 2000; i < 2100; ++i) img.ready(i);
  table::rehash(img.r);
  CHECK(img.r.header->chunk_tombs == 0);
  ChunkEntry* moved = table::find(img.r, 1, 1, index);
  REQUIRE(moved);
  CHECK(moved != fetching);
  CHECK(moved->state.load() == (kFetching | 3));
  CHECK(moved->ticket == 4242);  // the fetcher's complete() still counts
  CHECK(moved->since_ms == 777);
  CHECK(fetching->seq.load() != seq_before);  // the reader rechecks
  for (std::uint64_t i = 2000; i < 2100; ++i) CHECK(table::find(img.r, 1, 1, i) != nullptr);
  CHECK(img.r.header->chunk_count == 101);
}

TEST_CASE("table: an insert rebuilds the table once live entries and tombstones pass 3/4", "[cache][table]") {
  Image img;
  // 768 live + tombstone entries at most before a rebuild; releases never lower the sum.
  for (std::uint64_t i = 0; i < 768; ++i) img.ready(i);
  for (std::uint64_t i = 0; i < 700; ++i) eviction::release(img.r, *table::find(img.r, 1, 1, i));
  CHECK(img.r.header->chunk_count + img.r.header->chunk_tombs == 768);
  img.ready(5000);  // would pass 3/4: rebuilt first
  CHECK(img.r.header->chunk_tombs == 0);
  CHECK(img.r.header->chunk_count == 69);
  for (std::uint64_t i = 700; i < 768; ++i) CHECK(table::find(img.r, 1, 1, i) != nullptr);
}

TEST_CASE("table: an object is found by its full identity, else the first reusable slot", "[cache][table]") {
  Image img;
  std::uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  auto never = [](const ObjectEntry&) { return false; };
  auto p = table::probe_object(img.r, id, never);
  REQUIRE(p.hole);
  CHECK_FALSE(p.found);
  std::uint32_t home = *p.hole;
  img.r.objects[1].used = 0;
  img.r.objects[home].used = 1;
  std::memcpy(img.r.objects[home].id, id, 16);
  auto same = [&](const ObjectEntry& e) { return std::memcmp(e.id, id, 16) == 0; };
  p = table::probe_object(img.r, id, same);
  REQUIRE(p.found);
  CHECK(*p.found == home);
  // Same hash, different identity (same() says no): the next slot on the path is offered.
  p = table::probe_object(img.r, id, never);
  REQUIRE(p.hole);
  CHECK(*p.hole == (home + 1) % kObjectCapacity);
  CHECK(p.in_use == 1);
  // A tombstone on the path is the first reusable slot.
  img.r.objects[home].used = 2;
  p = table::probe_object(img.r, id, never);
  REQUIRE(p.hole);
  CHECK(*p.hole == home);
}

TEST_CASE("eviction: victims are least recently used first, never pinned, down to the low watermark",
          "[cache][eviction]") {
  Image img(1024, 100 * kMiB);
  for (std::uint64_t i = 0; i < 100; ++i) img.ready(i, 1000 - i);  // chunk 99 is the oldest
  CHECK_FALSE(eviction::fits(img.r, kMiB));
  // A live pin on chunks 95..97.
  img.r.pins[0] = PinEntry{1, 5, 1, 1, 95, 97};
  eviction::Pins pins(img.r, [](std::uint32_t p) { return p == 5; });
  auto victims = eviction::choose(img.r, pins, kMiB);
  // 100 MiB used, 1 MiB wanted, watermark 90 MiB: 11 chunks go.
  REQUIRE(victims.size() == 11);
  std::set<std::uint64_t> chosen;
  for (std::uint32_t k : victims) chosen.insert(img.r.chunks[k].index);
  std::set<std::uint64_t> expected{99, 98, 94, 93, 92, 91, 90, 89, 88, 87, 86};
  CHECK(chosen == expected);
  // A dead process's pin protects nothing.
  eviction::Pins none(img.r, [](std::uint32_t) { return false; });
  CHECK_FALSE(none.covers(*table::find(img.r, 1, 1, 96)));
  CHECK(pins.covers(*table::find(img.r, 1, 1, 96)));
}

TEST_CASE("eviction: chunks already evicting count as freed; invalidate, then release, keep the books",
          "[cache][eviction]") {
  Image img(1024, 100 * kMiB);
  for (std::uint64_t i = 0; i < 100; ++i) img.ready(i, 1000 - i);
  eviction::Pins none(img.r, [](std::uint32_t) { return false; });
  ChunkEntry* c = table::find(img.r, 1, 1, 99);
  std::uint32_t seq = c->seq.load();
  eviction::invalidate(img.r, *c, kEvicting | 2);
  CHECK(c->seq.load() != seq);  // readers holding a reference see the change
  CHECK(is_evicting(c->state.load()));
  CHECK(owner_of(c->state.load()) == 2);
  CHECK(img.r.objects[1].ready_chunks == 99);     // not ready any more
  CHECK(img.r.header->used_bytes == 100 * kMiB);  // its pages still exist
  CHECK(img.r.header->chunk_count == 100);
  CHECK(eviction::choose(img.r, none, kMiB).size() == 10);  // one fewer to find
  eviction::release(img.r, *c);
  CHECK(c->state.load() == kTomb);
  CHECK(img.r.header->used_bytes == 99 * kMiB);
  CHECK(img.r.header->chunk_count == 99);
  CHECK(img.r.objects[1].chunk_entries == 99);
  CHECK(table::find(img.r, 1, 1, 99) == nullptr);
  CHECK(eviction::fits(img.r, kMiB));
}

TEST_CASE("eviction: pinned bytes are the union of the live pins' ranges", "[cache][eviction]") {
  Image img;
  img.r.pins[0] = PinEntry{1, 1, 1, 1, 0, 9};
  img.r.pins[1] = PinEntry{1, 2, 1, 1, 5, 14};   // overlaps: 0..14
  img.r.pins[2] = PinEntry{1, 3, 1, 2, 0, 0};    // another version: 1 more
  img.r.pins[3] = PinEntry{1, 9, 1, 1, 20, 29};  // a dead process's: nothing
  auto alive = [](std::uint32_t p) { return p != 9; };
  CHECK(eviction::pinned_bytes(img.r, alive, nullptr) == 16 * kMiB);
  PinEntry extra{1, 1, 1, 1, 15, 15};  // adjacent: joins the range
  CHECK(eviction::pinned_bytes(img.r, alive, &extra) == 17 * kMiB);
}
