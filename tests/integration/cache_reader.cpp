// A separate process for the shared-cache tests: reads one object through its own Vfs (so it
// attaches to the cache as another process would) and prints "crc64 BYTES" of what it read.
//   cache_reader ENDPOINT CACHE_DIR CHUNK_SIZE CACHE_SIZE /oss/BUCKET/KEY [READ_SIZE]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "util/crc64.hpp"
#include "vfs/vfs.hpp"

using namespace ossshim;

int main(int argc, char** argv) {
  if (argc < 6) return 2;
  Config c;
  c.endpoint = argv[1];
  c.region = "cn-hangzhou";
  c.addressing = Addressing::path;
  c.cache_dir = argv[2];
  c.chunk_size = std::strtoull(argv[3], nullptr, 10);
  c.cache_size = std::strtoull(argv[4], nullptr, 10);
  c.concurrency = 4;
  c.request_timeout_ms = 60000;
  std::size_t piece = argc > 6 ? std::strtoull(argv[6], nullptr, 10) : (1 << 20);
  auto fs = vfs::Vfs::create(c, {"test-ak", "test-sk", ""});
  if (!fs) return std::fprintf(stderr, "%s\n", fs.error().to_string().c_str()), 3;
  vfs::VPath p;
  if (!vfs::parse("/oss", argv[5], p)) return 2;
  auto f = (*fs)->open(p);
  if (!f) return std::fprintf(stderr, "%s\n", f.error().to_string().c_str()), 4;
  std::vector<char> buf(piece);
  std::uint64_t crc = 0, total = 0;
  for (;;) {
    auto n = (*fs)->read(**f, buf.data(), buf.size(), total);
    if (!n) return std::fprintf(stderr, "%s\n", n.error().to_string().c_str()), 5;
    if (*n == 0) break;
    crc = util::crc64_update(crc, buf.data(), *n);
    total += *n;
  }
  std::printf("%llu %llu\n", static_cast<unsigned long long>(crc), static_cast<unsigned long long>(total));
  return 0;
}
