// The eviction protocol of the shared cache (core/cache/cache.cpp, "Eviction") with real
// attachments: the test hook stops the evictor between each step, and an evictor is SIGKILLed
// between invalidate and punch. Batches free down to the low watermark.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "cache_unit_support.hpp"

using namespace ossshim;
using namespace cache_test;

namespace {

// A rendezvous at every hook point: the evictor reports the point and waits for `go`.
std::mutex mu;
std::condition_variable cv;
std::vector<std::string> points;
std::size_t released = 0;
bool stopping = false;

void stop_at_each(const char* point) {
  std::unique_lock lock(mu);
  points.push_back(point);
  cv.notify_all();
  if (!stopping) return;
  std::size_t mine = points.size();
  cv.wait(lock, [&] { return released >= mine; });
}

bool reached(std::size_t n) {
  std::unique_lock lock(mu);
  return cv.wait_for(lock, std::chrono::seconds(30), [&] { return points.size() >= n; });
}

void go() {
  std::lock_guard lock(mu);
  ++released;
  cv.notify_all();
}

void reset_hook(bool stop) {
  std::lock_guard lock(mu);
  points.clear();
  released = 0;
  stopping = stop;
}

std::uint64_t used(cache::Cache& c) {
  return c.stats(false).used;
}

}  // namespace

TEST_CASE("eviction stops between each step: invalidated, punched, freed, never under the node lock",
          "[cache][eviction]") {
  TempDir dir;
  auto a = cache::Cache::attach(config_for(dir.path));
  auto b = cache::Cache::attach(config_for(dir.path));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  REQUIRE(fill(**a, **x, 0));
  cache::ChunkRef ref;
  REQUIRE((*a)->claim(**x, 0, ref) == cache::Claim::ready);
  std::string bytes = chunk_bytes(0);

  // B's claims of y fill the budget; the 64th evicts x's chunk, the only ready one.
  auto y = (*b)->object({"bkt", "y", "\"e2\"", 64 * kMiB, "/oss/bkt/y"});
  REQUIRE(y.ok());
  reset_hook(true);
  cache::set_test_hook(stop_at_each);
  std::thread evictor([&] {
    cache::ChunkRef r;
    for (std::uint64_t i = 0; i < 64; ++i)
      if ((*b)->claim(**y, i, r) != cache::Claim::claimed) break;
  });
  std::string copy(kMiB, '\0');
  cache::ChunkRef other;

  REQUIRE(reached(1));
  CHECK(points[0] == "evict:invalidated");
  // The bytes are still there, but a copy does not validate; the chunk is not offered to anyone
  // (claim() answers busy: it also shows the node lock is free while the evictor is stopped).
  REQUIRE(::pread((*x)->fd, copy.data(), copy.size(), 0) == static_cast<ssize_t>(copy.size()));
  CHECK(copy == bytes);
  CHECK_FALSE((*a)->still_valid(ref));
  CHECK((*a)->claim(**x, 0, other) == cache::Claim::busy);
  CHECK(used(**a) == 64 * kMiB);  // 63 claims of y + x's chunk, whose pages still exist
  go();

  REQUIRE(reached(2));
  CHECK(points[1] == "evict:punched");
  CHECK(has_hole((*x)->fd, 0, kMiB));
  CHECK_FALSE((*a)->still_valid(ref));
  CHECK((*a)->claim(**x, 0, other) == cache::Claim::busy);
  CHECK(used(**a) == 64 * kMiB);  // counted until freed
  go();

  REQUIRE(reached(3));
  CHECK(points[2] == "evict:freed");
  CHECK(used(**a) == 63 * kMiB);
  go();
  evictor.join();
  cache::set_test_hook(nullptr);
  CHECK(used(**a) == 64 * kMiB);  // B's 64th claim took the room
  CHECK((*a)->stats(false).evicted == kMiB);
  CHECK((*a)->claim(**x, 0, other) == cache::Claim::uncached);  // everything else is in flight
}

TEST_CASE("eviction frees down to the low watermark in one batch", "[cache][eviction]") {
  TempDir dir;
  auto a = cache::Cache::attach(config_for(dir.path));
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", 64 * kMiB, "/oss/bkt/x"});
  auto y = (*a)->object({"bkt", "y", "\"e2\"", 64 * kMiB, "/oss/bkt/y"});
  REQUIRE(x.ok());
  REQUIRE(y.ok());
  for (std::uint64_t i = 0; i < 64; ++i) REQUIRE(fill(**a, **x, i));
  CHECK(used(**a) == 64 * kMiB);
  reset_hook(false);
  cache::set_test_hook(stop_at_each);
  // 64 MiB used, 1 MiB wanted, watermark 90% of 64 MiB: 8 chunks go at once, and the next 7
  // claims find room without evicting.
  for (std::uint64_t i = 0; i < 8; ++i) REQUIRE(fill(**a, **y, i, 'b'));
  cache::set_test_hook(nullptr);
  CHECK((*a)->stats(false).evicted == 8 * kMiB);
  CHECK(points == std::vector<std::string>{"evict:invalidated", "evict:punched", "evict:freed"});
  // The oldest went: x's chunks 0..7.
  cache::ChunkRef r;
  for (std::uint64_t i = 0; i < 8; ++i) CHECK((*a)->claim(**x, i, r) != cache::Claim::ready);
  // (Those claims evicted again; x's later chunks are intact up to what they freed.)
  CHECK((*a)->claim(**x, 63, r) == cache::Claim::ready);
  CHECK(used(**a) <= 64 * kMiB);
}

namespace {
int hook_pipe = -1;
void report_and_stop(const char* point) {
  if (std::strcmp(point, "evict:invalidated") != 0) return;
  char b = 'i';
  (void)!::write(hook_pipe, &b, 1);
  for (;;) ::pause();  // until SIGKILL
}
}  // namespace

TEST_CASE("an evictor killed between invalidate and punch: nothing served, the next finder punches and frees",
          "[cache][eviction]") {
  TempDir dir;
  auto a = cache::Cache::attach(config_for(dir.path));
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  REQUIRE(fill(**a, **x, 0));
  cache::ChunkRef ref;
  REQUIRE((*a)->claim(**x, 0, ref) == cache::Claim::ready);

  int p[2];
  REQUIRE(::pipe(p) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // the evictor: its own attachment fills the budget with claims of y
    ::close(p[0]);
    hook_pipe = p[1];
    cache::set_test_hook(report_and_stop);
    auto b = cache::Cache::attach(config_for(dir.path));
    if (!b.ok()) ::_exit(2);
    auto y = (*b)->object({"bkt", "y", "\"e2\"", 64 * kMiB, "/oss/bkt/y"});
    if (!y.ok()) ::_exit(3);
    cache::ChunkRef r;
    for (std::uint64_t i = 0; i < 64; ++i) (*b)->claim(**y, i, r);
    ::_exit(4);  // never reached: the 64th claim evicts and stops
  }
  ::close(p[1]);
  char b = 0;
  bool stopped = read_byte(p[0], b);
  ::kill(child, SIGKILL);
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED) == 0);
  ::close(p[0]);
  REQUIRE(stopped);
  CHECK(info.si_code == CLD_KILLED);

  // Dead between the steps: the chunk is invalid and not yet punched; its space is still counted.
  CHECK_FALSE((*a)->still_valid(ref));
  CHECK_FALSE(has_hole((*x)->fd, 0, kMiB));
  CHECK(used(**a) == 64 * kMiB);
  cache::ChunkRef r;
  CHECK((*a)->claim(**x, 0, r) == cache::Claim::busy);
  // A reader that waits for it finds the evictor dead and finishes the eviction, then claims the
  // chunk itself (the room freed is its own: the dead child's 63 claims are still counted).
  CHECK((*a)->wait(**x, 0, r) == cache::Claim::claimed);
  CHECK(has_hole((*x)->fd, 0, kMiB));
  CHECK(used(**a) == 64 * kMiB);
  std::string bytes = chunk_bytes(0, 'c');
  REQUIRE(::pwrite((*x)->fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  REQUIRE((*a)->complete(**x, 0, r, util::crc64_update(0, bytes.data(), bytes.size())).ok());
  REQUIRE((*a)->claim(**x, 0, r) == cache::Claim::ready);
  std::string copy(kMiB, '\0');
  REQUIRE(::pread((*x)->fd, copy.data(), copy.size(), 0) == static_cast<ssize_t>(copy.size()));
  CHECK(copy == bytes);
  CHECK((*a)->still_valid(r));
}

TEST_CASE("an evictor killed mid-batch: the process that takes its slot, or the next evictor, finishes it",
          "[cache][eviction]") {
  TempDir dir;
  auto a = cache::Cache::attach(config_for(dir.path));
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", 64 * kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  for (std::uint64_t i = 0; i < 64; ++i) REQUIRE(fill(**a, **x, i));
  int p[2];
  REQUIRE(::pipe(p) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(p[0]);
    hook_pipe = p[1];
    cache::set_test_hook(report_and_stop);
    auto b = cache::Cache::attach(config_for(dir.path));
    if (!b.ok()) ::_exit(2);
    auto y = (*b)->object({"bkt", "y", "\"e2\"", kMiB, "/oss/bkt/y"});
    if (!y.ok()) ::_exit(3);
    cache::ChunkRef r;
    (*b)->claim(**y, 0, r);  // evicts a batch of x and stops
    ::_exit(4);
  }
  ::close(p[1]);
  char b = 0;
  bool stopped = read_byte(p[0], b);
  ::kill(child, SIGKILL);
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED) == 0);
  ::close(p[0]);
  REQUIRE(stopped);
  CHECK(used(**a) == 64 * kMiB);  // 8 evicting chunks still counted
  std::uint64_t evicting = 0;
  cache::ChunkRef r;
  for (std::uint64_t i = 0; i < 64; ++i)
    if ((*a)->claim(**x, i, r) == cache::Claim::busy) ++evicting;
  CHECK(evicting == 8);
  // A new attachment takes the dead slot (the first free one) and finishes its evictions.
  auto c = cache::Cache::attach(config_for(dir.path));
  REQUIRE(c.ok());
  CHECK(used(**a) == 56 * kMiB);
  for (std::uint64_t i = 0; i < 8; ++i) CHECK(has_hole((*x)->fd, i * kMiB, kMiB));
  evicting = 0;
  for (std::uint64_t i = 0; i < 64; ++i)
    if ((*a)->claim(**x, i, r) == cache::Claim::busy) ++evicting;
  CHECK(evicting == 0);
}
