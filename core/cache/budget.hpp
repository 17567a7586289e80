// The shared cache's byte budget: as configured, or chosen from what this process may really use.
// A cache on tmpfs is memory that cannot be reclaimed and is charged to the memory cgroup of the
// process that writes it, so the automatic budget must fit the container, not only the host:
//   automatic = min(half of MemTotal, 90% of the cache's file system, the memory cgroup's room)
// where the cgroup's room (v2 memory.max/memory.current and v1 memory.limit_in_bytes/
// memory.usage_in_bytes, this process's cgroup and every ancestor) leaves headroom for the
// processes themselves (see cgroup_room()).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/error.hpp"

namespace ossshim::cache {

struct BudgetInputs {
  std::uint64_t cache_size = 0;  // configured; 0 = automatic
  std::uint64_t chunk_size = 0;
  std::string dir;  // the cache directory: its file system bounds the budget
  // Where the kernel's views live; unit tests point these at fake trees.
  std::string proc_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string meminfo = "/proc/meminfo";
  // Whether the cache's pages are unreclaimable memory (tmpfs, ramfs), so the memory cgroup
  // bounds them; unset: decided from the file system of `dir`. A disk cache's pages are
  // reclaimable page cache, which the cgroup limit does not need to hold back.
  std::optional<bool> memory_backed;
};

struct Budget {
  std::uint64_t bytes = 0;
  std::string source;  // one line for `ossrun stat`: "automatic: half of RAM (23.4 GiB)"
};

// A memory cgroup level that limits this process.
struct CgroupLimit {
  std::string path;  // the directory holding the limit file
  std::uint64_t limit = 0, usage = 0;
};

// The most binding memory cgroup limit on this process (cgroup v2 and v1, this cgroup and its
// ancestors): the level that leaves the smallest room. Unset when nothing limits.
std::optional<CgroupLimit> binding_cgroup_limit(const std::string& proc_cgroup,
                                                const std::string& cgroup_root);

// How much of a cgroup's limit a cache may take, leaving headroom for the processes.
std::uint64_t cgroup_room(std::uint64_t limit, std::uint64_t usage);

// The smallest budget a cache can work with: 8 chunks, and at least 64 MiB.
std::uint64_t minimum_budget(std::uint64_t chunk_size);

// The budget for a new cache in `in.dir`. Errors name the directory, the numbers and the fix:
// a cache_size below the minimum, a file system or a memory cgroup too small for a cache.
// Warns (log) when an explicit cache_size exceeds the file system and is reduced.
Result<Budget> choose_budget(const BudgetInputs& in);
// The same, from this process's real /proc and /sys.
Result<Budget> choose_budget(std::uint64_t cache_size, std::uint64_t chunk_size, const std::string& dir);

// The budget of an existing cache is the one its creator chose (the table is sized for it).
// What `ossrun stat` says about it: `chosen`'s source, or that it was kept and what this process
// would choose. An explicit cache_size that differs gets one warn line per process naming the
// fix; an automatic one that differs (the cgroup's usage moved) an info line.
std::string kept_budget_source(std::uint64_t kept, const Budget& chosen);
void report_kept_budget(const std::string& dir, std::uint64_t kept, const Budget& chosen, bool configured);

}  // namespace ossshim::cache
