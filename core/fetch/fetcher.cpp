#include "fetch/fetcher.hpp"

namespace ossshim::fetch {

void Fetcher::submit(std::function<void()> job, Priority priority) {
  std::lock_guard lock(mu_);
  (priority == Priority::demand ? demand_ : prefetch_).push_back(std::move(job));
  // Workers start on demand and then stay until the fetcher goes (in the shim: never).
  if (idle_ == 0 && threads_.size() < workers_) {
    threads_.emplace_back([this] { work(); });
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
    cv_.wait(lock, [&] { return stopping_ || !demand_.empty() || !prefetch_.empty(); });
    --idle_;
    if (stopping_) return;
    auto& queue = demand_.empty() ? prefetch_ : demand_;
    auto job = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

Fetcher::~Fetcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    demand_.clear();
    prefetch_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Fetcher::after_fork_child() {
  // The old objects may be mid-update by threads that no longer exist: leak them, start fresh.
  new (&mu_) std::mutex;
  new (&cv_) std::condition_variable;
  new (&demand_) decltype(demand_);
  new (&prefetch_) decltype(prefetch_);
  new (&threads_) decltype(threads_);  // the parent's std::thread objects are leaked, not destroyed
  idle_ = 0;
}

}  // namespace ossshim::fetch
