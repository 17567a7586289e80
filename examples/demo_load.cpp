// Demo: loads a safetensors model from OSS as tensor-parallel ranks would, and reports what was
// loaded, how fast, and how many bytes the server sent. Today each rank reads through ossshim's
// client with parallel range GETs; with the shared cache every byte will cross the network once.
//
//   demo_load ENDPOINT BUCKET PREFIX [RANKS=4] [THREADS=8] [STATS_URL]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "auth/credentials.hpp"
#include "config/config.hpp"
#include "oss/client.hpp"
#include "util/crc64.hpp"
#include "util/size.hpp"

using namespace ossshim;

namespace {

struct Shard {
  std::string key;
  std::uint64_t size = 0;
};

// Reads a whole object with `threads` parallel range GETs; checks it against the server's CRC64.
bool load_object(oss::Client& c, const std::string& bucket, const Shard& shard, int threads,
                 std::size_t* tensors) {
  auto info = c.head_object(bucket, shard.key);
  if (!info) {
    std::fprintf(stderr, "%s\n", info.error().to_string().c_str());
    return false;
  }
  std::vector<char> data(info->size);
  const std::size_t chunk = 16 << 20;
  std::size_t chunks = (info->size + chunk - 1) / chunk;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next++) < chunks && ok;) {
        std::size_t off = i * chunk, len = std::min<std::size_t>(chunk, info->size - off);
        auto r = c.get_range(bucket, shard.key, oss::RangeRead{off, len, data.data() + off, info->etag});
        if (!r || r.value() != len) {
          if (!r) std::fprintf(stderr, "%s\n", r.error().to_string().c_str());
          ok = false;
        }
      }
    });
  for (auto& t : pool) t.join();
  if (!ok) return false;
  if (info->crc64 && *info->crc64 != util::crc64_update(0, data.data(), data.size())) {
    std::fprintf(stderr, "demo_load: %s: CRC64 mismatch\n", shard.key.c_str());
    return false;
  }
  // safetensors: 8-byte little-endian header length, then a JSON header naming each tensor.
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, data.data(), 8);
  std::string header(data.data() + 8, std::min<std::uint64_t>(header_len, data.size() - 8));
  for (std::size_t at = header.find("data_offsets"); at != std::string::npos;
       at = header.find("data_offsets", at + 1))
    ++*tensors;
  return true;
}

double cpu_seconds_children() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT BUCKET PREFIX [RANKS=4] [THREADS=8]\n", argv[0]);
    return 2;
  }
  setenv("OSSSHIM_ENDPOINT", argv[1], 1);
  std::string bucket = argv[2], prefix = argv[3];
  int ranks = argc > 4 ? std::atoi(argv[4]) : 4;
  int threads = argc > 5 ? std::atoi(argv[5]) : 8;
  auto cfg = load_config(process_env());
  if (!cfg) return std::fprintf(stderr, "demo_load: %s\n", cfg.error().to_string().c_str()), 2;
  auto creds = auth::credentials_from_env(cfg->signature, process_env());
  if (!creds) return std::fprintf(stderr, "demo_load: %s\n", creds.error().to_string().c_str()), 2;

  std::vector<Shard> shards;
  std::uint64_t model_bytes = 0;
  {
    auto client = oss::Client::create(cfg.value(), creds->creds);
    oss::ListRequest req;
    req.prefix = prefix;
    for (;;) {
      auto page = client.value()->list_objects(bucket, req);
      if (!page) return std::fprintf(stderr, "demo_load: %s\n", page.error().to_string().c_str()), 1;
      for (const auto& o : page->objects)
        if (o.key.ends_with(".safetensors")) {
          shards.push_back({o.key, o.size});
          model_bytes += o.size;
        }
      if (!page->truncated) break;
      req.continuation_token = page->next_continuation_token;
    }
  }
  if (shards.empty())
    return std::fprintf(stderr, "demo_load: no *.safetensors under oss://%s/%s\n", bucket.c_str(),
                        prefix.c_str()),
           1;
  std::printf("model: oss://%s/%s: %zu shards, %s\n", bucket.c_str(), prefix.c_str(), shards.size(),
              util::format_size(model_bytes).c_str());
  std::printf("loading with %d ranks (processes) x %d range-GET threads each...\n", ranks, threads);
  std::fflush(stdout);

  auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  int pipes[2];
  if (pipe(pipes) != 0) return 1;
  for (int r = 0; r < ranks; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      // Each rank is its own process with its own client and connections, as under torchrun.
      auto client = oss::Client::create(cfg.value(), creds->creds);
      std::size_t tensors = 0;
      bool ok = true;
      for (const auto& s : shards) ok = ok && load_object(*client.value(), bucket, s, threads, &tensors);
      if (r == 0) (void)!write(pipes[1], &tensors, sizeof tensors);
      _exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int failures = 0;
  for (pid_t p : pids) {
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failures;
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::size_t tensors = 0;
  if (read(pipes[0], &tensors, sizeof tensors) != sizeof tensors) tensors = 0;
  if (failures) return std::fprintf(stderr, "demo_load: %d of %d ranks failed\n", failures, ranks), 1;
  double delivered = static_cast<double>(model_bytes) * ranks;
  std::printf("loaded %zu tensors in %zu shards into each of %d ranks, every shard CRC64-verified\n", tensors,
              shards.size(), ranks);
  std::printf("time %.2f s, %.2f GB/s delivered to ranks, CPU %.2f s\n", wall, delivered / wall / 1e9,
              cpu_seconds_children());
  return 0;
}
