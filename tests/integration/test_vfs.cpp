// core/vfs against the real emulator: metadata and errno, listings, concurrent reads through the
// bounded chunk cache (run under ASan and TSan too), eviction, and an object replaced mid-read.
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "emulator_process.hpp"
#include "vfs/vfs.hpp"

using namespace ossshim;
using ossshim::test::EmulatorProcess;
using ossshim::test::random_bytes;

namespace {

std::unique_ptr<vfs::Vfs> make_vfs(const EmulatorProcess& emu, std::uint64_t chunk, std::uint64_t cache) {
  Config c = emu.config();
  c.chunk_size = chunk;
  c.cache_size = cache;
  c.concurrency = 4;
  c.shared_cache = false;  // these cases exercise the private cache; test_cache covers the shared one
  c.cache_dir = emu.root() + "/.node-state";  // node state (epoch, locks) removed with the root
  auto r = vfs::Vfs::create(c, {emu.access_key_id(), emu.access_key_secret(), ""});
  REQUIRE(r.ok());
  return std::move(r.value());
}

vfs::VPath path(const std::string& s) {
  vfs::VPath p;
  REQUIRE(vfs::parse("/oss", s, p));
  return p;
}

}  // namespace

TEST_CASE("paths normalise lexically and stay inside the prefix", "[vfs]") {
  vfs::VPath p;
  CHECK(vfs::parse("/oss", "/oss//b/./x/../y", p));
  CHECK(p.bucket == "b");
  CHECK(p.key == "y");
  CHECK_FALSE(vfs::parse("/oss", "/oss/../etc/passwd", p));
  CHECK_FALSE(vfs::parse("/oss", "/ossx/b", p));
  CHECK(vfs::parse("/oss", "/oss", p));
  CHECK(p.is_prefix_root());
  CHECK(vfs::to_string("/oss", path("/oss/b/a b/ü")) == "/oss/b/a b/ü");
}

TEST_CASE("stat and list map OSS to files and directories with local errnos", "[vfs]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "dir/a.txt", "aaa");
  emu.put_file("bkt", "dir/sub/b.txt", "b");
  emu.put_file("bkt", "top", "t");
  auto fs = make_vfs(emu, 1 << 20, 8 << 20);

  auto a = fs->stat(path("/oss/bkt/dir/a.txt"));
  REQUIRE(a.ok());
  CHECK_FALSE(a->dir);
  CHECK(a->size == 3);
  CHECK_FALSE(a->etag.empty());
  CHECK(fs->stat(path("/oss/bkt/dir"))->dir);
  CHECK(fs->stat(path("/oss/bkt"))->dir);
  CHECK(fs->stat(path("/oss/bkt/nope")).error().err == ENOENT);
  CHECK(fs->stat(path("/oss/bkt/top/x")).error().err == ENOTDIR);
  CHECK(fs->stat(path("/oss/nobucket/x")).error().err == ENOENT);

  auto list = fs->list(path("/oss/bkt/dir"));
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK(((*list)[0].name == "a.txt" && !(*list)[0].dir));
  CHECK(((*list)[1].name == "sub" && (*list)[1].dir));
  CHECK(fs->list(path("/oss/bkt/top")).error().err == ENOTDIR);
  CHECK(fs->list(path("/oss/bkt/missing")).error().err == ENOENT);
}

TEST_CASE("concurrent reads through a cache smaller than the object return the right bytes", "[vfs]") {
  EmulatorProcess emu;
  std::string data = random_bytes((6 << 20) + 4321, 3);
  emu.put_file("bkt", "big.bin", data);
  auto fs = make_vfs(emu, 256 << 10, 1 << 20);  // 24 chunks, room for 4
  auto f = fs->open(path("/oss/bkt/big.bin"));
  REQUIRE(f.ok());

  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<char> buf(700000);
      for (int i = 0; i < 40; ++i) {
        std::uint64_t off = rng() % data.size();
        std::size_t len = 1 + rng() % buf.size();
        auto r = fs->read(**f, buf.data(), len, off);
        std::size_t want = std::min<std::uint64_t>(len, data.size() - off);
        if (!r.ok() || r.value() != want || std::memcmp(buf.data(), data.data() + off, want) != 0)
          ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(mismatches == 0);

  // A sequential reader gets everything once more, in order.
  std::string all(data.size(), '\0');
  std::size_t at = 0;
  while (at < all.size()) {
    auto r = fs->read(**f, all.data() + at, 100000, at);
    REQUIRE(r.ok());
    REQUIRE(r.value() > 0);
    at += r.value();
  }
  CHECK(all == data);
  CHECK(fs->read(**f, all.data(), 10, data.size()).value() == 0);
}

TEST_CASE("an object replaced after open fails with ESTALE instead of mixing versions", "[vfs]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "obj", random_bytes(2 << 20, 1));
  auto fs = make_vfs(emu, 256 << 10, 4 << 20);
  auto f = fs->open(path("/oss/bkt/obj"));
  REQUIRE(f.ok());
  std::vector<char> buf(1000);
  REQUIRE(fs->read(**f, buf.data(), buf.size(), 0).ok());
  emu.put_file("bkt", "obj", random_bytes(2 << 20, 2));
  auto r = fs->read(**f, buf.data(), buf.size(), 1 << 20);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().err == ESTALE);
  CHECK(r.error().message.find("changed") != std::string::npos);
}

TEST_CASE("fill copies a range for mmap and reports server errors", "[vfs]") {
  EmulatorProcess emu;
  std::string data = random_bytes(3 << 20, 9);
  emu.put_file("bkt", "m", data);
  auto fs = make_vfs(emu, 512 << 10, 4 << 20);
  auto f = fs->open(path("/oss/bkt/m"));
  REQUIRE(f.ok());
  std::string out((2 << 20) + 5, '\0');
  REQUIRE(fs->fill(**f, out.data(), out.size(), 4096).ok());
  CHECK(out == data.substr(4096, out.size()));
  emu.set_faults("error_status=500");  // every request, beyond the retries
  auto st = fs->fill(**f, out.data(), 1000, 0);
  emu.clear_faults();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().err == EIO);
}

TEST_CASE("symlink texts convert to keys of the bucket and back", "[vfs][symlink]") {
  std::string k;
  CHECK(vfs::link_target_key("m/snapshots/r1/config.json", "../../blobs/abc", k));
  CHECK(k == "m/blobs/abc");
  CHECK(vfs::link_text("m/snapshots/r1/config.json", "m/blobs/abc") == "../../blobs/abc");
  CHECK(vfs::link_target_key("a/l", "./x/./y", k));
  CHECK(k == "a/x/y");
  CHECK(vfs::link_text("a/l", "a/x/y") == "x/y");
  CHECK(vfs::link_text("a/b", "a") == "../a");  // a link to its own directory
  CHECK(vfs::link_text("top", "other") == "other");
  CHECK(vfs::link_target_key("a/l", "/abs/key", k));  // "/..." is already bucket-relative
  CHECK(k == "abs/key");
  CHECK_FALSE(vfs::link_target_key("a/l", "../../x", k));  // above the bucket
  CHECK_FALSE(vfs::link_target_key("a/l", "..", k));       // the bucket itself
  CHECK_FALSE(vfs::link_target_key("a/l", "", k));
}

TEST_CASE("symlink objects: lstat, readlink, stat and open follow, ELOOP, unlink and rename",
          "[vfs][symlink]") {
  EmulatorProcess emu;
  std::string data = random_bytes(300000);
  emu.put_file("bkt", "m/blobs/abc", data);
  emu.put_file("bkt", "m/snapshots/r1/.keep", "");
  auto fs = make_vfs(emu, 1 << 16, 8 << 20);

  REQUIRE(fs->symlink("../../blobs/abc", path("/oss/bkt/m/snapshots/r1/config.json")).ok());
  auto l = fs->lstat(path("/oss/bkt/m/snapshots/r1/config.json"));
  REQUIRE(l.ok());
  CHECK(l->link);
  CHECK(l->size == std::string("../../blobs/abc").size());
  CHECK(*fs->readlink(path("/oss/bkt/m/snapshots/r1/config.json")) == "../../blobs/abc");
  vfs::VPath real;
  auto s = fs->stat(path("/oss/bkt/m/snapshots/r1/config.json"), &real);
  REQUIRE(s.ok());
  CHECK_FALSE(s->link);
  CHECK(s->size == data.size());
  CHECK(real.key == "m/blobs/abc");
  auto f = fs->open(path("/oss/bkt/m/snapshots/r1/config.json"));
  REQUIRE(f.ok());
  std::string buf(data.size(), '\0');
  REQUIRE(*fs->read(**f, buf.data(), buf.size(), 0) == data.size());
  CHECK(buf == data);
  CHECK(fs->open(path("/oss/bkt/m/snapshots/r1/config.json"), false).error().err == ELOOP);
  CHECK(fs->readlink(path("/oss/bkt/m/blobs/abc")).error().err == EINVAL);
  CHECK(fs->symlink("x", path("/oss/bkt/m/blobs/abc")).error().err == EEXIST);
  CHECK(fs->symlink("../../../../etc/passwd", path("/oss/bkt/m/l")).error().err == EPERM);
  CHECK(fs->symlink("/etc/passwd", path("/oss/bkt/m/l")).error().err == EPERM);
  // A directory link, followed in the middle of a path; an absolute target in the bucket.
  REQUIRE(fs->symlink("/oss/bkt/m/blobs", path("/oss/bkt/blobdir")).ok());
  CHECK(*fs->readlink(path("/oss/bkt/blobdir")) == "m/blobs");
  CHECK(fs->stat(path("/oss/bkt/blobdir"))->dir);
  CHECK(fs->stat(path("/oss/bkt/blobdir/abc"))->size == data.size());
  // Listings say which entries are links.
  auto list = fs->list(path("/oss/bkt/m/snapshots/r1"));
  REQUIRE(list.ok());
  bool seen = false;
  for (const auto& e : *list)
    if (e.name == "config.json") seen = e.link;
  CHECK(seen);
  // A loop ends in ELOOP; a dangling link is ENOENT through stat, a link through lstat.
  REQUIRE(fs->symlink("loop2", path("/oss/bkt/loop1")).ok());
  REQUIRE(fs->symlink("loop1", path("/oss/bkt/loop2")).ok());
  CHECK(fs->stat(path("/oss/bkt/loop1")).error().err == ELOOP);
  REQUIRE(fs->symlink("nothing/here", path("/oss/bkt/dangling")).ok());
  CHECK(fs->stat(path("/oss/bkt/dangling")).error().err == ENOENT);
  CHECK(fs->lstat(path("/oss/bkt/dangling"))->link);
  // rename moves the link with its text; unlink removes the link, not the target.
  REQUIRE(fs->rename(path("/oss/bkt/m/snapshots/r1"), path("/oss/bkt/m/snapshots/r2")).ok());
  CHECK(*fs->readlink(path("/oss/bkt/m/snapshots/r2/config.json")) == "../../blobs/abc");
  CHECK(fs->stat(path("/oss/bkt/m/snapshots/r2/config.json"))->size == data.size());
  REQUIRE(fs->unlink(path("/oss/bkt/m/snapshots/r2/config.json")).ok());
  CHECK(fs->lstat(path("/oss/bkt/m/snapshots/r2/config.json")).error().err == ENOENT);
  CHECK(fs->stat(path("/oss/bkt/m/blobs/abc"))->size == data.size());
}
