// ossrun's own commands on the node's shared cache: warm (fetch ahead of a launch), stat (live
// counters), cache clear. They use core directly; no preloading involved.
#include "commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "auth/credentials.hpp"
#include "cache/cache.hpp"
#include "util/size.hpp"
#include "vfs/path.hpp"
#include "vfs/vfs.hpp"

namespace ossrun {

namespace {
using namespace ossshim;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string rate(double bytes, double seconds) {
  if (seconds <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB/s", bytes / seconds / 1e9);
  return buf;
}

struct WarmFile {
  vfs::VPath path;
  std::uint64_t size;
};

// Every file under `p` (recursively for directories).
Status collect(vfs::Vfs& fs, const vfs::VPath& p, std::vector<WarmFile>& out) {
  auto st = fs.stat(p);
  if (!st) return st.error();
  if (!st->dir) {
    out.push_back({p, st->size});
    return ok_status();
  }
  auto entries = fs.list(p);
  if (!entries) return entries.error();
  for (const auto& e : entries.value()) {
    vfs::VPath child = p;
    child.key = p.key.empty() ? e.name : p.key + "/" + e.name;
    if (auto r = collect(fs, child, out); !r) return r;
  }
  return ok_status();
}
}  // namespace

int warm(const Config& config, const std::vector<std::string>& paths) {
  auto creds = auth::credentials_from_env(config.signature, process_env());
  if (!creds) return std::fprintf(stderr, "ossrun warm: %s\n", creds.error().to_string().c_str()), 2;
  auto fs = vfs::Vfs::create(config, creds->creds);
  if (!fs) return std::fprintf(stderr, "ossrun warm: %s\n", fs.error().to_string().c_str()), 2;
  if (!(*fs)->shared_cache()) {
    std::fprintf(stderr, "ossrun warm: the shared cache is not available (see the error above)\n");
    return 1;
  }
  std::vector<WarmFile> files;
  for (const auto& given : paths) {
    vfs::VPath p;
    if (given.empty() || given[0] != '/' || !vfs::parse(config.prefix, given, p) || p.is_prefix_root()) {
      std::fprintf(stderr, "ossrun warm: %s is not under %s/BUCKET\n", given.c_str(), config.prefix.c_str());
      return 2;
    }
    if (auto st = collect(**fs, p, files); !st) {
      std::fprintf(stderr, "ossrun warm: %s\n", st.error().to_string().c_str());
      return 1;
    }
  }
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.size;
  auto* cache = (*fs)->shared_cache();
  std::uint64_t origin_before = cache->stats(false).origin;

  // Several files at once (small files are one request each); chunks of a file in parallel.
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::size_t> next{0}, failures{0};
  std::mutex err_mu;
  auto start = Clock::now();
  bool tty = isatty(STDERR_FILENO);
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    while (tty && !finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      double t = seconds_since(start), d = static_cast<double>(done.load());
      double eta = d > 0 ? t * (static_cast<double>(total) - d) / d : 0;
      std::fprintf(stderr, "\rwarm: %s of %s, %s, ETA %.0f s      ", util::format_size(done.load()).c_str(),
                   util::format_size(total).c_str(), rate(d, t).c_str(), eta);
    }
  });
  auto work = [&] {
    for (std::size_t i; (i = next++) < files.size();) {
      auto f = (*fs)->open(files[i].path);
      Status st = f ? (*fs)->warm(**f, [&](std::uint64_t n) { done += n; }) : Status(f.error());
      if (!st) {
        ++failures;
        std::lock_guard lock(err_mu);
        std::fprintf(stderr, "%sossrun warm: %s\n", tty ? "\n" : "", st.error().to_string().c_str());
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<std::size_t>(8, files.size()); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  finished = true;
  progress.join();
  double took = seconds_since(start);
  std::uint64_t origin = cache->stats(false).origin - origin_before;
  std::fprintf(stderr, "%swarm: %zu files, %s in %.2f s (%s); %s fetched, the rest was already cached%s\n",
               tty ? "\r" : "", files.size(), util::format_size(total).c_str(), took,
               rate(static_cast<double>(total), took).c_str(), util::format_size(origin).c_str(),
               failures ? (", " + std::to_string(failures.load()) + " failed").c_str() : "");
  return failures ? 1 : 0;
}

int stat(const Config& config, bool objects, double watch) {
  auto cache = cache::Cache::inspect(config);
  if (!cache) {
    std::fprintf(stderr, "ossrun stat: %s\n", cache.error().to_string().c_str());
    return 1;
  }
  auto previous = (*cache)->stats(false);
  auto previous_at = Clock::now();
  for (;;) {
    auto s = (*cache)->stats(objects);
    auto pct = [](std::uint64_t a, std::uint64_t b) { return b ? 100.0 * static_cast<double>(a) / b : 0.0; };
    std::printf("cache %s: %s of %s used (%.0f%%), %s pinned by mappings, chunk %s\n",
                (*cache)->dir().c_str(), util::format_size(s.used).c_str(),
                util::format_size(s.budget).c_str(), pct(s.used, s.budget),
                util::format_size(s.pinned).c_str(), util::format_size(s.chunk_size).c_str());
    std::printf("origin %s for %s unique: amplification %.3f\n", util::format_size(s.origin).c_str(),
                util::format_size(s.unique).c_str(),
                s.unique ? static_cast<double>(s.origin) / s.unique : 0.0);
    std::printf("served %s, hit ratio %.1f%% (%s waited for a fetch), %s read past the cache\n",
                util::format_size(s.served).c_str(), s.served ? pct(s.served - s.waited, s.served) : 0.0,
                util::format_size(s.waited).c_str(), util::format_size(s.uncached).c_str());
    std::printf(
        "requests %llu, in flight %llu, failed %llu, taken over from dead fetchers %llu, evicted %s\n",
        static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.inflight),
        static_cast<unsigned long long>(s.errors), static_cast<unsigned long long>(s.takeovers),
        util::format_size(s.evicted).c_str());
    std::printf("whole objects checked by CRC64: %llu ok, %llu mismatched\n",
                static_cast<unsigned long long>(s.crc_ok), static_cast<unsigned long long>(s.crc_bad));
    if (watch > 0) {
      double t = seconds_since(previous_at);
      std::printf("rate: %s from origin, %s served\n",
                  rate(static_cast<double>(s.origin - previous.origin), t).c_str(),
                  rate(static_cast<double>(s.served - previous.served), t).c_str());
    }
    std::string users;
    for (pid_t p : s.processes) users += " " + std::to_string(p);
    std::printf("users:%s\n", users.empty() ? " none" : users.c_str());
    for (const auto& o : s.objects)
      std::printf("  %5.1f%% of %-10s origin %-10s served %-10s %s %s\n", pct(o.ready, o.size),
                  util::format_size(o.size).c_str(), util::format_size(o.origin).c_str(),
                  util::format_size(o.served).c_str(), o.crc_checked ? "crc-ok" : "      ", o.name.c_str());
    std::fflush(stdout);
    if (watch <= 0) return 0;
    previous = s;
    previous_at = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(watch));
    std::printf("\n");
  }
}

int clear(const Config& config) {
  auto st = cache::Cache::clear(config);
  if (!st) {
    std::fprintf(stderr, "ossrun cache clear: %s\n", st.error().to_string().c_str());
    return 1;
  }
  std::printf("ossrun cache clear: done\n");
  return 0;
}

}  // namespace ossrun
