// Helpers of the cache unit tests that attach real caches: a private directory, a config, and a
// chunk filled as a fetcher would (claim, pwrite, complete).
#pragma once

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "cache/cache.hpp"
#include "util/crc64.hpp"

namespace cache_test {

constexpr std::uint64_t kMiB = 1 << 20;

struct TempDir {
  std::string path;
  TempDir() {
    std::string templ = "/dev/shm/ossshim-cacheunit-XXXXXX";
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline ossshim::Config config_for(const std::string& dir, std::uint64_t budget = 64 * kMiB) {
  ossshim::Config c;
  c.endpoint = "http://127.0.0.1:1";  // never contacted: these tests play the fetcher themselves
  c.cache_dir = dir;
  c.chunk_size = kMiB;
  c.cache_size = budget;
  return c;
}

inline std::string chunk_bytes(std::uint64_t index, char salt = 'a') {
  std::string s(kMiB, '\0');
  for (std::size_t i = 0; i < s.size(); i += 4096) s[i] = static_cast<char>(salt + index % 23);
  s[0] = static_cast<char>(index);
  return s;
}

// Claims chunk `index` of `o` and stores its bytes; false when the claim was not `claimed`.
inline bool fill(ossshim::cache::Cache& c, ossshim::cache::Object& o, std::uint64_t index, char salt = 'a') {
  ossshim::cache::ChunkRef ref;
  if (c.claim(o, index, ref) != ossshim::cache::Claim::claimed) return false;
  std::string b = chunk_bytes(index, salt);
  if (::pwrite(o.fd, b.data(), b.size(), static_cast<off_t>(index * kMiB)) != static_cast<ssize_t>(b.size()))
    return false;
  return c.complete(o, index, ref, ossshim::util::crc64_update(0, b.data(), b.size())).ok();
}

// Whether [off, off+len) of fd has a hole (punched or never written).
inline bool has_hole(int fd, std::uint64_t off, std::uint64_t len) {
  off_t hole = ::lseek(fd, static_cast<off_t>(off), SEEK_HOLE);
  return hole >= 0 && static_cast<std::uint64_t>(hole) < off + len;
}

// One byte from `fd` within `ms`; false on time-out or EOF (the writer died first).
inline bool read_byte(int fd, char& b, int ms = 30000) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return false;
  return ::read(fd, &b, 1) == 1;
}

}  // namespace cache_test
