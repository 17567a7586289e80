// ossrun's own commands on the node's shared cache: warm (fetch ahead of a launch), stat (live
// counters), cache clear, cache verify (CRC64 of every cached chunk); and on the store: uploads (list and
// abort incomplete multipart uploads). They use core directly; no preloading involved.
#include "commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "auth/credentials.hpp"
#include "cache/cache.hpp"
#include "oss/client.hpp"
#include "util/encode.hpp"
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
    std::printf("budget: %s (%s)\n", util::format_size(s.budget).c_str(), s.budget_source.c_str());
    std::printf("origin %s for %s unique: amplification %.3f\n", util::format_size(s.origin).c_str(),
                util::format_size(s.unique).c_str(),
                s.unique ? static_cast<double>(s.origin) / s.unique : 0.0);
    std::printf("served %s, hit ratio %.1f%% (%s waited for a fetch), %s read past the cache\n",
                util::format_size(s.served).c_str(), s.served ? pct(s.served - s.waited, s.served) : 0.0,
                util::format_size(s.waited).c_str(), util::format_size(s.uncached).c_str());
    std::printf(
        "requests %llu, in flight %llu, failed %llu, taken over from exited or stalled fetchers %llu, "
        "evicted %s\n",
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
    for (pid_t p : s.processes) (users += ' ') += std::to_string(p);  // not " " + ...: GCC 12 -Wrestrict
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

namespace {

// A duration as the configuration writes them: "500ms", "30s", "15m" (or "15min"), "2h", or a bare
// number of milliseconds.
std::optional<std::int64_t> parse_duration_ms(std::string s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i > 12) return std::nullopt;
  std::int64_t n = std::stoll(s.substr(0, i));
  std::string unit = util::to_lower(s.substr(i));
  if (unit.empty() || unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m" || unit == "min") return n * 60000;
  if (unit == "h") return n * 3600000;
  return std::nullopt;
}

// "2d3h", "3h12m", "12m5s", "40s": the two largest units.
std::string format_age(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  std::int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, sec = seconds % 60;
  char buf[48];
  if (d > 0)
    std::snprintf(buf, sizeof buf, "%lldd%lldh", static_cast<long long>(d), static_cast<long long>(h));
  else if (h > 0)
    std::snprintf(buf, sizeof buf, "%lldh%lldm", static_cast<long long>(h), static_cast<long long>(m));
  else if (m > 0)
    std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(m), static_cast<long long>(sec));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(sec));
  return buf;
}

std::string format_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int uploads_usage(const std::string& why) {
  std::fprintf(stderr,
               "ossrun uploads: %s (usage: ossrun uploads [--abort] [--older-than DURATION] PATH...)\n",
               why.c_str());
  return 2;
}

}  // namespace

int uploads(const Config& config, const std::vector<std::string>& args) {
  bool abort = false;
  std::optional<std::int64_t> older_than_ms;
  std::string older_than_text;
  std::vector<vfs::VPath> paths;
  std::vector<std::string> given_paths;
  for (std::size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--abort") {
      abort = true;
    } else if (a == "--older-than" || a.starts_with("--older-than=")) {
      if (a == "--older-than" && k + 1 >= args.size()) return uploads_usage("--older-than needs a DURATION");
      older_than_text = a == "--older-than" ? args[++k] : a.substr(std::strlen("--older-than="));
      older_than_ms = parse_duration_ms(older_than_text);
      if (!older_than_ms)
        return uploads_usage("--older-than '" + older_than_text +
                             "': expected a duration such as 30s, 15m, 2h or 500ms");
    } else if (a.starts_with("-")) {
      return uploads_usage("unknown option " + a);
    } else {
      vfs::VPath p;
      if (a.empty() || a[0] != '/' || !vfs::parse(config.prefix, a, p) || p.is_prefix_root())
        return uploads_usage(a + " is not under " + config.prefix + "/BUCKET");
      paths.push_back(p);
      given_paths.push_back(a);
    }
  }
  if (paths.empty()) return uploads_usage("no PATH given");

  auto creds = auth::credentials_from_env(config.signature, process_env());
  if (!creds) return std::fprintf(stderr, "ossrun uploads: %s\n", creds.error().to_string().c_str()), 2;
  auto client = oss::Client::create(config, creds->creds);
  if (!client) return std::fprintf(stderr, "ossrun uploads: %s\n", client.error().to_string().c_str()), 2;

  std::size_t listed = 0, aborted = 0, younger = 0, failed = 0;
  std::set<std::pair<std::string, std::string>> seen;  // (bucket, upload id): overlapping PATHs list once
  std::time_t now = std::time(nullptr);
  for (const auto& p : paths) {
    // A PATH is a file or a directory: its key itself and the keys below it, not "key2".
    auto found = (*client)->list_multipart_uploads(p.bucket, p.key);
    if (!found) {
      std::fprintf(stderr, "ossrun uploads: %s\n", found.error().to_string().c_str());
      ++failed;
      continue;
    }
    for (const auto& u : found.value()) {
      if (!p.key.empty() && u.key != p.key && !u.key.starts_with(p.key + "/")) continue;
      if (!seen.insert({p.bucket, u.upload_id}).second) continue;
      std::int64_t age = static_cast<std::int64_t>(now - u.initiated);
      if (older_than_ms && age * 1000 <= *older_than_ms) {
        ++younger;
        continue;
      }
      ++listed;
      vfs::VPath object{p.bucket, u.key};
      std::string line = vfs::to_string(config.prefix, object) + "  " + u.upload_id + "  " +
                         format_utc(u.initiated) + "  " + format_age(age);
      if (abort) {
        Status st = (*client)->abort_multipart(p.bucket, u.key, u.upload_id);
        if (st) {
          ++aborted;
          line += "  aborted";
        } else if (st.error().code == "NoSuchUpload") {
          line += "  already gone (completed or aborted meanwhile)";
        } else {
          ++failed;
          line += "  NOT aborted";
          std::fprintf(stderr, "ossrun uploads: %s\n", st.error().to_string().c_str());
        }
      }
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  std::printf("%zu upload%s listed, %zu aborted", listed, listed == 1 ? "" : "s", aborted);
  if (younger) std::printf("; %zu younger than %s left out", younger, older_than_text.c_str());
  std::printf("\n");
  return failed ? 1 : 0;
}

int verify(const Config& config) {
  auto cache = cache::Cache::attach(config);
  if (!cache) {
    std::fprintf(stderr, "ossrun cache verify: %s\n", cache.error().to_string().c_str());
    return 1;
  }
  auto r = (*cache)->verify();
  std::string which;
  for (std::size_t i = 0; i < r.dropped.size() && i < 8; ++i) which += (i ? ", " : ": ") + r.dropped[i];
  if (r.dropped.size() > 8) which += ", ...";
  std::printf("ossrun cache verify: %llu chunks (%s) checked, %llu mismatches dropped%s\n",
              static_cast<unsigned long long>(r.chunks), util::format_size(r.bytes).c_str(),
              static_cast<unsigned long long>(r.mismatches), which.c_str());
  return r.mismatches ? 1 : 0;
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
