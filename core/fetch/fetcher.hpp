// The process's range-GET workers: one pool shared by every open file, so the number of
// requests (and bytes) in flight is bounded by `concurrency` however many files are open.
// Demand jobs (a reader is waiting) run before prefetch jobs (read-ahead).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "util/forksafe.hpp"

namespace ossshim::fetch {

class Fetcher {
 public:
  enum class Priority { demand, prefetch };
  explicit Fetcher(unsigned workers) : workers_(workers ? workers : 1) {}
  // Drops queued jobs and waits for running ones (their claims are released by the cache).
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  void submit(std::function<void()> job, Priority priority);
  // Whether read-ahead should hold back: enough work is queued to keep every worker busy.
  bool saturated();
  // In a forked child: the parent's workers do not exist here; start over (jobs are dropped —
  // the chunks they had claimed belong to the parent, which fetches them).
  void after_fork_child();

 private:
  void work();

  unsigned workers_;
  std::mutex mu_;
  forksafe::Guard fork_guard_{forksafe::Rank::fetcher, mu_};
  std::condition_variable cv_;
  std::deque<std::function<void()>> demand_, prefetch_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  bool stopping_ = false;
};

}  // namespace ossshim::fetch
