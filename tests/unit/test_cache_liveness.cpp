// Liveness of the cache's processes (core/cache/liveness.hpp) with real forked processes: a live
// holder, a zombie (dead, not yet reaped), a SIGSTOPped one; and through Cache: a zombie fetcher's
// chunk is taken over at once, a stopped one's when its lease runs out. No sleeps: pipes and waitid.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/liveness.hpp"
#include "cache_unit_support.hpp"

using namespace ossshim;
using namespace cache_test;

namespace {

// A child that holds `slot` of dir/procs, reports it on a pipe, then does `then` (exit or wait).
enum class Then { exit_now, wait_for_kill, stop_self };

pid_t holder(const std::string& dir, std::uint32_t slot, Then then, int& report) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(p[0]);
    cache::Liveness live(cache::Liveness::open_file(dir));
    char ok = live.hold(slot) ? 'y' : 'n';
    (void)!::write(p[1], &ok, 1);
    if (then == Then::exit_now) ::_exit(0);
    if (then == Then::stop_self) ::raise(SIGSTOP);
    for (;;) ::pause();
  }
  ::close(p[1]);
  report = p[0];
  return child;
}

void reap(pid_t child) {
  ::kill(child, SIGKILL);
  siginfo_t info{};
  ::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED);
}

}  // namespace

TEST_CASE("liveness: a slot is held while its process lives, and free once it is a zombie",
          "[cache][liveness]") {
  TempDir dir;
  cache::Liveness me(cache::Liveness::open_file(dir.path));
  REQUIRE(me.fd() >= 0);
  int report = -1;
  pid_t child = holder(dir.path, 3, Then::exit_now, report);
  char b = 0;
  REQUIRE(read_byte(report, b));
  CHECK(b == 'y');
  ::close(report);
  // Dead but not reaped (WNOWAIT leaves the zombie): the kernel released its lock at exit.
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) == 0);
  CHECK(::kill(child, 0) == 0);  // the pid still exists
  CHECK_FALSE(me.held_by_other(3));
  CHECK(me.hold(3));
  REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED) == 0);
}

TEST_CASE("liveness: a live or stopped holder keeps its slot; its death frees it", "[cache][liveness]") {
  TempDir dir;
  cache::Liveness me(cache::Liveness::open_file(dir.path));
  int report = -1;
  pid_t child = holder(dir.path, 5, Then::stop_self, report);
  char b = 0;
  REQUIRE(read_byte(report, b));
  CHECK(b == 'y');
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WSTOPPED) == 0);
  CHECK(info.si_code == CLD_STOPPED);
  CHECK(me.held_by_other(5));  // stopped is alive: only a lease tells it is stuck
  CHECK_FALSE(me.hold(5));
  CHECK_FALSE(me.held_by_other(6));
  reap(child);
  ::close(report);
  CHECK_FALSE(me.held_by_other(5));
  CHECK(me.hold(5));
  me.release(5);
  CHECK_FALSE(me.held_by_other(5));
}

TEST_CASE("liveness: a lease runs out only when neither the claim nor the last progress is recent",
          "[cache][liveness]") {
  CHECK_FALSE(cache::Liveness::stalled(1000, 500, 100, 1100));
  CHECK(cache::Liveness::stalled(1000, 500, 100, 1101));
  CHECK_FALSE(cache::Liveness::stalled(0, 5000, 100, 5100));  // a fresh claim by an idle process
  CHECK(cache::Liveness::stalled(0, 5000, 100, 5101));
}

TEST_CASE("a zombie fetcher's chunk is taken over at once, a stopped one's when its lease runs out",
          "[cache][liveness]") {
  TempDir dir;
  Config cfg = config_for(dir.path);
  cfg.fetch_lease_ms = 200;
  auto a = cache::Cache::attach(cfg);
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", 2 * kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  for (std::uint64_t index : {0, 1}) {
    bool stop = index == 1;
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // claims the chunk, reports, then exits (a zombie) or stops
      ::close(p[0]);
      auto b = cache::Cache::attach(cfg);
      if (!b.ok()) ::_exit(2);
      auto y = (*b)->object({"bkt", "x", "\"e1\"", 2 * kMiB, "/oss/bkt/x"});
      cache::ChunkRef r;
      char c = y.ok() && (*b)->claim(**y, index, r) == cache::Claim::claimed ? 'y' : 'n';
      (void)!::write(p[1], &c, 1);
      if (stop) ::raise(SIGSTOP);
      ::_exit(0);  // no detach: the claim stays in the table
    }
    ::close(p[1]);
    char c = 0;
    REQUIRE(read_byte(p[0], c));
    ::close(p[0]);
    REQUIRE(c == 'y');
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, (stop ? WSTOPPED : WEXITED) | WNOWAIT) == 0);
    cache::ChunkRef r;
    CHECK((*a)->claim(**x, index, r) == cache::Claim::busy);
    std::uint64_t takeovers = (*a)->stats(false).takeovers;
    CHECK((*a)->wait(**x, index, r) == cache::Claim::claimed);  // bounded: the lease is 200 ms
    CHECK((*a)->stats(false).takeovers == takeovers + 1);
    std::string bytes = chunk_bytes(index);
    REQUIRE(::pwrite((*x)->fd, bytes.data(), bytes.size(), static_cast<off_t>(index * kMiB)) ==
            static_cast<ssize_t>(bytes.size()));
    REQUIRE((*a)->complete(**x, index, r, util::crc64_update(0, bytes.data(), bytes.size())).ok());
    CHECK((*a)->claim(**x, index, r) == cache::Claim::ready);
    reap(child);
  }
}
