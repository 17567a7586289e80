// The fork registry (core/util/forksafe): hook order, and that a child forked while other
// threads hold registered locks finds them free and what they guard consistent.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/forksafe.hpp"

using namespace ossshim;

// Under ThreadSanitizer: a forked child holds the records of its parent's threads, finished ones
// among them, which it can never join; its exit would report them as leaked.
extern "C" const char* __tsan_default_options() {
  return "report_thread_leaks=0";
}

namespace {
std::vector<std::string> g_calls;
void record(void* what) {
  g_calls.push_back(static_cast<const char*>(what));
}

// Waits for child `pid`; its exit status, or -1 if it did not exit normally.
int exit_status(pid_t pid) {
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

TEST_CASE("prepare runs in ascending rank, parent and child in descending", "[forksafe]") {
  g_calls.clear();
  forksafe::Hooks h{record, record, record};
  static char a[] = "a", b[] = "b", c[] = "c";
  auto ib = forksafe::add(forksafe::Rank::transport, h, b);
  auto ia = forksafe::add(forksafe::Rank::stdio_feeders, h, a);
  auto ic = forksafe::add(forksafe::Rank::transport, h, c);  // same rank: after b
  forksafe::prepare();
  forksafe::parent();
  forksafe::prepare();
  forksafe::child();
  CHECK(g_calls == std::vector<std::string>{"a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"});
  forksafe::remove(ib);
  g_calls.clear();
  forksafe::prepare();
  forksafe::parent();
  CHECK(g_calls == std::vector<std::string>{"a", "c", "c", "a"});
  forksafe::remove(ia);
  forksafe::remove(ic);
}

TEST_CASE("a set visits each live member once", "[forksafe]") {
  forksafe::Set set;
  forksafe::Set::Member m1, m2, m3;
  int o1 = 1, o2 = 2, o3 = 3;
  set.insert(m1, &o1);
  set.insert(m2, &o2);
  set.insert(m3, &o3);
  set.erase(m2);
  set.erase(m2);  // twice: harmless
  int sum = 0, count = 0;
  std::lock_guard lock(set.mu);
  set.each([&](void* p) { sum += *static_cast<int*>(p), ++count; });
  CHECK(count == 2);
  CHECK(sum == 4);
}

// A thread is half-way through an update under a guarded lock when another thread forks: fork
// must wait for it, so the child finds the lock free and both halves written. (Without the guard
// the child would see the lock held for ever and the update half done.)
TEST_CASE("fork waits for a guarded lock's holder", "[forksafe]") {
  forksafe::install();
  std::mutex mu;
  forksafe::Guard guard(forksafe::Rank::vfs_tables, mu);
  int first = 0, second = 0;  // guarded by mu: always equal outside it
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  bool held = false, preparing = false;
  // A lower-ranked hook tells the holder that fork has begun (it runs before prepare takes `mu`).
  struct Ctx {
    std::mutex* mu;
    std::condition_variable* cv;
    bool* preparing;
  } ctx{&sync_mu, &sync_cv, &preparing};
  auto started = forksafe::add(forksafe::Rank::stdio_feeders,
                               forksafe::Hooks{[](void* p) {
                                                 auto* c = static_cast<Ctx*>(p);
                                                 std::lock_guard l(*c->mu);
                                                 *c->preparing = true;
                                                 c->cv->notify_all();
                                               },
                                               nullptr, nullptr},
                               &ctx);
  std::thread holder([&] {
    std::lock_guard lock(mu);
    first = 1;
    std::unique_lock l(sync_mu);
    held = true;
    sync_cv.notify_all();
    sync_cv.wait(l, [&] { return preparing; });
    second = 1;  // only now is the update complete
  });
  {
    std::unique_lock l(sync_mu);
    sync_cv.wait(l, [&] { return held; });
  }
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    bool free_now = mu.try_lock();
    _exit(free_now && first == 1 && second == 1 ? 0 : 1);
  }
  holder.join();
  forksafe::remove(started);
  CHECK(exit_status(pid) == 0);
}

// Threads keep taking two guarded locks in rank order while the main thread forks many times:
// every child finds both free (exit 0); no fork deadlocks (a hang is the test's timeout).
TEST_CASE("many forks while threads take guarded locks", "[forksafe]") {
  forksafe::install();
  std::mutex outer, inner;
  forksafe::Guard g1(forksafe::Rank::open_files, outer), g2(forksafe::Rank::fetcher, inner);
  std::atomic<bool> stop{false};
  std::atomic<long> value{0};
  long pairs[2] = {0, 0};  // guarded by outer then inner: always equal outside them
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      while (!stop.load()) {
        std::lock_guard a(outer);
        ++pairs[0];
        std::lock_guard b(inner);
        ++pairs[1];
        value.fetch_add(1);
      }
    });
  int failures = 0;
  for (int i = 0; i < 200; ++i) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      bool ok = outer.try_lock() && inner.try_lock() && pairs[0] == pairs[1];
      _exit(ok ? 0 : 1);
    }
    if (exit_status(pid) != 0) ++failures;
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(value.load() > 0);
}
