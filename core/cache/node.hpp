// State the processes of one user on one node share for an endpoint, with or without the chunk
// cache: a namespace epoch (bumped by every create, rename, unlink, mkdir, rmdir, so that other
// processes drop their metadata caches: read-your-writes across the node) and lock files that
// stand in for virtual paths (flock/fcntl locks, O_EXCL creation claims).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "util/error.hpp"

namespace ossshim::cache {

class Node {
 public:
  // Lives in the cache's root directory (cache_dir, default /dev/shm/ossshim-<uid>), created
  // mode 0700 and checked like the cache's.
  static Result<std::unique_ptr<Node>> attach(const Config& config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  std::uint64_t epoch() const { return epoch_->load(std::memory_order_acquire); }
  void bump() { epoch_->fetch_add(1, std::memory_order_acq_rel); }

  // A file standing for `display` ("/oss/bucket/key"), for locks; `kind` separates uses.
  std::string lock_path(const std::string& display, const char* kind) const;

 private:
  Node() = default;
  std::string locks_;
  std::atomic<std::uint64_t>* epoch_ = nullptr;
};

}  // namespace ossshim::cache
