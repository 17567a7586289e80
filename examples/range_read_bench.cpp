// Reads one large object with N threads of ranged GETs through ossshim's client and prints the
// throughput, CPU time and connections used. Used to measure the emulator (and later the shim's
// fetch path) on loopback:  range_read_bench ENDPOINT BUCKET KEY [THREADS] [RANGE_MIB] [SECONDS]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "auth/credentials.hpp"
#include "config/config.hpp"
#include "oss/client.hpp"

using namespace ossshim;

static double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT BUCKET KEY [THREADS=8] [RANGE_MIB=16] [SECONDS=5]\n", argv[0]);
    return 2;
  }
  setenv("OSSSHIM_ENDPOINT", argv[1], 1);
  auto cfg = load_config(process_env());
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().to_string().c_str());
    return 2;
  }
  auto creds = auth::credentials_from_env(cfg->signature, process_env());
  if (!creds) {
    std::fprintf(stderr, "%s\n", creds.error().to_string().c_str());
    return 2;
  }
  auto client = oss::Client::create(cfg.value(), creds->creds);
  std::string bucket = argv[2], key = argv[3];
  int threads = argc > 4 ? std::atoi(argv[4]) : 8;
  std::size_t range = (argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 16) << 20;
  double seconds = argc > 6 ? std::atof(argv[6]) : 5;
  auto info = client.value()->head_object(bucket, key);
  if (!info) {
    std::fprintf(stderr, "%s\n", info.error().to_string().c_str());
    return 1;
  }
  std::uint64_t ranges = (info->size + range - 1) / range;
  std::atomic<std::uint64_t> next{0}, bytes{0}, errors{0};
  auto start = std::chrono::steady_clock::now();
  auto until = start + std::chrono::duration<double>(seconds);
  double cpu0 = cpu_seconds();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      std::vector<char> buf(range);
      while (std::chrono::steady_clock::now() < until) {
        std::uint64_t i = next++ % ranges;  // wraps: keeps reading for the whole duration
        auto r =
            client.value()->get_range(bucket, key, oss::RangeRead{i * range, range, buf.data(), info->etag});
        if (r)
          bytes += r.value();
        else
          errors++;
      }
    });
  for (auto& t : pool) t.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "range_read_bench: %d threads, %zu MiB ranges, %.1f s: %.2f GB/s (%.2f GiB read, %llu errors), "
      "client CPU %.2f s\n",
      threads, range >> 20, wall, static_cast<double>(bytes) / wall / 1e9,
      static_cast<double>(bytes) / (1u << 30), static_cast<unsigned long long>(errors.load()),
      cpu_seconds() - cpu0);
  return errors ? 1 : 0;
}
