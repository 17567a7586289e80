#include "cache/budget.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "config/config.hpp"
#include "log/log.hpp"
#include "util/size.hpp"

namespace ossshim::cache {

extern const char* const kSpaceAdvice;                                              // cache.cpp
Error cache_error(const std::string& target, int err, const std::string& message);  // cache.cpp

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
// Headroom always left to the processes under a memory cgroup limit (see cgroup_room()).
constexpr std::uint64_t kCgroupHeadroom = 256 * kMiB;
// cgroup v1 writes "unlimited" as PAGE_COUNTER_MAX in bytes (about 2^63, page-rounded).
constexpr std::uint64_t kV1Unlimited = 1ull << 62;

const char* const kCgroupAdvice =
    "raise the container's memory limit, set OSSSHIM_CACHE_DIR to a directory on a local disk, or "
    "set shared_cache=false";

std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// One memory cgroup hierarchy as this process sees it.
struct Hierarchy {
  std::string mount;  // where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory
  std::string path;   // this process's cgroup in it, "/a/b" ("/" for the root)
  const char* limit_file;
  const char* usage_file;
  bool v1;
};

// The memory hierarchies named by /proc/self/cgroup: the v1 memory controller's, and the v2
// unified one (whether it has the memory controller shows by its files being there).
std::vector<Hierarchy> memory_hierarchies(const std::string& proc_cgroup, const std::string& root) {
  std::vector<Hierarchy> out;
  std::ifstream in(proc_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty() && line.compare(0, first, "0") == 0) {
      // Pure v2 mounts the unified hierarchy at the root; hybrid systems at root/unified.
      std::string mount = is_directory(root + "/unified") ? root + "/unified" : root;
      out.push_back({mount, path, "memory.max", "memory.current", false});
      continue;
    }
    std::stringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');)
      if (name == "memory")
        out.push_back(
            {root + "/" + controllers, path, "memory.limit_in_bytes", "memory.usage_in_bytes", true});
  }
  return out;
}

// The directory of `path` under `mount`. Without a cgroup namespace a container sees its host
// path (/docker/<id>) while its mount's root is that cgroup itself: drop leading components
// until the directory exists.
std::string cgroup_directory(const Hierarchy& h) {
  std::string path = h.path == "/" ? "" : h.path;
  while (!path.empty() && !is_directory(h.mount + path)) {
    auto next = path.find('/', 1);
    path = next == std::string::npos ? "" : path.substr(next);
  }
  return h.mount + path;
}

// The limit written at one level; unset when unlimited or not there.
std::optional<std::uint64_t> level_limit(const Hierarchy& h, const std::string& dir) {
  auto text = read_first_line(dir + "/" + h.limit_file);
  if (!text || *text == "max") return std::nullopt;
  auto limit = parse_number(*text);
  if (!limit || (h.v1 && *limit >= kV1Unlimited)) return std::nullopt;
  return limit;
}

// The level of `h` (this cgroup or an ancestor, up to the mount) leaving the smallest room.
std::optional<CgroupLimit> binding_level(const Hierarchy& h) {
  std::optional<CgroupLimit> best;
  for (std::string dir = cgroup_directory(h);; dir = dir.substr(0, dir.rfind('/'))) {
    if (auto limit = level_limit(h, dir)) {
      auto usage = parse_number(read_first_line(dir + "/" + h.usage_file).value_or("0")).value_or(0);
      CgroupLimit here{dir, *limit, usage};
      if (!best || cgroup_room(here.limit, here.usage) < cgroup_room(best->limit, best->usage)) best = here;
    }
    if (dir.size() <= h.mount.size()) break;
  }
  return best;
}

std::optional<std::uint64_t> mem_total(const std::string& meminfo) {
  std::ifstream in(meminfo);
  std::string name, unit;
  std::uint64_t kib = 0;
  while (in >> name >> kib) {
    std::getline(in, unit);
    if (name == "MemTotal:") return kib * 1024;
  }
  return std::nullopt;
}

std::uint64_t ram_bytes(const std::string& meminfo) {
  if (auto total = mem_total(meminfo)) return *total;
  return static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
         static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

bool on_memory(const std::string& dir) {
  struct statfs fs;
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  return static_cast<std::uint64_t>(fs.f_type) == TMPFS_MAGIC ||
         static_cast<std::uint64_t>(fs.f_type) == RAMFS_MAGIC;
}

std::string describe(const CgroupLimit& c) {
  return "memory cgroup " + c.path + " limit " + util::format_size(c.limit) + ", " +
         util::format_size(c.usage) + " in use";
}

// The three automatic bounds, each with its reason; the smallest wins.
struct Bound {
  std::uint64_t bytes;
  std::string why;
};

Result<Budget> configured_budget(const BudgetInputs& in, std::uint64_t fs_bytes, std::uint64_t fs_limit,
                                 std::uint64_t minimum) {
  Budget b{in.cache_size, "cache_size " + util::format_size(in.cache_size) + " (configured)"};
  if (b.bytes > fs_limit) {
    log::warn("cache " + in.dir + ": cache_size " + util::format_size(b.bytes) +
              " exceeds 90% of its file system (" + util::format_size(fs_bytes) + "); using " +
              util::format_size(fs_limit));
    b = {fs_limit, b.source + ", reduced to 90% of the file system (" + util::format_size(fs_bytes) + ")"};
  }
  if (b.bytes < minimum && in.cache_size < fs_limit)
    return cache_error(in.dir, EINVAL,
                       "cache_size " + util::format_size(in.cache_size) + " is below the minimum of " +
                           util::format_size(minimum) +
                           " (8 chunks, and at least 64 MiB); raise OSSSHIM_CACHE_SIZE");
  return b;
}

Status fs_large_enough(const std::string& dir, std::uint64_t fs_bytes, std::uint64_t fs_limit,
                       std::uint64_t minimum) {
  if (fs_limit >= minimum) return ok_status();
  return cache_error(dir, ENOSPC,
                     "the cache's file system holds " + util::format_size(fs_bytes) +
                         ": too small for a cache (90% of it, " + util::format_size(fs_limit) +
                         ", is below the minimum of " + util::format_size(minimum) + "); " + kSpaceAdvice);
}

// An explicit cache_size is the user's word, but one the cgroup cannot hold is an OOM kill
// waiting to happen: say so once, with the numbers.
void warn_if_cgroup_too_small(const BudgetInputs& in, const Budget& b,
                              const std::optional<CgroupLimit>& cgroup) {
  if (!cgroup || b.bytes <= cgroup_room(cgroup->limit, cgroup->usage)) return;
  log::warn("cache " + in.dir + ": cache_size " + util::format_size(b.bytes) + " does not fit the " +
            describe(*cgroup) + " (room for " + util::format_size(cgroup_room(cgroup->limit, cgroup->usage)) +
            "); tmpfs pages are never reclaimed, so a full cache gets processes OOM-killed; lower "
            "OSSSHIM_CACHE_SIZE or " +
            kCgroupAdvice);
}

}  // namespace

std::optional<CgroupLimit> binding_cgroup_limit(const std::string& proc_cgroup,
                                                const std::string& cgroup_root) {
  std::optional<CgroupLimit> best;
  for (const Hierarchy& h : memory_hierarchies(proc_cgroup, cgroup_root)) {
    auto level = binding_level(h);
    if (level && (!best || cgroup_room(level->limit, level->usage) < cgroup_room(best->limit, best->usage)))
      best = level;
  }
  return best;
}

// Pages a tmpfs cache holds stay charged to the cgroup until evicted, so the processes (the
// program's heap, the model it copies out of the cache, the shim's in-flight buffers) must fit
// in what the cache leaves. Half of the free room mirrors "half of RAM" on a host; the fixed
// 256 MiB keeps a small or nearly full cgroup from being pushed over by the cache alone.
std::uint64_t cgroup_room(std::uint64_t limit, std::uint64_t usage) {
  std::uint64_t free = limit > usage ? limit - usage : 0;
  std::uint64_t after_headroom = free > kCgroupHeadroom ? free - kCgroupHeadroom : 0;
  return std::min(free / 2, after_headroom);
}

std::uint64_t minimum_budget(std::uint64_t chunk_size) {
  return std::max<std::uint64_t>(kMinCacheChunks * chunk_size, kMinCacheBytes);
}

Result<Budget> choose_budget(const BudgetInputs& in) {
  struct statvfs fs;
  if (::statvfs(in.dir.c_str(), &fs) != 0)
    return cache_error(in.dir, errno,
                       std::string("cannot measure the cache's file system: ") + std::strerror(errno));
  std::uint64_t fs_bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  std::uint64_t fs_limit = fs_bytes / 10 * 9;
  std::uint64_t minimum = minimum_budget(in.chunk_size);
  bool memory = in.memory_backed.value_or(on_memory(in.dir));
  auto cgroup = memory ? binding_cgroup_limit(in.proc_cgroup, in.cgroup_root) : std::nullopt;

  if (in.cache_size) {
    auto b = configured_budget(in, fs_bytes, fs_limit, minimum);
    if (!b) return b;
    if (auto st = fs_large_enough(in.dir, fs_bytes, fs_limit, minimum); !st) return st.error();
    warn_if_cgroup_too_small(in, *b, cgroup);
    return b;
  }

  if (auto st = fs_large_enough(in.dir, fs_bytes, fs_limit, minimum); !st) return st.error();
  std::uint64_t ram = ram_bytes(in.meminfo);
  std::vector<Bound> bounds = {
      {ram / 2, "half of RAM (" + util::format_size(ram) + ")"},
      {fs_limit, "90% of the cache's file system (" + util::format_size(fs_bytes) + ")"},
  };
  if (cgroup) {
    std::uint64_t room = cgroup_room(cgroup->limit, cgroup->usage);
    if (room < minimum)
      return cache_error(
          in.dir, ENOSPC,
          "the " + describe(*cgroup) + " leaves " + util::format_size(room) +
              " for a cache (half the free memory, keeping 256 MiB for the processes), below the "
              "minimum of " +
              util::format_size(minimum) +
              "; a cache on tmpfs is charged to the cgroup and never reclaimed; " + kCgroupAdvice);
    bounds.push_back({room, describe(*cgroup)});
  }
  const Bound& least = *std::min_element(bounds.begin(), bounds.end(),
                                         [](const Bound& a, const Bound& b) { return a.bytes < b.bytes; });
  if (least.bytes < minimum)
    return cache_error(in.dir, ENOSPC,
                       "half of RAM (" + util::format_size(ram) + ") is below the minimum cache of " +
                           util::format_size(minimum) + "; set shared_cache=false");
  return Budget{least.bytes, "automatic: " + least.why + " -> " + util::format_size(least.bytes)};
}

Result<Budget> choose_budget(std::uint64_t cache_size, std::uint64_t chunk_size, const std::string& dir) {
  BudgetInputs in;
  in.cache_size = cache_size;
  in.chunk_size = chunk_size;
  in.dir = dir;
  return choose_budget(in);
}

std::string kept_budget_source(std::uint64_t kept, const Budget& chosen) {
  if (kept == chosen.bytes) return chosen.source;
  return "kept from the process that created the cache; this process would choose " + chosen.source;
}

void report_kept_budget(const std::string& dir, std::uint64_t kept, const Budget& chosen, bool configured) {
  if (kept == chosen.bytes) return;
  std::string line = "cache " + dir + ": budget " + util::format_size(kept) +
                     " set by the process that created it is kept, not " + chosen.source;
  if (!configured) {
    log::info(line + " (`ossrun cache clear` applies a new one)");
    return;
  }
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  log::warn(line + "; to apply it, run `ossrun cache clear` while no process uses the cache");
}

}  // namespace ossshim::cache
