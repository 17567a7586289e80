// The write path (core/upload through core/vfs) against the real emulator, so that ASan, UBSan and
// TSan see the upload workers, the spool and staged part tracking: streamed files turning back,
// a parallel downloader's out-of-order segments, appends copied server-side, concurrent writers.
#include <fcntl.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "emulator_process.hpp"
#include "vfs/vfs.hpp"

using namespace ossshim;
using ossshim::test::EmulatorProcess;
using ossshim::test::random_bytes;

namespace {

constexpr std::size_t kPart = 100 * 1024;  // the smallest part size: many parts from little data

std::unique_ptr<vfs::Vfs> make_vfs(const EmulatorProcess& emu) {
  Config c = emu.config();
  c.part_size = kPart;
  c.upload_concurrency = 4;
  c.chunk_size = 64 * 1024;
  c.concurrency = 4;
  c.shared_cache = false;
  c.cache_dir = emu.root() + "/.node-state";
  c.staging_dir = emu.root() + "/.staging";
  c.staging_reserve = 0;
  auto r = vfs::Vfs::create(c, {emu.access_key_id(), emu.access_key_secret(), ""});
  REQUIRE(r.ok());
  return std::move(r.value());
}

vfs::VPath path(const std::string& s) {
  vfs::VPath p;
  REQUIRE(vfs::parse("/oss", s, p));
  return p;
}

std::string stored(const EmulatorProcess& emu, const std::string& key) {
  std::ifstream in(emu.root() + "/bkt/" + key, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `data` at `off` in pieces of `piece` bytes; false on the first failure.
bool write_at(vfs::Vfs& fs, vfs::OpenFile& f, const std::string& data, std::uint64_t off, std::size_t piece) {
  for (std::size_t done = 0; done < data.size(); done += piece) {
    std::size_t n = std::min(piece, data.size() - done);
    auto r = fs.write(f, data.data() + done, n, off + done);
    if (!r || *r != n) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a streamed file turns back from its spool: rewrite far behind, read while open", "[upload]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "keep", "");
  auto fs = make_vfs(emu);
  std::string model = random_bytes(5 * kPart + 777, 3);
  auto f = fs->open_write(path("/oss/bkt/s"), O_WRONLY | O_CREAT | O_TRUNC);
  REQUIRE(f.ok());
  REQUIRE(write_at(*fs, **f, model, 0, 10000));  // parts 1-3 are uploaded by now
  model.replace(5, 6, "HEADER");
  REQUIRE(write_at(*fs, **f, "HEADER", 5, 6));
  std::string back(1000, '\0');
  auto n = fs->read(**f, back.data(), back.size(), 3 * kPart);
  REQUIRE(n.ok());
  CHECK(back == model.substr(3 * kPart, 1000));
  REQUIRE(fs->close_file(**f).ok());
  CHECK(stored(emu, "s") == model);
}

TEST_CASE("a parallel downloader's segments upload as parts complete, in any order", "[upload]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "keep", "");
  auto fs = make_vfs(emu);
  const std::size_t segment = 3 * kPart + 4321;
  std::string model = random_bytes(4 * segment, 5);
  auto f = fs->open_write(path("/oss/bkt/dl"), O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(f.ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 3; i >= 0; --i)
    threads.emplace_back([&, i] {
      if (!write_at(*fs, **f, model.substr(i * segment, segment), i * segment, 37 * 1024)) ++failures;
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  REQUIRE(fs->close_file(**f).ok());
  CHECK(stored(emu, "dl") == model);
}

TEST_CASE("appending to an object copies its whole parts server-side", "[upload]") {
  EmulatorProcess emu;
  std::string model = random_bytes(10 * kPart + 24576, 7);
  emu.put_file("bkt", "log", model);
  auto fs = make_vfs(emu);
  emu.reset_stats();
  auto f = fs->open_write(path("/oss/bkt/log"), O_WRONLY | O_APPEND);
  REQUIRE(f.ok());
  std::string tail = random_bytes(5000, 8);
  REQUIRE(write_at(*fs, **f, tail, model.size(), 1000));
  REQUIRE(fs->close_file(**f).ok());
  CHECK(stored(emu, "log") == model + tail);
  std::string stats = emu.stats_json();
  CHECK(stats.find("\"UploadPartCopy\":10") != std::string::npos);  // parts 1-10; 11 holds the append
  CHECK(emu.bytes_out() < 2 * kPart);                               // only part 11's base bytes
}

TEST_CASE("concurrent streamed writers share the upload workers and budget", "[upload]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "keep", "");
  auto fs = make_vfs(emu);
  std::vector<std::string> models;
  std::vector<vfs::VPath> paths;  // made here: Catch2 assertions are for the main thread only
  for (int i = 0; i < 4; ++i) {
    models.push_back(random_bytes(6 * kPart + 100 * i, 20 + i));
    paths.push_back(path("/oss/bkt/c" + std::to_string(i)));
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto f = fs->open_write(paths[i], O_WRONLY | O_CREAT | O_TRUNC);
      if (!f || !write_at(*fs, **f, models[i], 0, 65536) || !fs->close_file(**f)) ++failures;
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  for (int i = 0; i < 4; ++i) CHECK(stored(emu, "c" + std::to_string(i)) == models[i]);
}
