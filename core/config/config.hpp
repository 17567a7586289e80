// Configuration: defaults, overridden by a TOML file (OSSSHIM_CONFIG), overridden by environment.
// Every bad input is one error naming the key (and file:line), what was given and what is expected.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "auth/signer.hpp"
#include "log/log.hpp"
#include "util/env.hpp"
#include "util/error.hpp"

namespace ossshim {

enum class Addressing { virtual_hosted, path };

struct Config {
  // Paths
  std::string prefix = "/oss";  // virtual files are <prefix>/<bucket>/<key>

  // Endpoint
  std::string endpoint;  // normalised: "https://oss-cn-hangzhou.aliyuncs.com" (scheme added if missing)
  std::string region;    // "cn-hangzhou"; derived from an *.aliyuncs.com endpoint when empty
  auth::Scheme signature = auth::Scheme::v4;
  Addressing addressing = Addressing::virtual_hosted;  // default: path for IP/localhost hosts
  std::string ca_file;                                 // empty: system CA store
  bool verify_tls = true;

  // Transport
  std::uint32_t connect_timeout_ms = 5000;
  std::uint32_t request_timeout_ms = 60000;     // whole-request deadline, retries included
  std::uint32_t first_byte_timeout_ms = 15000;  // time to the first response byte
  std::uint32_t low_speed_bytes = 1024;         // abort a transfer slower than this ...
  std::uint32_t low_speed_seconds = 10;         // ... for this long
  std::uint32_t retries = 3;                    // attempts after the first
  std::uint32_t retry_base_ms = 200;            // full-jitter exponential backoff base
  std::uint32_t retry_max_ms = 20000;
  std::uint32_t concurrency = 16;         // parallel range requests per process
  std::uint64_t chunk_size = 8ull << 20;  // range GET / cache chunk size

  // Cache
  std::uint64_t cache_size = 0;            // 0: default (see README)
  std::string cache_dir;                   // empty: /dev/shm/ossshim-<uid>
  bool shared_cache = true;                // false: a private per-process cache only
  bool cache_persist = true;               // false: the last process to leave empties the cache
  std::uint64_t readahead = 256ull << 20;  // largest prefetch window of a sequential reader
  std::uint32_t attr_ttl_ms = 60000;
  std::uint32_t negative_ttl_ms = 5000;
  // A node-wide fetch (or eviction) that shows no progress for this long is taken over by others.
  std::uint32_t fetch_lease_ms = 10000;

  // Writes
  std::uint64_t part_size = 8ull << 20;        // multipart part size (grows for very large files)
  std::uint32_t upload_concurrency = 8;        // parallel part uploads per process
  std::string staging_dir;                     // empty: $TMPDIR or /tmp, then ossshim-staging-<uid>
  std::uint64_t staging_reserve = 1ull << 30;  // free space a staged file must leave
  bool stage_writes = false;                   // true: stage every written file (any pattern)
  bool spool_writes = true;  // keep a local copy of streamed parts, so a later rewrite behind them works
  bool read_only = false;    // every write, namespace change and attribute change under the prefix: EROFS

  // Logging
  log::Level log_level = log::Level::warn;
  std::string log_file;                       // empty: stderr
  std::uint64_t log_file_size = 64ull << 20;  // log_file is rotated to log_file.1 past this (0: never)

  // Where the file came from, for messages ("" when none).
  std::string config_file;
};

// Loads defaults <- TOML file (path from OSSSHIM_CONFIG, if set) <- environment variables.
// Errors: op "config", target "file:line key" or "OSSSHIM_X", message says given vs expected.
Result<Config> load_config(const EnvLookup& env);

// Every setting's TOML key and environment variable, in table order (for ossrun and docs).
struct SettingName {
  std::string toml;
  std::string env;
};
std::vector<SettingName> setting_names();

// One warning per OSSSHIM_* variable in `envp` that is no setting (a typo such as
// OSSSHIM_CHUNK_SZIE would otherwise pass silently), with the nearest name.
std::vector<std::string> unknown_settings(const char* const* envp);

// The shared cache's floor: cache_size must hold this many chunks, and this many bytes.
inline constexpr std::uint64_t kMinCacheChunks = 8;
inline constexpr std::uint64_t kMinCacheBytes = 64ull << 20;

// Parses a TOML document (for tests and for `ossrun --config`); `origin` names it in errors.
Result<Config> load_config_text(const std::string& toml_text, const std::string& origin,
                                const EnvLookup& env);

}  // namespace ossshim
