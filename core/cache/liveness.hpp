// Liveness of the processes attached to a cache, without pid numbers or /proc: byte <slot> of the
// directory's `procs` file is OFD-write-locked by the process in that slot. The kernel releases it
// when the process exits (before it is reaped, so a zombie is dead), and OFD locks ignore pids, so
// it holds across PID namespaces and containers. A live process can still be stuck (SIGSTOP, a
// frozen container): a claim carries a lease, renewed by the fetcher's progress.
#pragma once

#include <cstdint>
#include <string>

namespace ossshim::cache {

class Liveness {
 public:
  Liveness() = default;
  explicit Liveness(int procs_fd) : fd_(procs_fd) {}
  // Opens (creating) `dir`/procs; -1 with errno on failure.
  static int open_file(const std::string& dir);

  int fd() const { return fd_; }
  // Takes slot `slot` for this open file description: false when a live process holds it.
  bool hold(std::uint32_t slot) const;
  void release(std::uint32_t slot) const;
  // Whether another open file description (another live process) holds `slot`. When the kernel
  // cannot tell, the answer is yes: a live fetcher is never taken for a dead one.
  bool held_by_other(std::uint32_t slot) const;

  // A lease that ran out: neither the process's last progress nor the claim itself is younger
  // than `lease_ms` at `now_ms` (all CLOCK_MONOTONIC ms).
  static bool stalled(std::uint64_t progress_ms, std::uint64_t since_ms, std::uint64_t lease_ms,
                      std::uint64_t now_ms) {
    return now_ms > (progress_ms > since_ms ? progress_ms : since_ms) + lease_ms;
  }

 private:
  int fd_ = -1;
};

}  // namespace ossshim::cache
