// The cache budget against fake /proc and /sys trees: cgroup v2 and v1 limits, their ancestors,
// the unlimited spellings, RAM, the file system, and the errors' numbers and fixes.
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cache/budget.hpp"

using namespace ossshim;
using namespace ossshim::cache;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kGiB = 1ull << 30;

// A temporary root holding proc/self/cgroup, proc/meminfo, sys/fs/cgroup and a cache directory.
struct FakeNode {
  fs::path root;
  FakeNode() {
    char name[] = "/tmp/ossshim-budget-XXXXXX";
    root = ::mkdtemp(name);
    fs::create_directories(root / "cache");
    fs::create_directories(root / "proc");
    fs::create_directories(root / "sys");
    meminfo(8 * kGiB);
    write("proc/cgroup", "");
  }
  ~FakeNode() { fs::remove_all(root); }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  void write(const std::string& relative, const std::string& text) const {
    fs::path p = root / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  void meminfo(std::uint64_t bytes) const {
    write("proc/meminfo", "MemTotal:       " + std::to_string(bytes / 1024) +
                              " kB\nMemFree:         1000 kB\nMemAvailable:    2000 kB\n");
  }
  // One cgroup level: limit text ("max", a number) and usage, under sys/<hierarchy><path>.
  void level(const std::string& dir, const char* limit_file, const std::string& limit, const char* usage_file,
             std::uint64_t usage) const {
    write("sys/" + dir + "/" + limit_file, limit + "\n");
    write("sys/" + dir + "/" + usage_file, std::to_string(usage) + "\n");
  }
  void v2(const std::string& dir, const std::string& limit, std::uint64_t usage) const {
    level(dir, "memory.max", limit, "memory.current", usage);
  }
  void v1(const std::string& dir, const std::string& limit, std::uint64_t usage) const {
    level(dir, "memory.limit_in_bytes", limit, "memory.usage_in_bytes", usage);
  }
  BudgetInputs inputs(std::uint64_t cache_size = 0) const {
    BudgetInputs in;
    in.cache_size = cache_size;
    in.chunk_size = 8 * kMiB;
    in.dir = (root / "cache").string();
    in.proc_cgroup = (root / "proc/cgroup").string();
    in.cgroup_root = (root / "sys").string();
    in.meminfo = (root / "proc/meminfo").string();
    in.memory_backed = true;
    return in;
  }
  std::uint64_t fs_limit() const {
    struct statvfs v;
    REQUIRE(::statvfs((root / "cache").c_str(), &v) == 0);
    return static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize / 10 * 9;
  }
};

Budget chosen(const BudgetInputs& in) {
  auto b = choose_budget(in);
  INFO((b ? b->source : b.error().to_string()));
  REQUIRE(b);
  return *b;
}

}  // namespace

TEST_CASE("cgroup room: half the free memory, and always 256 MiB left to the processes", "[budget]") {
  CHECK(cgroup_room(768 * kMiB, 0) == 384 * kMiB);
  CHECK(cgroup_room(768 * kMiB, 168 * kMiB) == 300 * kMiB);  // free 600: half
  CHECK(cgroup_room(768 * kMiB, 368 * kMiB) == 144 * kMiB);  // free 400: minus 256 MiB
  CHECK(cgroup_room(768 * kMiB, 600 * kMiB) == 0);
  CHECK(cgroup_room(768 * kMiB, 900 * kMiB) == 0);  // over the limit (usage is racy)
  CHECK(minimum_budget(1 * kMiB) == 64 * kMiB);
  CHECK(minimum_budget(16 * kMiB) == 128 * kMiB);
}

TEST_CASE("no cgroup files at all: half of RAM", "[budget]") {
  FakeNode n;
  n.meminfo(2 * kGiB);
  REQUIRE(n.fs_limit() > 1 * kGiB);
  CHECK_FALSE(binding_cgroup_limit(n.inputs().proc_cgroup, n.inputs().cgroup_root));
  Budget b = chosen(n.inputs());
  CHECK(b.bytes == 1 * kGiB);
  CHECK(b.source == "automatic: half of RAM (2.0 GiB) -> 1.0 GiB");
}

TEST_CASE("cgroup v2: the smallest room of the cgroup and its ancestors", "[budget]") {
  FakeNode n;
  n.meminfo(64 * kGiB);
  REQUIRE(n.fs_limit() > 400 * kMiB);
  n.write("proc/cgroup", "0::/kubepods/pod1/ctr\n");
  n.write("sys/cgroup.controllers", "cpu memory\n");  // pure v2: mounted at the root

  SECTION("child smaller than its parent") {
    n.v2("kubepods", "max", 2 * kGiB);
    n.v2("kubepods/pod1", std::to_string(4 * kGiB), 1 * kGiB);
    n.v2("kubepods/pod1/ctr", std::to_string(768 * kMiB), 0);
    Budget b = chosen(n.inputs());
    CHECK(b.bytes == 384 * kMiB);
    CHECK(b.source == "automatic: memory cgroup " + n.inputs().cgroup_root +
                          "/kubepods/pod1/ctr limit 768.0 MiB, 0 B in use -> 384.0 MiB");
  }
  SECTION("child larger than its parent: the parent binds") {
    n.v2("kubepods/pod1", std::to_string(1 * kGiB), 200 * kMiB);
    n.v2("kubepods/pod1/ctr", std::to_string(8 * kGiB), 100 * kMiB);
    Budget b = chosen(n.inputs());
    CHECK(b.bytes == 412 * kMiB);  // (1024 - 200) / 2
    CHECK(b.source.find("/kubepods/pod1 limit 1.0 GiB, 200.0 MiB in use -> 412.0 MiB") != std::string::npos);
  }
  SECTION("\"max\" everywhere is no limit") {
    n.v2("kubepods/pod1", "max", 200 * kMiB);
    n.v2("kubepods/pod1/ctr", "max", 100 * kMiB);
    CHECK_FALSE(binding_cgroup_limit(n.inputs().proc_cgroup, n.inputs().cgroup_root));
    CHECK(chosen(n.inputs()).source.find("automatic: half of RAM (64.0 GiB)") == 0);
  }
}

TEST_CASE("cgroup v1: memory.limit_in_bytes; the huge sentinel is no limit", "[budget]") {
  FakeNode n;
  n.meminfo(64 * kGiB);
  REQUIRE(n.fs_limit() > 400 * kMiB);
  n.write("proc/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  n.v1("memory", "9223372036854771712", 5 * kGiB);  // the root: PAGE_COUNTER_MAX
  n.v1("memory/docker", "9223372036854771712", 3 * kGiB);

  SECTION("a limit on the container's cgroup") {
    n.v1("memory/docker/abc", std::to_string(768 * kMiB), 168 * kMiB);
    Budget b = chosen(n.inputs());
    CHECK(b.bytes == 300 * kMiB);
    CHECK(b.source == "automatic: memory cgroup " + n.inputs().cgroup_root +
                          "/memory/docker/abc limit 768.0 MiB, 168.0 MiB in use -> 300.0 MiB");
  }
  SECTION("unlimited") {
    n.v1("memory/docker/abc", "9223372036854771712", 100 * kMiB);
    CHECK_FALSE(binding_cgroup_limit(n.inputs().proc_cgroup, n.inputs().cgroup_root));
  }
  SECTION("a container without a cgroup namespace: its mount's root is its own cgroup") {
    fs::remove_all(n.root / "sys/memory");
    n.v1("memory", std::to_string(1 * kGiB), 0);
    auto limit = binding_cgroup_limit(n.inputs().proc_cgroup, n.inputs().cgroup_root);
    REQUIRE(limit);
    CHECK(limit->limit == 1 * kGiB);
    CHECK(limit->path == n.inputs().cgroup_root + "/memory");
  }
}

TEST_CASE("hybrid: v1 memory and a v2 unified hierarchy, the smaller room wins", "[budget]") {
  FakeNode n;
  n.meminfo(64 * kGiB);
  REQUIRE(n.fs_limit() > 400 * kMiB);
  n.write("proc/cgroup", "4:memory:/job\n0::/job\n");
  n.write("sys/unified/cgroup.controllers", "memory\n");
  n.v1("memory/job", std::to_string(2 * kGiB), 0);
  n.v2("unified/job", std::to_string(1 * kGiB), 0);
  Budget b = chosen(n.inputs());
  CHECK(b.bytes == 512 * kMiB);
  CHECK(b.source.find(n.inputs().cgroup_root + "/unified/job limit 1.0 GiB") != std::string::npos);

  SECTION("a v2 hierarchy without the memory controller limits nothing") {
    fs::remove(n.root / "sys/unified/job/memory.max");
    CHECK(chosen(n.inputs()).bytes == 1 * kGiB);  // v1: 2 GiB / 2
  }
}

TEST_CASE("usage near the limit: an error with the numbers and the fix", "[budget]") {
  FakeNode n;
  n.write("proc/cgroup", "4:memory:/ctr\n");
  n.v1("memory/ctr", std::to_string(768 * kMiB), 600 * kMiB);
  auto b = choose_budget(n.inputs());
  REQUIRE_FALSE(b);
  std::string text = b.error().to_string();
  INFO(text);
  CHECK(b.error().err == ENOSPC);
  CHECK(text.find("memory cgroup " + n.inputs().cgroup_root +
                  "/memory/ctr limit 768.0 MiB, 600.0 MiB in use") != std::string::npos);
  CHECK(text.find("leaves 0 B for a cache") != std::string::npos);
  CHECK(text.find("below the minimum of 64.0 MiB") != std::string::npos);
  CHECK(text.find(
            "raise the container's memory limit, set OSSSHIM_CACHE_DIR to a directory on a local disk, or "
            "set shared_cache=false") != std::string::npos);
  CHECK(text.find('\n') == std::string::npos);

  SECTION("a cache on disk is not held back by the cgroup") {
    BudgetInputs in = n.inputs();
    in.memory_backed = false;
    CHECK(chosen(in).source.find("automatic: half of RAM") == 0);
  }
}

TEST_CASE("an explicit cache_size passes through, whatever the cgroup", "[budget]") {
  FakeNode n;
  n.write("proc/cgroup", "4:memory:/ctr\n");
  n.v1("memory/ctr", std::to_string(768 * kMiB), 0);
  REQUIRE(n.fs_limit() > 512 * kMiB);
  Budget b = chosen(n.inputs(512 * kMiB));
  CHECK(b.bytes == 512 * kMiB);
  CHECK(b.source == "cache_size 512.0 MiB (configured)");

  SECTION("below the minimum: EINVAL, as before") {
    auto small = choose_budget(n.inputs(32 * kMiB));
    REQUIRE_FALSE(small);
    CHECK(small.error().err == EINVAL);
    CHECK(small.error().to_string().find(
              "cache_size 32.0 MiB is below the minimum of 64.0 MiB (8 chunks, and at "
              "least 64 MiB); raise OSSSHIM_CACHE_SIZE") != std::string::npos);
  }
  SECTION("larger than the file system: 90% of it") {
    Budget big = chosen(n.inputs(1ull << 60));
    CHECK(big.bytes == n.fs_limit());
    CHECK(big.source.find("cache_size 1024.0 PiB (configured), reduced to 90% of the file system") == 0);
  }
}

TEST_CASE("a file system smaller than half the RAM bounds the budget", "[budget]") {
  FakeNode n;
  n.meminfo(1ull << 60);  // far more RAM than any test machine's disk
  Budget b = chosen(n.inputs());
  CHECK(b.bytes == n.fs_limit());
  CHECK(b.source.find("automatic: 90% of the cache's file system (") == 0);
}

TEST_CASE("a kept budget says so, and what this process would choose", "[budget]") {
  Budget now{300 * kMiB, "automatic: half of RAM (600.0 MiB) -> 300.0 MiB"};
  CHECK(kept_budget_source(300 * kMiB, now) == now.source);
  CHECK(kept_budget_source(1 * kGiB, now) ==
        "kept from the process that created the cache; this process would choose " + now.source);
}
