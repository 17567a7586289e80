// core/cache through core/vfs against the real emulator, with real separate processes
// (cache_reader): one fetch per node, eviction under pressure, a fetcher killed mid-fetch, an
// object replaced mid-read, a private directory, inconsistent control data, a file system that
// is too small or full, and many files left open.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "cache/cache.hpp"
#include "emulator_process.hpp"
#include "log/log.hpp"
#include "util/crc64.hpp"
#include "vfs/vfs.hpp"

using namespace ossshim;
using ossshim::test::EmulatorProcess;
using ossshim::test::random_bytes;

namespace {

constexpr std::uint64_t kMiB = 1 << 20;

struct TempDir {
  std::string path;
  explicit TempDir(const char* base = "/dev/shm") {
    std::string templ = std::string(base) + "/ossshim-cachetest-XXXXXX";
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    ::umount2(path.c_str(), MNT_DETACH);  // when a test mounted a tmpfs here
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

Config config_for(const EmulatorProcess& emu, const std::string& dir, std::uint64_t chunk,
                  std::uint64_t budget) {
  Config c = emu.config();
  c.cache_dir = dir;
  c.chunk_size = chunk;
  c.cache_size = budget;
  c.concurrency = 4;
  return c;
}

std::unique_ptr<vfs::Vfs> make_vfs(const Config& c) {
  auto r = vfs::Vfs::create(c, {"test-ak", "test-sk", ""});
  REQUIRE(r.ok());
  return std::move(r.value());
}

vfs::VPath path(const std::string& s) {
  vfs::VPath p;
  REQUIRE(vfs::parse("/oss", s, p));
  return p;
}

std::uint64_t crc_of(const std::string& s) {
  return util::crc64_update(0, s.data(), s.size());
}

// Reads a whole file through `fs` in `piece`-sized reads.
std::string read_all(vfs::Vfs& fs, const std::string& p, std::size_t piece = kMiB) {
  auto f = fs.open(path(p));
  REQUIRE(f.ok());
  std::string out;
  std::vector<char> buf(piece);
  for (;;) {
    auto n = fs.read(**f, buf.data(), buf.size(), out.size());
    REQUIRE(n.ok());
    if (*n == 0) break;
    out.append(buf.data(), *n);
  }
  return out;
}

// A cache_reader process reading `object`; returns its pid (stdout to `out`).
pid_t spawn_reader(const Config& c, const std::string& object, const std::string& out) {
  const char* reader = std::getenv("OSSSHIM_CACHE_READER");
  REQUIRE(reader != nullptr);
  std::vector<std::string> args = {
      reader, c.endpoint, c.cache_dir, std::to_string(c.chunk_size), std::to_string(c.cache_size), object};
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(reader, argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::string& file) {
  std::ifstream in(file);
  std::string s;
  std::getline(in, s);
  return s;
}

std::string attach_error(const Config& c) {
  auto r = cache::Cache::attach(c);
  return r ? "" : r.error().to_string();
}

}  // namespace

TEST_CASE("processes reading one object at once fetch each byte once, and the next run finds it cached",
          "[cache]") {
  EmulatorProcess emu;
  std::string data = random_bytes(24 * kMiB, 7);
  emu.put_file("bkt", "shard.bin", data);
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  std::string expect = std::to_string(crc_of(data)) + " " + std::to_string(data.size());
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i)
    pids.push_back(spawn_reader(c, "/oss/bkt/shard.bin", dir.path + "/out" + std::to_string(i)));
  for (std::size_t i = 0; i < pids.size(); ++i) {
    CHECK(wait_for(pids[i]) == 0);
    CHECK(slurp(dir.path + "/out" + std::to_string(i)) == expect);
  }
  CHECK(emu.bytes_out("bkt/shard.bin") == data.size());
  // A later process: served from the cache, nothing from the origin.
  emu.reset_stats();
  CHECK(wait_for(spawn_reader(c, "/oss/bkt/shard.bin", dir.path + "/late")) == 0);
  CHECK(slurp(dir.path + "/late") == expect);
  CHECK(emu.bytes_out("bkt/shard.bin") == 0);
  auto fs = make_vfs(c);
  auto s = fs->shared_cache()->stats(true);
  CHECK(s.origin == data.size());
  CHECK(s.unique == data.size());
  CHECK(s.crc_ok == 1);
}

TEST_CASE("a cache smaller than the data stays within its budget and reads correctly", "[cache]") {
  EmulatorProcess emu;
  std::vector<std::string> objects;
  for (unsigned i = 0; i < 3; ++i) {
    objects.push_back(random_bytes(40 * kMiB, 20 + i));
    emu.put_file("bkt", "o" + std::to_string(i), objects.back());
  }
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  // Another process reads the objects too, while four threads here read random pieces.
  pid_t other = spawn_reader(c, "/oss/bkt/o1", dir.path + "/other");
  auto fs = make_vfs(c);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  // Paths parsed here: Catch2's assertions are not thread-safe.
  const vfs::VPath names[3] = {path("/oss/bkt/o0"), path("/oss/bkt/o1"), path("/oss/bkt/o2")};
  for (unsigned t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int k = 0; k < 60; ++k) {
        unsigned which = static_cast<unsigned>(rng() % 3);
        auto f = fs->open(names[which]);
        if (!f) {
          ++mismatches;
          continue;
        }
        std::uint64_t off = rng() % (40 * kMiB);
        std::size_t len = static_cast<std::size_t>(1 + rng() % (3 * kMiB));
        std::vector<char> buf(len);
        auto n = fs->read(**f, buf.data(), len, off);
        std::size_t want = std::min<std::uint64_t>(len, 40 * kMiB - off);
        if (!n || *n != want || std::memcmp(buf.data(), objects[which].data() + off, want) != 0) ++mismatches;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(mismatches == 0);
  CHECK(wait_for(other) == 0);
  CHECK(slurp(dir.path + "/other") == std::to_string(crc_of(objects[1])) + " " + std::to_string(40 * kMiB));
  auto s = fs->shared_cache()->stats(false);
  CHECK(s.used <= s.budget);
  CHECK(s.evicted > 0);
  // What the cache holds on the file system is what it accounts for (hole punching works).
  std::uint64_t on_disk = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path)) {
    struct stat st;
    if (e.path().filename().string().rfind("o-", 0) == 0 && ::stat(e.path().c_str(), &st) == 0)
      on_disk += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  CHECK(on_disk <= s.budget + 4 * kMiB);  // chunks still being written by the last readers
}

TEST_CASE("a fetcher killed mid-fetch does not wedge the others", "[cache]") {
  EmulatorProcess emu;
  std::string data = random_bytes(6 * kMiB, 9);
  emu.put_file("bkt", "slow.bin", data);
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  emu.set_faults("first_byte_ms=3000&ops=GetObject");
  pid_t victim = spawn_reader(c, "/oss/bkt/slow.bin", dir.path + "/victim");
  // Let it attach and claim its chunks, then kill it while its GETs wait for a first byte.
  auto fs = make_vfs(c);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs->shared_cache()->stats(false).inflight == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(fs->shared_cache()->stats(false).inflight > 0);
  ::kill(victim, SIGKILL);
  CHECK(wait_for(victim) == 128 + SIGKILL);
  emu.clear_faults();
  auto start = std::chrono::steady_clock::now();
  CHECK(read_all(*fs, "/oss/bkt/slow.bin") == data);
  auto s = fs->shared_cache()->stats(false);
  CHECK(s.takeovers >= 1);
  // Bounded: the survivor does not wait for the dead process's 3 s first byte, let alone forever.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
}

TEST_CASE("an object replaced mid-read fails with ESTALE, and a reopen reads the new version", "[cache]") {
  EmulatorProcess emu;
  std::string v1 = random_bytes(4 * kMiB, 1), v2 = random_bytes(4 * kMiB, 2);
  emu.put_file("bkt", "model.bin", v1);
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  c.readahead = 0;  // only what is asked for: the later chunks are fetched after the change
  c.attr_ttl_ms = 0;
  auto fs = make_vfs(c);
  auto f = fs->open(path("/oss/bkt/model.bin"));
  REQUIRE(f.ok());
  std::vector<char> buf(kMiB);
  REQUIRE(fs->read(**f, buf.data(), kMiB, 0).ok());
  CHECK(std::memcmp(buf.data(), v1.data(), kMiB) == 0);
  emu.put_file("bkt", "model.bin", v2);
  auto later = fs->read(**f, buf.data(), kMiB, 3 * kMiB);
  REQUIRE_FALSE(later.ok());
  CHECK(later.error().err == ESTALE);
  // The first chunk of the old version is still served to the old open file, never mixed.
  REQUIRE(fs->read(**f, buf.data(), kMiB, 0).ok());
  CHECK(std::memcmp(buf.data(), v1.data(), kMiB) == 0);
  CHECK(read_all(*fs, "/oss/bkt/model.bin") == v2);
}

TEST_CASE("a whole object whose CRC64 disagrees with the server's is dropped and the read fails", "[cache]") {
  EmulatorProcess emu;
  std::string data = random_bytes(3 * kMiB, 8);
  emu.put_file("bkt", "c", data);
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  auto fs = make_vfs(c);
  auto f = fs->open(path("/oss/bkt/c"));
  REQUIRE(f.ok());
  // Stand in for a server whose CRC64 header disagrees with the bytes it sent (the first
  // report is the one kept).
  auto o = fs->shared_cache()->object({"bkt", "c", (*f)->attr.etag, data.size(), "/oss/bkt/c"});
  REQUIRE(o.ok());
  fs->shared_cache()->note_crc(**o, crc_of(data) ^ 1);
  std::vector<char> buf(data.size());
  auto r = fs->read(**f, buf.data(), buf.size(), 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().err == EIO);
  CHECK(r.error().message.find("CRC64") != std::string::npos);
  auto s = fs->shared_cache()->stats(true);
  CHECK(s.crc_bad == 1);
  REQUIRE(s.objects.size() == 1);
  CHECK_FALSE(s.objects[0].crc_checked);
  CHECK(s.objects[0].ready < data.size());  // the object's chunks were dropped, not kept
}

TEST_CASE("the cache directory must belong to the user alone", "[cache]") {
  EmulatorProcess emu;
  TempDir dir;
  Config c = config_for(emu, dir.path + "/cache", kMiB, 64 * kMiB);
  REQUIRE(::mkdir(c.cache_dir.c_str(), 0755) == 0);
  ::chmod(c.cache_dir.c_str(), 0755);
  std::string why = attach_error(c);
  CHECK(why.find("mode 0755") != std::string::npos);
  CHECK(why.find(c.cache_dir) != std::string::npos);
  // The program still works, without the shared cache.
  emu.put_file("bkt", "x", "hello");
  auto fs = make_vfs(c);
  CHECK(fs->shared_cache() == nullptr);
  CHECK(read_all(*fs, "/oss/bkt/x") == "hello");
  ::chmod(c.cache_dir.c_str(), 0700);
  if (::geteuid() == 0) {
    REQUIRE(::chown(c.cache_dir.c_str(), 65534, 65534) == 0);
    why = attach_error(c);
    CHECK(why.find("belongs to uid 65534") != std::string::npos);
  } else {
    WARN("not root: the foreign-owner case needs chown");
  }
}

TEST_CASE("inconsistent control data is discarded and rebuilt, never trusted", "[cache]") {
  EmulatorProcess emu;
  std::string data = random_bytes(3 * kMiB, 3);
  emu.put_file("bkt", "a", data);
  TempDir dir;
  Config c = config_for(emu, dir.path, kMiB, 64 * kMiB);
  std::string control;
  {
    auto fs = make_vfs(c);
    CHECK(read_all(*fs, "/oss/bkt/a") == data);
    control = fs->shared_cache()->dir() + "/control";
  }
  auto corrupt = [&](std::size_t at, const std::string& bytes) {
    int fd = ::open(control.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)) ==
            static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  };
  SECTION("a wrong record size in the header") {
    corrupt(12, std::string("\x39\x30\0\0", 4));
  }
  SECTION("garbage over the whole header") {
    corrupt(0, random_bytes(4096, 5));
  }
  SECTION("a truncated file") {
    REQUIRE(::truncate(control.c_str(), 100) == 0);
  }
  emu.reset_stats();
  auto fs = make_vfs(c);
  REQUIRE(fs->shared_cache() != nullptr);
  CHECK(read_all(*fs, "/oss/bkt/a") == data);
  CHECK(emu.bytes_out("bkt/a") == data.size());  // rebuilt empty: fetched again, not trusted
}

TEST_CASE("a file system too small or full gives one clear error and reads still work", "[cache]") {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    WARN("needs root to mount a small tmpfs in a private mount namespace; skipped");
    return;
  }
  EmulatorProcess emu;
  std::string data = random_bytes(48 * kMiB, 4);
  emu.put_file("bkt", "big", data);
  TempDir dir("/tmp");
  SECTION("a container's 64 MB /dev/shm") {
    REQUIRE(::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, "size=64m,mode=0700") == 0);
    Config c = config_for(emu, dir.path, kMiB, 0);
    std::string why = attach_error(c);
    CHECK(why.find("too small") != std::string::npos);
    CHECK(why.find("--shm-size") != std::string::npos);
    CHECK(why.find("OSSSHIM_CACHE_DIR") != std::string::npos);
    auto fs = make_vfs(c);
    CHECK(fs->shared_cache() == nullptr);
    CHECK(read_all(*fs, "/oss/bkt/big") == data);
  }
  SECTION("a tmpfs that others filled") {
    REQUIRE(::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, "size=128m,mode=0700") == 0);
    std::string filler = dir.path + "/filler";
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT, 0600);
    REQUIRE(::posix_fallocate(fd, 0, 100 * kMiB) == 0);
    ::close(fd);
    Config c = config_for(emu, dir.path + "/cache", kMiB, 100 * kMiB);
    auto fs = make_vfs(c);
    REQUIRE(fs->shared_cache() != nullptr);
    CHECK(read_all(*fs, "/oss/bkt/big") == data);
    auto s = fs->shared_cache()->stats(false);
    CHECK(s.uncached > 0);  // past the cache once the tmpfs was full, not failed
  }
}

TEST_CASE("500 files opened and never closed keep read-ahead and bounded memory", "[cache]") {
  EmulatorProcess emu;
  constexpr int kFiles = 500;
  constexpr std::size_t kSize = 256 << 10;
  for (int i = 0; i < kFiles; ++i)
    emu.put_file("bkt", "f/" + std::to_string(i), random_bytes(kSize, 100 + i));
  TempDir dir;
  Config c = config_for(emu, dir.path, 64 << 10, 256 * kMiB);
  auto fs = make_vfs(c);
  auto rss_anon = [] {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) << 10;
    return 0ull;
  };
  auto before = rss_anon();
  std::vector<std::shared_ptr<vfs::OpenFile>> open;
  for (int i = 0; i < kFiles; ++i) {
    auto f = fs->open(path("/oss/bkt/f/" + std::to_string(i)));
    REQUIRE(f.ok());
    open.push_back(f.value());
  }
  emu.reset_stats();
  // Round-robin sequential reads of 16 KiB across every open file (llama.cpp-like).
  std::vector<std::uint64_t> crc(kFiles, 0);
  std::vector<char> buf(16 << 10);
  for (std::size_t off = 0; off < kSize; off += buf.size())
    for (int i = 0; i < kFiles; ++i) {
      auto n = fs->read(*open[i], buf.data(), buf.size(), off);
      REQUIRE(n.ok());
      crc[i] = util::crc64_update(crc[i], buf.data(), *n);
    }
  auto after = rss_anon();
  for (int i = 0; i < kFiles; ++i) CHECK(crc[i] == crc_of(random_bytes(kSize, 100 + i)));
  auto s = fs->shared_cache()->stats(false);
  CHECK(emu.bytes_out() == std::uint64_t{kFiles} * kSize);  // each byte once
  CHECK(s.waited < s.served);         // read-ahead had chunks ready before they were asked for
#ifndef __SANITIZE_THREAD__           // TSan's shadow of the mapped cache pages counts as anonymous memory
  CHECK(after < before + 16 * kMiB);  // no buffer per open file: the bytes live in the shared cache
#else
  (void)after;
  (void)before;
#endif
}

namespace {
// The eviction protocol test's rendezvous: the evicting thread stops after invalidating.
std::mutex hook_mu;
std::condition_variable hook_cv;
bool hook_reached = false, hook_release = false;
void stop_after_invalidating(const char* point) {
  if (std::strcmp(point, "evict:invalidated") != 0) return;
  std::unique_lock lock(hook_mu);
  hook_reached = true;
  hook_cv.notify_all();
  hook_cv.wait(lock, [] { return hook_release; });
}
}  // namespace

TEST_CASE("eviction invalidates before it punches: a reader's copy from either side never validates",
          "[cache][eviction]") {
  // Two attachments (two process slots, as two processes) on one cache: A reads, B evicts. The
  // test plays each step itself, so the order is exact, not likely.
  TempDir dir;
  Config c;
  c.endpoint = "http://127.0.0.1:1";
  c.cache_dir = dir.path;
  c.chunk_size = kMiB;
  c.cache_size = 64 * kMiB;
  auto a = cache::Cache::attach(c);
  auto b = cache::Cache::attach(c);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::string bytes(kMiB, 'x');
  auto x = (*a)->object({"bkt", "x", "\"e1\"", kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  cache::ChunkRef ref;
  REQUIRE((*a)->claim(**x, 0, ref) == cache::Claim::claimed);
  REQUIRE(::pwrite((*x)->fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  REQUIRE((*a)->complete(**x, 0, ref, crc_of(bytes)).ok());
  REQUIRE((*a)->claim(**x, 0, ref) == cache::Claim::ready);  // A holds a ready reference

  // B fills the budget with claims of another object; the last one evicts x's chunk (the only
  // ready one) and stops between invalidating it and punching its hole.
  hook_reached = hook_release = false;
  cache::set_test_hook(stop_after_invalidating);
  auto y = (*b)->object({"bkt", "y", "\"e2\"", 64 * kMiB, "/oss/bkt/y"});
  REQUIRE(y.ok());
  std::thread evictor([&] {
    cache::ChunkRef r;
    for (std::uint64_t i = 0; i < 64; ++i)
      if ((*b)->claim(**y, i, r) != cache::Claim::claimed) break;
  });
  {
    std::unique_lock lock(hook_mu);
    REQUIRE(hook_cv.wait_for(lock, std::chrono::seconds(30), [] { return hook_reached; }));
  }
  // Invalidated, not yet punched: the bytes are still there, but the copy does not validate.
  std::string copy(kMiB, '\0');
  REQUIRE(::pread((*x)->fd, copy.data(), copy.size(), 0) == static_cast<ssize_t>(copy.size()));
  CHECK(copy == bytes);
  CHECK_FALSE((*a)->still_valid(ref));
  {
    std::lock_guard lock(hook_mu);
    hook_release = true;
    hook_cv.notify_all();
  }
  evictor.join();
  cache::set_test_hook(nullptr);
  // Punched: a copy now is zeros, and does not validate either.
  REQUIRE(::pread((*x)->fd, copy.data(), copy.size(), 0) == static_cast<ssize_t>(copy.size()));
  CHECK(copy == std::string(kMiB, '\0'));
  CHECK_FALSE((*a)->still_valid(ref));
  // And the chunk is a miss for A now, to be fetched again.
  CHECK((*a)->claim(**x, 0, ref) != cache::Claim::ready);
}
