// The cache's control file (core/cache/control.hpp) on a temporary directory: a damaged header, a
// truncated file and another layout version are discarded and rebuilt, never trusted, and the data
// files of the old table go with them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/mman.h>

#include <functional>

#include "cache/control.hpp"
#include "cache_unit_support.hpp"

using namespace ossshim;
using namespace cache_test;

namespace {

std::string control_of(const Config& c) {
  return cache::cache_directory(c) + "/control";
}

// A cache with one ready chunk, left (detached) on disk; returns its data file's path.
std::string populate(const Config& cfg) {
  auto a = cache::Cache::attach(cfg);
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  REQUIRE(fill(**a, **x, 0));
  std::string data;
  for (const auto& e : std::filesystem::directory_iterator(cache::cache_directory(cfg)))
    if (e.path().filename().string().starts_with("o-")) data = e.path();
  REQUIRE_FALSE(data.empty());
  return data;
}

// Whether a fresh attachment finds x's chunk ready (the old table was trusted).
bool still_cached(const Config& cfg) {
  auto a = cache::Cache::attach(cfg);
  REQUIRE(a.ok());
  auto x = (*a)->object({"bkt", "x", "\"e1\"", kMiB, "/oss/bkt/x"});
  REQUIRE(x.ok());
  cache::ChunkRef r;
  return (*a)->claim(**x, 0, r) == cache::Claim::ready;
}

void overwrite(const std::string& path, off_t at, const void* bytes, std::size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes, n, at) == static_cast<ssize_t>(n));
  ::close(fd);
}

// Changes the header of the control file in place, as a stray writer would.
void edit_header(const Config& cfg, const std::function<void(cache::layout::Header&)>& edit) {
  int fd = ::open(control_of(cfg).c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  void* m = ::mmap(nullptr, sizeof(cache::layout::Header), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  REQUIRE(m != MAP_FAILED);
  edit(*static_cast<cache::layout::Header*>(m));
  ::munmap(m, sizeof(cache::layout::Header));
}

}  // namespace

TEST_CASE("control: an intact control file is kept, with its chunks", "[cache][control]") {
  TempDir dir;
  Config cfg = config_for(dir.path);
  populate(cfg);
  CHECK(still_cached(cfg));
}

TEST_CASE("control: a damaged, truncated or other-version control file is rebuilt, never trusted",
          "[cache][control]") {
  TempDir dir;
  Config cfg = config_for(dir.path);
  std::string why;
  SECTION("damaged magic") {
    std::string data = populate(cfg);
    std::uint64_t junk = 0x1234;
    overwrite(control_of(cfg), 0, &junk, sizeof junk);
    CHECK_FALSE(still_cached(cfg));
    CHECK_FALSE(std::filesystem::exists(data));  // the old table's data went with it
  }
  SECTION("truncated") {
    std::string data = populate(cfg);
    REQUIRE(::truncate(control_of(cfg).c_str(), 4096) == 0);
    CHECK_FALSE(still_cached(cfg));
    CHECK_FALSE(std::filesystem::exists(data));
  }
  SECTION("another version") {
    std::string data = populate(cfg);
    edit_header(cfg, [](cache::layout::Header& h) { h.version = cache::layout::kVersion - 1; });
    CHECK_FALSE(still_cached(cfg));
    CHECK_FALSE(std::filesystem::exists(data));
  }
  SECTION("a table that does not add up is repaired on attach") {
    populate(cfg);
    // Claimed totals that no entry backs: repair re-derives them from the entries.
    edit_header(cfg, [](cache::layout::Header& h) {
      h.used_bytes = 1ull << 40;
      h.chunk_count = 999;
    });
    auto a = cache::Cache::attach(cfg);
    REQUIRE(a.ok());
    CHECK((*a)->stats(false).used == kMiB);
  }
  // The rebuilt file is this build's and valid.
  auto a = cache::Cache::attach(cfg);
  REQUIRE(a.ok());
  int err = 0;
  auto m = cache::control::open_existing(control_of(cfg), cfg.chunk_size, why, err);
  CHECK(why.empty());
  REQUIRE(m.header);
  CHECK(m.header->version == cache::layout::kVersion);
  CHECK(cache::control::invalid_header(*m.header, m.bytes, 2 * cfg.chunk_size) == "chunk size differs");
  CHECK(cache::control::invalid_header(*m.header, m.bytes + 4096, cfg.chunk_size).starts_with("file size"));
  ::munmap(m.header, m.bytes);
}
