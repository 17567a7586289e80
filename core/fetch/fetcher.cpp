#include "fetch/fetcher.hpp"

#include <thread>

namespace ossshim::fetch {

void Fetcher::submit(std::function<void()> job, Priority priority) {
  std::lock_guard lock(mu_);
  (priority == Priority::demand ? demand_ : prefetch_).push_back(std::move(job));
  // Workers start on demand and then stay (detached: process exit ends them).
  if (idle_ == 0 && started_ < workers_) {
    ++started_;
    std::thread([this] { work(); }).detach();
  } else {
    cv_.notify_one();
  }
}

bool Fetcher::saturated() {
  std::lock_guard lock(mu_);
  return demand_.size() + prefetch_.size() >= workers_;
}

void Fetcher::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return !demand_.empty() || !prefetch_.empty(); });
    --idle_;
    auto& queue = demand_.empty() ? prefetch_ : demand_;
    auto job = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

void Fetcher::after_fork_child() {
  // The old objects may be mid-update by threads that no longer exist: leak them, start fresh.
  new (&mu_) std::mutex;
  new (&cv_) std::condition_variable;
  new (&demand_) decltype(demand_);
  new (&prefetch_) decltype(prefetch_);
  started_ = idle_ = 0;
}

}  // namespace ossshim::fetch
