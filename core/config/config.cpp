#include "config/config.hpp"

#include <arpa/inet.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "util/encode.hpp"
#include "util/size.hpp"

namespace ossshim {

namespace {

enum class Kind { string, size, duration_ms, duration_s, count, boolean, signature, addressing, log_level };

// One row per setting: the TOML key, its environment variable, how to parse it, where it goes.
struct Key {
  const char* toml;
  const char* env;
  Kind kind;
  std::uint64_t min = 0;
  std::uint64_t max = 0;  // 0: no upper bound
  std::string Config::*str = nullptr;
  std::uint64_t Config::*u64 = nullptr;
  std::uint32_t Config::*u32 = nullptr;
  bool Config::*flag = nullptr;
};

constexpr std::uint64_t kMiB = 1ull << 20;

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      {"prefix", "OSSSHIM_PREFIX", Kind::string, 0, 0, &Config::prefix},
      {"endpoint", "OSSSHIM_ENDPOINT", Kind::string, 0, 0, &Config::endpoint},
      {"region", "OSSSHIM_REGION", Kind::string, 0, 0, &Config::region},
      {"signature", "OSSSHIM_SIGNATURE", Kind::signature},
      {"addressing", "OSSSHIM_ADDRESSING", Kind::addressing},
      {"ca_file", "OSSSHIM_CA_FILE", Kind::string, 0, 0, &Config::ca_file},
      {"verify_tls", "OSSSHIM_VERIFY_TLS", Kind::boolean, 0, 0, nullptr, nullptr, nullptr,
       &Config::verify_tls},
      {"connect_timeout", "OSSSHIM_CONNECT_TIMEOUT", Kind::duration_ms, 1, 600000, nullptr, nullptr,
       &Config::connect_timeout_ms},
      {"request_timeout", "OSSSHIM_REQUEST_TIMEOUT", Kind::duration_ms, 1, 3600000, nullptr, nullptr,
       &Config::request_timeout_ms},
      {"first_byte_timeout", "OSSSHIM_FIRST_BYTE_TIMEOUT", Kind::duration_ms, 1, 600000, nullptr, nullptr,
       &Config::first_byte_timeout_ms},
      {"low_speed_limit", "OSSSHIM_LOW_SPEED_LIMIT", Kind::size, 0, 1ull << 32, nullptr, nullptr,
       &Config::low_speed_bytes},
      {"low_speed_time", "OSSSHIM_LOW_SPEED_TIME", Kind::duration_s, 1, 3600, nullptr, nullptr,
       &Config::low_speed_seconds},
      {"retries", "OSSSHIM_RETRIES", Kind::count, 0, 20, nullptr, nullptr, &Config::retries},
      {"retry_base", "OSSSHIM_RETRY_BASE", Kind::duration_ms, 1, 60000, nullptr, nullptr,
       &Config::retry_base_ms},
      {"retry_max", "OSSSHIM_RETRY_MAX", Kind::duration_ms, 1, 600000, nullptr, nullptr,
       &Config::retry_max_ms},
      {"concurrency", "OSSSHIM_CONCURRENCY", Kind::count, 1, 1024, nullptr, nullptr, &Config::concurrency},
      {"chunk_size", "OSSSHIM_CHUNK_SIZE", Kind::size, 64 * 1024, 1024 * kMiB, nullptr, &Config::chunk_size},
      {"cache_size", "OSSSHIM_CACHE_SIZE", Kind::size, 0, 0, nullptr, &Config::cache_size},
      {"cache_dir", "OSSSHIM_CACHE_DIR", Kind::string, 0, 0, &Config::cache_dir},
      {"shared_cache", "OSSSHIM_SHARED_CACHE", Kind::boolean, 0, 0, nullptr, nullptr, nullptr,
       &Config::shared_cache},
      {"cache_persist", "OSSSHIM_CACHE_PERSIST", Kind::boolean, 0, 0, nullptr, nullptr, nullptr,
       &Config::cache_persist},
      {"readahead", "OSSSHIM_READAHEAD", Kind::size, 0, 64 * 1024 * kMiB, nullptr, &Config::readahead},
      {"attr_ttl", "OSSSHIM_ATTR_TTL", Kind::duration_ms, 0, 86400000, nullptr, nullptr,
       &Config::attr_ttl_ms},
      {"negative_ttl", "OSSSHIM_NEGATIVE_TTL", Kind::duration_ms, 0, 86400000, nullptr, nullptr,
       &Config::negative_ttl_ms},
      {"fetch_lease", "OSSSHIM_FETCH_LEASE", Kind::duration_ms, 1000, 3600000, nullptr, nullptr,
       &Config::fetch_lease_ms},
      {"part_size", "OSSSHIM_PART_SIZE", Kind::size, 100 * 1024, 5120 * kMiB, nullptr, &Config::part_size},
      {"upload_concurrency", "OSSSHIM_UPLOAD_CONCURRENCY", Kind::count, 1, 256, nullptr, nullptr,
       &Config::upload_concurrency},
      {"staging_dir", "OSSSHIM_STAGING_DIR", Kind::string, 0, 0, &Config::staging_dir},
      {"staging_reserve", "OSSSHIM_STAGING_RESERVE", Kind::size, 0, 0, nullptr, &Config::staging_reserve},
      {"stage_writes", "OSSSHIM_STAGE_WRITES", Kind::boolean, 0, 0, nullptr, nullptr, nullptr,
       &Config::stage_writes},
      {"spool_writes", "OSSSHIM_SPOOL_WRITES", Kind::boolean, 0, 0, nullptr, nullptr, nullptr,
       &Config::spool_writes},
      {"read_only", "OSSSHIM_READ_ONLY", Kind::boolean, 0, 0, nullptr, nullptr, nullptr, &Config::read_only},
      {"log", "OSSSHIM_LOG", Kind::log_level},
      {"log_file", "OSSSHIM_LOG_FILE", Kind::string, 0, 0, &Config::log_file},
      {"log_file_size", "OSSSHIM_LOG_FILE_SIZE", Kind::size, 0, 0, nullptr, &Config::log_file_size},
  };
  return table;
}

Error config_error(std::string target, std::string message) {
  Error e;
  e.err = EINVAL;
  e.op = "config";
  e.target = std::move(target);
  e.message = std::move(message);
  return e;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(std::string_view name, bool env) {
  const Key* best = nullptr;
  std::size_t best_d = 4;
  for (const Key& k : keys()) {
    std::size_t d = edit_distance(name, env ? k.env : k.toml);
    if (d < best_d) best_d = d, best = &k;
  }
  if (!best) return "";
  return std::string("; did you mean '") + (env ? best->env : best->toml) + "'?";
}

// "500ms", "5s", "2m", "1h", or a bare number of milliseconds.
std::optional<std::uint64_t> parse_duration_ms(std::string_view text) {
  std::string s = util::to_lower(util::trim(text));
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i > 12) return std::nullopt;
  std::uint64_t n = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  if (unit.empty() || unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m" || unit == "min") return n * 60000;
  if (unit == "h") return n * 3600000;
  return std::nullopt;
}

const char* expected(Kind kind) {
  switch (kind) {
    case Kind::string:
      return "a string";
    case Kind::size:
      return "a size such as 65536, \"64k\", \"8m\", \"16g\"";
    case Kind::duration_ms:
      return "a duration such as 500 (ms), \"500ms\", \"5s\", \"2m\"";
    case Kind::duration_s:
      return "a whole number of seconds such as 10 or \"10s\", \"2m\"";
    case Kind::count:
      return "a whole number";
    case Kind::boolean:
      return "true or false";
    case Kind::signature:
      return "one of v4, v1, s3v4, none";
    case Kind::addressing:
      return "virtual or path";
    case Kind::log_level:
      return "one of error, warn, info, debug";
  }
  return "?";
}

// Applies one textual value (from the environment, or a TOML string/number rendered as text).
std::optional<std::string> apply(Config& c, const Key& k, const std::string& text, bool& addressing_set) {
  auto range_check = [&](std::uint64_t v) -> std::optional<std::string> {
    if (v < k.min || (k.max != 0 && v > k.max))
      return "out of range " + std::to_string(k.min) + ".." + (k.max ? std::to_string(k.max) : "");
    return std::nullopt;
  };
  switch (k.kind) {
    case Kind::string:
      c.*k.str = text;
      return std::nullopt;
    case Kind::size:
    case Kind::count:
    case Kind::duration_ms:
    case Kind::duration_s: {
      std::optional<std::uint64_t> v;
      bool bare = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
      if (k.kind == Kind::size)
        v = util::parse_size(text);
      else if (k.kind == Kind::duration_ms)
        v = parse_duration_ms(text);
      else if (k.kind == Kind::duration_s && !bare) {
        v = parse_duration_ms(text);
        if (v && *v % 1000 != 0) v.reset();  // whole seconds only
        if (v) *v /= 1000;
      } else if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
                 text.size() < 10)
        v = std::stoull(text);
      if (!v) return std::string("expected ") + expected(k.kind);
      if (auto bad = range_check(*v)) return bad;
      if (k.u64)
        c.*k.u64 = *v;
      else
        c.*k.u32 = static_cast<std::uint32_t>(*v);
      return std::nullopt;
    }
    case Kind::boolean: {
      std::string s = util::to_lower(text);
      if (s == "true" || s == "1" || s == "yes")
        c.*k.flag = true;
      else if (s == "false" || s == "0" || s == "no")
        c.*k.flag = false;
      else
        return std::string("expected ") + expected(k.kind);
      return std::nullopt;
    }
    case Kind::signature: {
      std::string s = util::to_lower(text);
      if (s == "v4")
        c.signature = auth::Scheme::v4;
      else if (s == "v1")
        c.signature = auth::Scheme::v1;
      else if (s == "s3v4")
        c.signature = auth::Scheme::s3v4;
      else if (s == "none")
        c.signature = auth::Scheme::none;
      else
        return std::string("expected ") + expected(k.kind);
      return std::nullopt;
    }
    case Kind::addressing: {
      std::string s = util::to_lower(text);
      if (s == "virtual")
        c.addressing = Addressing::virtual_hosted;
      else if (s == "path")
        c.addressing = Addressing::path;
      else
        return std::string("expected ") + expected(k.kind);
      addressing_set = true;
      return std::nullopt;
    }
    case Kind::log_level:
      if (!log::parse_level(text, c.log_level)) return std::string("expected ") + expected(k.kind);
      return std::nullopt;
  }
  return std::nullopt;
}

// The value shown back in an error message. Nothing here is a secret, but keep it short.
std::string shown(const std::string& text) {
  return "'" + (text.size() > 80 ? text.substr(0, 80) + "..." : text) + "'";
}

Status apply_toml(Config& c, const toml::table& table, const std::string& origin, bool& addressing_set) {
  for (const auto& [name, node] : table) {
    std::string where = origin + ":" + std::to_string(node.source().begin.line);
    const Key* key = nullptr;
    for (const Key& k : keys())
      if (name.str() == k.toml) key = &k;
    if (!key)
      return config_error(where + " " + std::string(name.str()),
                          "unknown key" + suggestion(name.str(), false));
    std::string text;
    if (auto s = node.value<std::string>()) {
      text = *s;
    } else if (node.is_integer() && key->kind != Kind::string && key->kind != Kind::boolean) {
      auto v = *node.value<std::int64_t>();
      if (v < 0)
        return config_error(where + " " + key->toml,
                            "got " + std::to_string(v) + ", expected " + expected(key->kind));
      text = std::to_string(v);
    } else if (node.is_boolean() && key->kind == Kind::boolean) {
      text = *node.value<bool>() ? "true" : "false";
    } else {
      return config_error(
          where + " " + key->toml,
          std::string("got a ") +
              std::string(toml::impl::node_type_friendly_names[static_cast<int>(node.type())]) +
              ", expected " + expected(key->kind));
    }
    if (auto bad = apply(c, *key, text, addressing_set))
      return config_error(where + " " + key->toml, "got " + shown(text) + ", " + *bad);
  }
  return ok_status();
}

bool is_ip_or_localhost(const std::string& host) {
  std::string h = host;
  if (!h.empty() && h.front() == '[') return true;  // IPv6 literal
  std::size_t colon = h.rfind(':');
  if (colon != std::string::npos) h = h.substr(0, colon);
  if (h == "localhost") return true;
  in_addr addr{};
  return inet_pton(AF_INET, h.c_str(), &addr) == 1;
}

// Lexically: is `path` the prefix or below it?
bool under_prefix(const std::string& path, const std::string& prefix) {
  return path.starts_with(prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// The shim's own files must be real ones: opening them through the shim would re-enter it (a
// log file under the prefix hung the program at start-up).
Status check_own_paths(const Config& c) {
  const std::pair<const char*, const std::string*> own[] = {{"OSSSHIM_LOG_FILE", &c.log_file},
                                                            {"OSSSHIM_STAGING_DIR", &c.staging_dir},
                                                            {"OSSSHIM_CACHE_DIR", &c.cache_dir}};
  for (const auto& [name, path] : own)
    if (under_prefix(*path, c.prefix))
      return config_error(name, "got " + shown(*path) + ", which is under the virtual prefix " + c.prefix +
                                    "; the shim's own files must be local: choose a path outside it");
  return ok_status();
}

// Fills derived values and checks combinations.
Status finish(Config& c, bool addressing_set) {
  // Prefix: absolute, normalised, not "/".
  std::string p = c.prefix;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p[0] != '/' || p == "/" || p.find("//") != std::string::npos ||
      p.find("/./") != std::string::npos || p.find("/../") != std::string::npos || p.ends_with("/.") ||
      p.ends_with("/.."))
    return config_error("OSSSHIM_PREFIX",
                        "got " + shown(c.prefix) + ", expected an absolute directory such as /oss");
  c.prefix = p;
  if (auto st = check_own_paths(c); !st) return st;

  if (c.endpoint.empty())
    return config_error("OSSSHIM_ENDPOINT", "not set; expected e.g. https://oss-cn-hangzhou.aliyuncs.com");
  std::string e = c.endpoint;
  std::string scheme = "https";
  if (auto pos = e.find("://"); pos != std::string::npos) {
    scheme = util::to_lower(e.substr(0, pos));
    e = e.substr(pos + 3);
  }
  while (!e.empty() && e.back() == '/') e.pop_back();
  if ((scheme != "http" && scheme != "https") || e.empty() || e.find('/') != std::string::npos ||
      e.find_first_of(" \t?#@") != std::string::npos)
    return config_error("OSSSHIM_ENDPOINT",
                        "got " + shown(c.endpoint) + ", expected [http[s]://]host[:port] with no path");
  c.endpoint = scheme + "://" + e;

  if (c.region.empty()) {
    std::string host =
        e.substr(0, e.rfind(':') == std::string::npos || e.front() == '[' ? e.size() : e.rfind(':'));
    const std::string suffix = ".aliyuncs.com";
    if (host.starts_with("oss-") && host.ends_with(suffix)) {
      std::string r = host.substr(4, host.size() - 4 - suffix.size());
      if (r.ends_with("-internal")) r.resize(r.size() - 9);
      if (r.find('.') == std::string::npos && r != "accelerate" && r != "accelerate-overseas") c.region = r;
    }
  }
  if (c.region.empty() && (c.signature == auth::Scheme::v4 || c.signature == auth::Scheme::s3v4))
    return config_error("OSSSHIM_REGION", "not set and not derivable from endpoint " + shown(c.endpoint) +
                                              "; signature v4/s3v4 needs the region, e.g. cn-hangzhou");
  if (!addressing_set) c.addressing = is_ip_or_localhost(e) ? Addressing::path : Addressing::virtual_hosted;
  if (c.retry_max_ms < c.retry_base_ms)
    return config_error("OSSSHIM_RETRY_MAX", "is below OSSSHIM_RETRY_BASE");
  // The shared cache's own floor, checked here so that ossrun refuses what the library would.
  std::uint64_t cache_floor = std::max<std::uint64_t>(kMinCacheBytes, kMinCacheChunks * c.chunk_size);
  if (c.cache_size != 0 && c.cache_size < cache_floor)
    return config_error("OSSSHIM_CACHE_SIZE",
                        "got " + util::format_size(c.cache_size) + ", below the shared cache's minimum of " +
                            util::format_size(cache_floor) + " (" + std::to_string(kMinCacheChunks) +
                            " chunks of chunk_size, and at least 64 MiB): raise it, or leave it unset "
                            "for the automatic budget");
  return ok_status();
}

Result<Config> load(const std::string* toml_text, const std::string& origin, const EnvLookup& env) {
  Config c;
  bool addressing_set = false;
  if (toml_text) {
    try {
      toml::table table = toml::parse(*toml_text, origin);
      if (auto st = apply_toml(c, table, origin, addressing_set); !st) return st.error();
    } catch (const toml::parse_error& err) {
      const auto& where = err.source().begin;
      return config_error(origin + ":" + std::to_string(where.line) + ":" + std::to_string(where.column),
                          "TOML syntax error: " + std::string(err.description()));
    }
    c.config_file = origin;
  }
  for (const Key& k : keys()) {
    auto value = env(k.env);
    if (!value) continue;
    if (auto bad = apply(c, k, *value, addressing_set))
      return config_error(k.env, "got " + shown(*value) + ", " + *bad);
  }
  if (auto st = finish(c, addressing_set); !st) return st.error();
  return c;
}

}  // namespace

std::vector<std::string> unknown_settings(const char* const* envp) {
  // Variables of the shim's own that are not settings: the config file, what exec hands on,
  // where the net library is, and the test harness's.
  static const char* const kNotSettings[] = {
      "OSSSHIM_CONFIG",      "OSSSHIM_INHERITED_FDS", "OSSSHIM_NET_LIBRARY",  "OSSSHIM_EMULATOR",
      "OSSSHIM_SOURCE_ROOT", "OSSSHIM_BUILD_ROOT",    "OSSSHIM_CACHE_READER", "OSSSHIM_SANITIZERS"};
  std::vector<std::string> out;
  for (; envp && *envp; ++envp) {
    std::string_view entry = *envp;
    if (!entry.starts_with("OSSSHIM_")) continue;
    std::string name(entry.substr(0, entry.find('=')));
    bool known = false;
    for (const Key& k : keys()) known = known || name == k.env;
    for (const char* n : kNotSettings) known = known || name == n;
    if (!known)
      out.push_back("environment variable " + name + " is not a setting and is ignored" +
                    suggestion(name, true) + " (ossrun --help lists them)");
  }
  return out;
}

std::vector<SettingName> setting_names() {
  std::vector<SettingName> out;
  for (const Key& k : keys()) out.push_back({k.toml, k.env});
  return out;
}

Result<Config> load_config_text(const std::string& toml_text, const std::string& origin,
                                const EnvLookup& env) {
  return load(&toml_text, origin, env);
}

namespace {
// Refuses a config file that someone else could have written, as ssh does: owned by another user
// (root excepted) or writable by group or others.
Status check_config_owner(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return config_error(path, std::string("cannot stat config file: ") + std::strerror(errno));
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return config_error(path, "config file is owned by uid " + std::to_string(st.st_uid) +
                                  ", not by this user or root; refused (anyone could have written it): "
                                  "use a copy of your own");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return config_error(path, std::string("config file is writable by group or others (mode ") + mode +
                                  "); refused, as ssh refuses such files: chmod go-w " + path);
  }
  return ok_status();
}
}  // namespace

Result<Config> load_config(const EnvLookup& env) {
  auto path = env("OSSSHIM_CONFIG");
  if (!path || path->empty()) return load(nullptr, "", env);
  auto unreadable = [&](int err) {
    return config_error(*path,
                        std::string("cannot read config file (OSSSHIM_CONFIG): ") + std::strerror(err));
  };
  // Read before the prefix is known from the file itself: the environment's or the default.
  std::string prefix = Config{}.prefix;
  if (auto p = env("OSSSHIM_PREFIX"); p && !p->empty()) prefix = *p;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  if (under_prefix(*path, prefix))
    return config_error("OSSSHIM_CONFIG", "got " + shown(*path) + ", which is under the virtual prefix " +
                                              prefix +
                                              "; the config file must be local: copy it outside the prefix");
  int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(errno);
  if (auto st = check_config_owner(fd, *path); !st) {
    ::close(fd);
    return st.error();
  }
  std::string body;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return unreadable(err);
    }
    if (n == 0) break;
    body.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return load(&body, *path, env);
}

}  // namespace ossshim
