#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "log/log.hpp"

using namespace ossshim;

namespace {
using Vars = std::map<std::string, std::string>;

EnvLookup env_of(Vars vars) {
  return [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const Vars kMinimal = {{"OSSSHIM_ENDPOINT", "oss-cn-hangzhou.aliyuncs.com"}};

std::string error_of(const std::string& toml, Vars vars = kMinimal) {
  auto r = load_config_text(toml, "test.toml", env_of(vars));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().err == EINVAL);
  return r.error().to_string();
}

std::string env_error_of(Vars vars) {
  auto r = load_config(env_of(vars));
  REQUIRE_FALSE(r.ok());
  return r.error().to_string();
}
}  // namespace

TEST_CASE("defaults and derivations", "[config]") {
  auto c = load_config(env_of(kMinimal));
  REQUIRE(c.ok());
  CHECK(c->prefix == "/oss");
  CHECK(c->endpoint == "https://oss-cn-hangzhou.aliyuncs.com");
  CHECK(c->region == "cn-hangzhou");
  CHECK(c->signature == auth::Scheme::v4);
  CHECK(c->addressing == Addressing::virtual_hosted);
  CHECK(c->chunk_size == 8u << 20);
  CHECK(c->log_level == log::Level::warn);

  auto internal = load_config(env_of({{"OSSSHIM_ENDPOINT", "http://oss-cn-beijing-internal.aliyuncs.com/"}}));
  REQUIRE(internal.ok());
  CHECK(internal->region == "cn-beijing");
  CHECK(internal->endpoint == "http://oss-cn-beijing-internal.aliyuncs.com");

  auto local =
      load_config(env_of({{"OSSSHIM_ENDPOINT", "http://127.0.0.1:9000"}, {"OSSSHIM_REGION", "cn-hangzhou"}}));
  REQUIRE(local.ok());
  CHECK(local->addressing == Addressing::path);
  auto localhost = load_config(env_of({{"OSSSHIM_ENDPOINT", "localhost:9000"}, {"OSSSHIM_SIGNATURE", "v1"}}));
  REQUIRE(localhost.ok());
  CHECK(localhost->addressing == Addressing::path);
  CHECK(localhost->endpoint == "https://localhost:9000");
  auto forced = load_config(env_of({{"OSSSHIM_ENDPOINT", "http://127.0.0.1:9000"},
                                    {"OSSSHIM_REGION", "r"},
                                    {"OSSSHIM_ADDRESSING", "virtual"}}));
  REQUIRE(forced.ok());
  CHECK(forced->addressing == Addressing::virtual_hosted);
}

TEST_CASE("every key is settable from TOML and from the environment; env wins", "[config]") {
  const std::string toml = R"(
prefix = "/models/"
endpoint = "http://127.0.0.1:9000"
region = "cn-shanghai"
signature = "v1"
addressing = "virtual"
ca_file = "/etc/ssl/ca.pem"
verify_tls = false
connect_timeout = "2s"
request_timeout = "5m"
first_byte_timeout = 750
low_speed_limit = "4k"
low_speed_time = 7
retries = 5
retry_base = "100ms"
retry_max = "3s"
concurrency = 32
chunk_size = "16m"
cache_size = "2g"
cache_dir = "/mnt/nvme/cache"
attr_ttl = "30s"
negative_ttl = 0
log = "debug"
log_file = "/tmp/ossshim.log"
)";
  auto c = load_config_text(toml, "test.toml", env_of({}));
  REQUIRE(c.ok());
  CHECK(c->prefix == "/models");
  CHECK(c->endpoint == "http://127.0.0.1:9000");
  CHECK(c->region == "cn-shanghai");
  CHECK(c->signature == auth::Scheme::v1);
  CHECK(c->addressing == Addressing::virtual_hosted);
  CHECK(c->ca_file == "/etc/ssl/ca.pem");
  CHECK_FALSE(c->verify_tls);
  CHECK(c->connect_timeout_ms == 2000);
  CHECK(c->request_timeout_ms == 300000);
  CHECK(c->first_byte_timeout_ms == 750);
  CHECK(c->low_speed_bytes == 4096);
  CHECK(c->low_speed_seconds == 7);
  CHECK(c->retries == 5);
  CHECK(c->retry_base_ms == 100);
  CHECK(c->retry_max_ms == 3000);
  CHECK(c->concurrency == 32);
  CHECK(c->chunk_size == 16u << 20);
  CHECK(c->cache_size == 2ull << 30);
  CHECK(c->cache_dir == "/mnt/nvme/cache");
  CHECK(c->attr_ttl_ms == 30000);
  CHECK(c->negative_ttl_ms == 0);
  CHECK(c->log_level == log::Level::debug);
  CHECK(c->log_file == "/tmp/ossshim.log");
  CHECK(c->config_file == "test.toml");

  Vars env = {{"OSSSHIM_PREFIX", "/data"},
              {"OSSSHIM_ENDPOINT", "https://s3.example.com"},
              {"OSSSHIM_REGION", "us-east-1"},
              {"OSSSHIM_SIGNATURE", "s3v4"},
              {"OSSSHIM_ADDRESSING", "path"},
              {"OSSSHIM_CA_FILE", "/ca"},
              {"OSSSHIM_VERIFY_TLS", "true"},
              {"OSSSHIM_CONNECT_TIMEOUT", "1s"},
              {"OSSSHIM_REQUEST_TIMEOUT", "10s"},
              {"OSSSHIM_FIRST_BYTE_TIMEOUT", "2s"},
              {"OSSSHIM_LOW_SPEED_LIMIT", "1k"},
              {"OSSSHIM_LOW_SPEED_TIME", "3"},
              {"OSSSHIM_RETRIES", "0"},
              {"OSSSHIM_RETRY_BASE", "50ms"},
              {"OSSSHIM_RETRY_MAX", "1s"},
              {"OSSSHIM_CONCURRENCY", "8"},
              {"OSSSHIM_CHUNK_SIZE", "4MiB"},
              {"OSSSHIM_CACHE_SIZE", "16g"},
              {"OSSSHIM_CACHE_DIR", "/dev/shm/x"},
              {"OSSSHIM_ATTR_TTL", "1m"},
              {"OSSSHIM_NEGATIVE_TTL", "2s"},
              {"OSSSHIM_LOG", "error"},
              {"OSSSHIM_LOG_FILE", "/tmp/l"}};
  auto e = load_config_text(toml, "test.toml", env_of(env));
  REQUIRE(e.ok());
  CHECK(e->prefix == "/data");
  CHECK(e->endpoint == "https://s3.example.com");
  CHECK(e->region == "us-east-1");
  CHECK(e->signature == auth::Scheme::s3v4);
  CHECK(e->addressing == Addressing::path);
  CHECK(e->ca_file == "/ca");
  CHECK(e->verify_tls);
  CHECK(e->connect_timeout_ms == 1000);
  CHECK(e->request_timeout_ms == 10000);
  CHECK(e->first_byte_timeout_ms == 2000);
  CHECK(e->low_speed_bytes == 1024);
  CHECK(e->low_speed_seconds == 3);
  CHECK(e->retries == 0);
  CHECK(e->retry_base_ms == 50);
  CHECK(e->retry_max_ms == 1000);
  CHECK(e->concurrency == 8);
  CHECK(e->chunk_size == 4u << 20);
  CHECK(e->cache_size == 16ull << 30);
  CHECK(e->cache_dir == "/dev/shm/x");
  CHECK(e->attr_ttl_ms == 60000);
  CHECK(e->negative_ttl_ms == 2000);
  CHECK(e->log_level == log::Level::error);
  CHECK(e->log_file == "/tmp/l");
}

TEST_CASE("bad TOML input names the key, the file:line, what was given and what is expected", "[config]") {
  std::string unknown = error_of("retries = 3\nchunksize = \"8m\"\n");
  CHECK(unknown.find("test.toml:2 chunksize") != std::string::npos);
  CHECK(unknown.find("unknown key") != std::string::npos);
  CHECK(unknown.find("did you mean 'chunk_size'") != std::string::npos);

  std::string type = error_of("\n\nretries = \"many\"\n");
  CHECK(type.find("test.toml:3 retries") != std::string::npos);
  CHECK(type.find("'many'") != std::string::npos);
  CHECK(type.find("whole number") != std::string::npos);

  std::string wrong_type = error_of("verify_tls = \"maybe\"\n");
  CHECK(wrong_type.find("verify_tls") != std::string::npos);
  std::string array = error_of("endpoint = [1, 2]\n");
  CHECK(array.find("got a array") != std::string::npos);
  std::string negative = error_of("concurrency = -4\n");
  CHECK(negative.find("-4") != std::string::npos);
  std::string range = error_of("chunk_size = \"2g\"\n");
  CHECK(range.find("out of range") != std::string::npos);
  std::string zero = error_of("concurrency = 0\n");
  CHECK(zero.find("concurrency") != std::string::npos);
  std::string enum_value = error_of("signature = \"v3\"\n");
  CHECK(enum_value.find("one of v4, v1, s3v4, none") != std::string::npos);
  std::string syntax = error_of("retries = \n");
  CHECK(syntax.find("test.toml:1:") != std::string::npos);
  CHECK(syntax.find("TOML syntax error") != std::string::npos);
  std::string duration = error_of("attr_ttl = \"5 fortnights\"\n");
  CHECK(duration.find("duration") != std::string::npos);
}

TEST_CASE("bad environment values name the variable", "[config]") {
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "x.com"}, {"OSSSHIM_REGION", "r"}, {"OSSSHIM_RETRIES", "-1"}})
            .find("OSSSHIM_RETRIES: got '-1'") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "x.com"}, {"OSSSHIM_REGION", "r"}, {"OSSSHIM_CACHE_SIZE", "lots"}})
            .find("OSSSHIM_CACHE_SIZE") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "x.com"}, {"OSSSHIM_REGION", "r"}, {"OSSSHIM_LOG", "loud"}})
            .find("error, warn, info, debug") != std::string::npos);
  CHECK(env_error_of({}).find("OSSSHIM_ENDPOINT: not set") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "ftp://x.com"}}).find("OSSSHIM_ENDPOINT") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "http://x.com/path"}}).find("no path") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "http://x.com"}}).find("OSSSHIM_REGION") != std::string::npos);
  CHECK(
      env_error_of({{"OSSSHIM_ENDPOINT", "http://x.com"}, {"OSSSHIM_REGION", "r"}, {"OSSSHIM_PREFIX", "oss"}})
          .find("OSSSHIM_PREFIX") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_ENDPOINT", "http://x.com"}, {"OSSSHIM_REGION", "r"}, {"OSSSHIM_PREFIX", "/"}})
            .find("OSSSHIM_PREFIX") != std::string::npos);
  CHECK(load_config(env_of({{"OSSSHIM_ENDPOINT", "http://x.com"}, {"OSSSHIM_SIGNATURE", "none"}})).ok());
}

TEST_CASE("low_speed_time takes whole seconds, with or without a unit", "[config]") {
  Vars v = kMinimal;
  for (auto [text, seconds] : {std::pair{"10", 10u}, {"10s", 10u}, {"2m", 120u}, {"3000ms", 3u}}) {
    v["OSSSHIM_LOW_SPEED_TIME"] = text;
    auto c = load_config(env_of(v));
    REQUIRE(c.ok());
    CHECK(c->low_speed_seconds == seconds);
  }
  v["OSSSHIM_LOW_SPEED_TIME"] = "1500ms";
  CHECK(env_error_of(v).find("whole number of seconds") != std::string::npos);
  v["OSSSHIM_LOW_SPEED_TIME"] = "0s";
  CHECK(env_error_of(v).find("out of range") != std::string::npos);
}

TEST_CASE("a cache_size below the shared cache's floor is refused by the configuration itself", "[config]") {
  Vars v = kMinimal;
  v["OSSSHIM_CACHE_SIZE"] = "32m";
  std::string e = env_error_of(v);
  CHECK(e.find("OSSSHIM_CACHE_SIZE") != std::string::npos);
  CHECK(e.find("64.0 MiB") != std::string::npos);
  v["OSSSHIM_CACHE_SIZE"] = "64m";
  CHECK(load_config(env_of(v)).ok());
  v["OSSSHIM_CHUNK_SIZE"] = "16m";  // 8 chunks of 16 MiB: 128 MiB at least
  CHECK(env_error_of(v).find("128.0 MiB") != std::string::npos);
  v["OSSSHIM_CACHE_SIZE"] = "128m";
  CHECK(load_config(env_of(v)).ok());
}

TEST_CASE("an OSSSHIM_ variable that is no setting is named, with the nearest setting", "[config]") {
  const char* envp[] = {"OSSSHIM_CHUNK_SZIE=8m",
                        "OSSSHIM_CHUNK_SIZE=8m",
                        "OSSSHIM_CONFIG=/x",
                        "OSSSHIM_INHERITED_FDS=3",
                        "HOME=/root",
                        "OSSSHIM_WHATEVER_THIS_IS=1",
                        nullptr};
  auto w = unknown_settings(envp);
  REQUIRE(w.size() == 2);
  CHECK(w[0].find("OSSSHIM_CHUNK_SZIE is not a setting") != std::string::npos);
  CHECK(w[0].find("did you mean 'OSSSHIM_CHUNK_SIZE'") != std::string::npos);
  CHECK(w[1].find("OSSSHIM_WHATEVER_THIS_IS") != std::string::npos);
  CHECK(w[1].find("did you mean") == std::string::npos);
}

TEST_CASE("OSSSHIM_CONFIG names a real file", "[config]") {
  char dir[] = "/tmp/ossshim-config-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/ossshim.toml";
  std::ofstream(path) << "endpoint = \"http://127.0.0.1:1\"\nregion = \"cn-hangzhou\"\nretries = 7\n";
  auto c = load_config(env_of({{"OSSSHIM_CONFIG", path}}));
  REQUIRE(c.ok());
  CHECK(c->retries == 7);
  CHECK(c->config_file == path);

  std::ofstream(path) << "endpoint = \"http://127.0.0.1:1\"\nregion = \"cn-hangzhou\"\nretrys = 7\n";
  std::string typo = env_error_of({{"OSSSHIM_CONFIG", path}});
  CHECK(typo.find(path + ":3 retrys") != std::string::npos);

  std::string missing = env_error_of({{"OSSSHIM_CONFIG", std::string(dir) + "/absent.toml"}});
  CHECK(missing.find("absent.toml") != std::string::npos);
  CHECK(missing.find("No such file or directory") != std::string::npos);

  if (geteuid() != 0) {  // root reads anything
    chmod(path.c_str(), 0);
    CHECK(env_error_of({{"OSSSHIM_CONFIG", path}}).find("Permission denied") != std::string::npos);
  }
  std::string is_dir = env_error_of({{"OSSSHIM_CONFIG", dir}});
  CHECK(is_dir.find(dir) != std::string::npos);
  unlink(path.c_str());
  rmdir(dir);
}

TEST_CASE("a config file others could have written is refused, as ssh refuses it", "[config]") {
  char dir[] = "/tmp/ossshim-config-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/ossshim.toml";
  std::ofstream(path) << "endpoint = \"http://127.0.0.1:1\"\nregion = \"cn-hangzhou\"\n";
  chmod(path.c_str(), 0644);
  CHECK(load_config(env_of({{"OSSSHIM_CONFIG", path}})).ok());
  chmod(path.c_str(), 0664);
  std::string group = env_error_of({{"OSSSHIM_CONFIG", path}});
  CHECK(group.find("writable by group or others (mode 0664)") != std::string::npos);
  CHECK(group.find("chmod go-w " + path) != std::string::npos);
  chmod(path.c_str(), 0646);
  CHECK(env_error_of({{"OSSSHIM_CONFIG", path}}).find("mode 0646") != std::string::npos);
  chmod(path.c_str(), 0644);
  if (geteuid() == 0) {  // only root can give a file away
    REQUIRE(chown(path.c_str(), 4242, 4242) == 0);
    CHECK(env_error_of({{"OSSSHIM_CONFIG", path}}).find("owned by uid 4242") != std::string::npos);
  }
  unlink(path.c_str());
  rmdir(dir);
}

TEST_CASE("the shim's own files under the virtual prefix are a configuration error", "[config]") {
  for (const char* name : {"OSSSHIM_LOG_FILE", "OSSSHIM_STAGING_DIR", "OSSSHIM_CACHE_DIR"}) {
    Vars vars = kMinimal;
    vars[name] = "/oss/b/own";
    std::string e = env_error_of(vars);
    CHECK(e.find(name) != std::string::npos);
    CHECK(e.find("under the virtual prefix /oss") != std::string::npos);
    vars[name] = "/ossx/own";  // a sibling of the prefix is fine
    CHECK(load_config(env_of(vars)).ok());
    vars[name] = "/data/own";
    vars["OSSSHIM_PREFIX"] = "/data/";
    CHECK(env_error_of(vars).find("under the virtual prefix /data") != std::string::npos);
  }
  std::string config = env_error_of({{"OSSSHIM_CONFIG", "/oss/b/ossshim.toml"}});
  CHECK(config.find("OSSSHIM_CONFIG") != std::string::npos);
  CHECK(config.find("under the virtual prefix /oss") != std::string::npos);
  CHECK(env_error_of({{"OSSSHIM_CONFIG", "/mnt/b.toml"}, {"OSSSHIM_PREFIX", "/mnt"}})
            .find("under the virtual") != std::string::npos);
}

namespace {
// "2026-12-02T18:45:01.123Z ": the ISO-8601 UTC timestamp that starts a log file's lines.
constexpr std::size_t kStampLength = 25;
bool stamped(const std::string& line) {
  if (line.size() < kStampLength) return false;
  const char* shape = "dddd-dd-ddTdd:dd:dd.dddZ ";
  for (std::size_t i = 0; i < kStampLength; ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(line[i])) : line[i] != shape[i])
      return false;
  return line.compare(0, 2, "20") == 0;
}
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (std::size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    out.push_back(text.substr(at, nl - at));
  if (at != text.size()) out.push_back(text.substr(at));  // an unterminated (torn) line
  return out;
}
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
}  // namespace

TEST_CASE("a log file is rotated past its size, and lines stay whole across threads", "[log]") {
  char dir[] = "/tmp/ossshim-logrot-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/shim.log";
  REQUIRE(log::configure(log::Level::info, path, nullptr, 4096));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 300; ++i)
        log::info("thread " + std::to_string(t) + " line " + std::to_string(i) + " padding");
    });
  for (auto& th : threads) th.join();
  log::info("the last line");
  log::configure(log::Level::warn, "");
  std::string current = slurp(path), previous = slurp(path + ".1");
  CHECK(!previous.empty());                 // rotated at least once (300 lines x 4 >> 4 KiB)
  CHECK(previous.size() >= 4096);           // rotated only past the limit...
  CHECK(current.size() < 4096 + 2 * 1024);  // ...and soon after it
  std::size_t seen = 0;
  for (const std::string* text : {&previous, &current})
    for (const auto& line : lines_of(*text)) {
      ++seen;
      INFO(line);
      CHECK(stamped(line));
      CHECK(line.find("] info: ") != std::string::npos);
      CHECK((line.ends_with(" padding") || line.ends_with("the last line")));
    }
  CHECK(seen > 10);
  CHECK(current.ends_with("the last line\n"));
  unlink(path.c_str());
  unlink((path + ".1").c_str());
  rmdir(dir);
}

TEST_CASE("log lines are whole, prefixed and filtered by level", "[log]") {
  char path[] = "/tmp/ossshim-log-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  REQUIRE(log::configure(log::Level::info, path));
  log::debug("hidden");
  log::info("shown info");
  log::error("shown error");
  log::configure(log::Level::warn, "");
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::string pid = std::to_string(getpid());
  auto lines = lines_of(all);
  REQUIRE(lines.size() == 2);
  CHECK(stamped(lines[0]));
  CHECK(lines[0].substr(kStampLength) == "ossshim[" + pid + "] info: shown info");
  CHECK(lines[1].substr(kStampLength) == "ossshim[" + pid + "] error: shown error");
  std::string why;
  CHECK_FALSE(log::configure(log::Level::info, "/nonexistent-dir/x.log", &why));
  CHECK(why.find("/nonexistent-dir/x.log") != std::string::npos);
  unlink(path);
}

TEST_CASE("the log file is created private, appended to, and never through a symbolic link", "[log]") {
  char dir[] = "/tmp/ossshim-logdir-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/shim.log", target = std::string(dir) + "/planted";
  REQUIRE(log::configure(log::Level::info, path));
  log::info("first");
  REQUIRE(log::configure(log::Level::info, path));
  log::info("second");
  log::configure(log::Level::warn, "");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  CHECK(all.find("first") != std::string::npos);
  CHECK(all.find("second") != std::string::npos);

  std::string link = std::string(dir) + "/link.log";
  REQUIRE(symlink(target.c_str(), link.c_str()) == 0);
  std::string why;
  CHECK_FALSE(log::configure(log::Level::info, link, &why));
  CHECK(why.find("symbolic link") != std::string::npos);
  CHECK(access(target.c_str(), F_OK) != 0);  // nothing was created through the link
  unlink(link.c_str());
  unlink(path.c_str());
  rmdir(dir);
}
