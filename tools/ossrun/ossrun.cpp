// ossrun: runs a program with libossshim.so preloaded and the configuration checked first, so
// a wrong option, an unusable setting or missing credentials stop here with one clear line
// instead of surfacing later as EIO inside the program.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/credentials.hpp"
#include "commands.hpp"
#include "config/config.hpp"

namespace {

using ossshim::setting_names;

// One line per setting; the README's configuration table has the details.
const std::map<std::string, std::string> kHelp = {
    {"prefix", "virtual path prefix (default /oss): files are PREFIX/BUCKET/KEY"},
    {"endpoint", "OSS or S3 endpoint, [http[s]://]host[:port] (https when no scheme)"},
    {"region", "signing region, e.g. cn-hangzhou (derived from *.aliyuncs.com endpoints)"},
    {"signature", "v4 (default), v1, s3v4 (AWS SigV4) or none (anonymous)"},
    {"addressing", "virtual (bucket.host) or path (host/bucket); path for IP/localhost"},
    {"ca_file", "CA bundle for HTTPS (default: the system store)"},
    {"verify_tls", "true (default) or false: verify server certificates"},
    {"connect_timeout", "TCP/TLS connect limit (default 5s)"},
    {"request_timeout", "whole-request deadline, retries included (default 60s)"},
    {"first_byte_timeout", "limit from request sent to first response byte (default 15s)"},
    {"low_speed_limit", "abort a transfer slower than this many bytes/s ... (default 1k)"},
    {"low_speed_time", "... for this many seconds (default 10)"},
    {"retries", "attempts after the first (default 3)"},
    {"retry_base", "backoff base (default 200ms)"},
    {"retry_max", "backoff cap (default 20s)"},
    {"concurrency", "parallel range requests per process (default 16)"},
    {"chunk_size", "range GET / cache chunk size (default 8m)"},
    {"cache_size", "cache budget, e.g. 16g (default: automatic)"},
    {"cache_dir", "shared cache location (default /dev/shm/ossshim-UID)"},
    {"shared_cache", "true (default) or false: a private per-process cache instead"},
    {"cache_persist", "true (default) or false: the last process empties the cache"},
    {"readahead", "largest sequential read-ahead window (default 256m; 0: none)"},
    {"fetch_lease", "a node-wide fetch with no progress this long is taken over (default 10s)"},
    {"attr_ttl", "metadata cache lifetime (default 60s)"},
    {"negative_ttl", "\"does not exist\" cache lifetime (default 5s)"},
    {"part_size", "multipart upload part size (default 8m)"},
    {"upload_concurrency", "parallel part uploads per process (default 8)"},
    {"staging_dir", "local directory for staged writes (default $TMPDIR or /tmp)"},
    {"staging_reserve", "free space a staged file must leave (default 1g)"},
    {"stage_writes", "false (default) or true: stage every written file locally"},
    {"spool_writes", "true (default) or false: keep a local copy of streamed parts in staging_dir"},
    {"log", "error, warn (default), info or debug"},
    {"log_file", "append log lines to this file (default stderr)"},
    {"read_only", "false (default) or true: every write or namespace change under the prefix is EROFS"},
    {"log_file_size", "rotate log_file to log_file.1 past this size (default 64m; 0: never)"},
};

std::string option_of(const std::string& toml) {
  std::string o = "--" + toml;
  for (auto& c : o)
    if (c == '_') c = '-';
  return o;
}

void usage(FILE* out) {
  std::fprintf(
      out,
      "usage: ossrun [OPTIONS] [--] COMMAND [ARGS...]\n"
      "       ossrun [OPTIONS] warm PATH...           fetch files or whole prefixes into the cache\n"
      "       ossrun [OPTIONS] stat [--objects] [--watch SECONDS]   the shared cache's counters\n"
      "       ossrun [OPTIONS] cache clear            empty the shared cache (refused while in use)\n"
      "       ossrun [OPTIONS] cache verify           check every cached chunk's CRC64, drop damaged ones\n"
      "       ossrun [OPTIONS] uploads [--abort] [--older-than DURATION] PATH...\n"
      "                                               list (and abort) incomplete multipart uploads\n"
      "                                               under PATH, e.g. left by a crashed writer\n"
      "\n"
      "Runs COMMAND with libossshim.so preloaded: paths under the prefix (default /oss) are\n"
      "OSS objects, /oss/BUCKET/KEY. Options set the matching OSSSHIM_* environment variable\n"
      "(which COMMAND's children inherit); unset ones come from the environment, then from\n"
      "the TOML file, then from defaults. The configuration and credentials are checked\n"
      "before COMMAND starts.\n"
      "\n"
      "options:\n"
      "  --config FILE              TOML configuration file (OSSSHIM_CONFIG)\n"
      "  --library PATH             libossshim.so to preload (default: found next to ossrun)\n"
      "  --version                  the version, and the libossshim.so it would preload\n"
      "  --help                     this text\n");
  for (const auto& s : setting_names()) {
    auto help = kHelp.find(s.toml);
    std::string opt = option_of(s.toml) + " VALUE";
    std::fprintf(out, "  %-26s %s (%s)\n", opt.c_str(), help == kHelp.end() ? "" : help->second.c_str(),
                 s.env.c_str());
  }
  std::fprintf(out,
               "\ncredentials: OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET [/ OSS_SESSION_TOKEN], or the\n"
               "ALIBABA_CLOUD_* forms; AWS_* for --signature s3v4. They are never logged.\n"
               "\nwarm, stat, cache and uploads are ossrun's own commands; to run a program of that name,\n"
               "put -- before it (ossrun -- stat FILE).\n"
               "uploads prints one line per upload (path, upload id, initiated (UTC), age) and\n"
               "\"N uploads listed, M aborted\"; with --older-than 1h, only uploads older than that.\n"
               "\nexample: ossrun --endpoint oss-cn-hangzhou-internal.aliyuncs.com -- python3 load.py "
               "/oss/bkt/model\n");
}

[[noreturn]] void die(const std::string& message, int code = 2) {
  std::fprintf(stderr, "ossrun: %s\n", message.c_str());
  std::exit(code);
}

std::string dir_of_self() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<std::size_t>(n));
  return p.substr(0, p.rfind('/'));
}

// The library: --library, else the build tree (tools/ossrun/../../shim), else the install libdir.
std::vector<std::string> library_candidates(const std::string& given) {
  std::vector<std::string> candidates;
  if (!given.empty()) {
    candidates.push_back(given);
  } else {
    std::string self = dir_of_self();
    candidates.push_back(self + "/../../shim/libossshim.so");
    candidates.push_back(OSSSHIM_INSTALL_LIBDIR "/libossshim.so");
  }
  return candidates;
}

std::optional<std::string> locate_library(const std::string& given) {
  for (const auto& c : library_candidates(given)) {
    char real[PATH_MAX];
    if (access(c.c_str(), R_OK) == 0 && realpath(c.c_str(), real)) return std::string(real);
  }
  return std::nullopt;
}

std::string find_library(const std::string& given) {
  if (auto found = locate_library(given)) return *found;
  auto candidates = library_candidates(given);
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  die("libossshim.so not found (tried " + tried + "); build it or pass --library PATH");
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> option_env;
  for (const auto& s : setting_names()) option_env[option_of(s.toml)] = s.env;
  option_env["--config"] = "OSSSHIM_CONFIG";

  std::string library;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if (arg == "--version") {
      auto found = locate_library(library);
      std::printf("ossrun %s (%s)\n", OSSSHIM_VERSION,
                  found ? ("preloads " + *found).c_str() : "libossshim.so not found; pass --library PATH");
      return 0;
    }
    if (arg.rfind("-", 0) != 0) break;  // COMMAND
    std::string value;
    auto eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (name != "--library" && !option_env.count(name)) die("unknown option " + arg + " (see ossrun --help)");
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      die("option " + name + " needs a value");
    }
    if (name == "--library")
      library = value;
    else
      setenv(option_env[name].c_str(), value.c_str(), 1);
  }
  if (i >= argc) die("no COMMAND given (usage: ossrun [OPTIONS] -- COMMAND [ARGS...])");
  bool after_dashes = std::strcmp(argv[i - 1], "--") == 0;

  auto config = ossshim::load_config(ossshim::process_env());
  if (!config) die(config.error().to_string());
  if (!after_dashes) {
    std::string sub = argv[i];
    std::vector<std::string> rest(argv + i + 1, argv + argc);
    // ossrun's own commands say it here; a COMMAND's libossshim.so says it on its first virtual access.
    if (sub == "warm" || sub == "stat" || sub == "uploads" || sub == "cache")
      for (const auto& w : ossshim::unknown_settings(environ))
        std::fprintf(stderr, "ossrun: warning: %s\n", w.c_str());
    if (sub == "warm") {
      if (rest.empty()) die("warm needs at least one PATH under " + config->prefix);
      return ossrun::warm(config.value(), rest);
    }
    if (sub == "stat") {
      bool objects = false;
      double watch = 0;
      for (std::size_t k = 0; k < rest.size(); ++k) {
        if (rest[k] == "--objects") {
          objects = true;
        } else if (rest[k] == "--watch" && k + 1 < rest.size()) {
          watch = std::atof(rest[++k].c_str());
          if (watch <= 0) die("--watch needs a positive number of seconds");
        } else {
          die("stat: unknown argument " + rest[k] + " (stat [--objects] [--watch SECONDS])");
        }
      }
      return ossrun::stat(config.value(), objects, watch);
    }
    if (sub == "uploads") return ossrun::uploads(config.value(), rest);
    if (sub == "cache") {
      if (rest.size() == 1 && rest[0] == "verify") return ossrun::verify(config.value());
      if (rest.size() != 1 || rest[0] != "clear") die("usage: ossrun cache clear | ossrun cache verify");
      return ossrun::clear(config.value());
    }
  }
  auto creds = ossshim::auth::credentials_from_env(config->signature, ossshim::process_env());
  if (!creds) die(creds.error().to_string());

  std::string lib = find_library(library);
  // The shim loads libcurl and OpenSSL from libossshim-net.so next to it on first use: a missing
  // one is reported here, before the program runs, rather than as EIO inside it.
  std::string net = lib.substr(0, lib.rfind('/') + 1) + "libossshim-net.so";
  if (const char* given = std::getenv("OSSSHIM_NET_LIBRARY"); given && *given) net = given;
  if (access(net.c_str(), R_OK) != 0)
    die(net + " not found (" + std::strerror(errno) + "): libossshim.so needs it next to it; install both " +
        "from the same build, or set OSSSHIM_NET_LIBRARY to its path");
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) {
    if (std::strstr(old, lib.c_str()))
      preload = old;  // already there (a nested ossrun): keep the order as it is
    else
      preload += std::string(":") + old;
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  die(std::string("cannot run ") + argv[i] + ": " + std::strerror(errno), errno == ENOENT ? 127 : 126);
}
