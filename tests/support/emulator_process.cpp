#include "emulator_process.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

extern char** environ;

namespace ossshim::test {

namespace {
std::size_t append(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
}  // namespace

EmulatorProcess::EmulatorProcess() : EmulatorProcess(Options{}) {}

EmulatorProcess::EmulatorProcess(Options options) {
  const char* binary = std::getenv("OSSSHIM_EMULATOR");
  if (!binary) throw std::runtime_error("OSSSHIM_EMULATOR is not set (run the tests through meson test)");
  root_ = options.root;
  if (root_.empty()) {
    char tmpl[] = "/tmp/ossshim-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    own_root_ = true;
  }
  std::vector<std::string> args = {binary, "--root", root_, "--listen", "127.0.0.1:0", "--quiet"};
  if (options.anonymous) args.push_back("--anonymous");
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  int rc = posix_spawn(&pid_, binary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    throw std::runtime_error(std::string("cannot start ") + binary + ": " + std::strerror(rc));
  }
  // The first line names the port; a bounded wait.
  std::string line;
  char c;
  while (line.size() < 200 && read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  std::size_t colon = line.rfind(':');
  if (line.find("listening on") == std::string::npos || colon == std::string::npos)
    throw std::runtime_error("emulator did not start: '" + line + "'");
  port_ = static_cast<std::uint16_t>(std::atoi(line.c_str() + colon + 1));
}

EmulatorProcess::~EmulatorProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (own_root_) {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
}

Config EmulatorProcess::config() const {
  Config c;
  c.endpoint = endpoint();
  c.region = region();
  c.addressing = Addressing::path;
  c.signature = auth::Scheme::v4;
  c.retry_base_ms = 10;
  c.retry_max_ms = 200;
  c.request_timeout_ms = 20000;
  return c;
}

void EmulatorProcess::put_file(const std::string& bucket, const std::string& key,
                               const std::string& data) const {
  std::filesystem::path p = std::filesystem::path(root_) / bucket / key;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::string EmulatorProcess::admin(const std::string& method, const std::string& path_and_query) const {
  CURL* h = curl_easy_init();
  std::string body;
  std::string url = endpoint() + path_and_query;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK || status != 200)
    throw std::runtime_error("admin " + method + " " + path_and_query + " failed: " + body);
  return body;
}

void EmulatorProcess::set_faults(const std::string& spec) const {
  admin("POST", "/_admin/faults?" + spec);
}
void EmulatorProcess::clear_faults() const {
  admin("DELETE", "/_admin/faults");
}
void EmulatorProcess::reset_stats() const {
  admin("POST", "/_admin/reset");
}
std::string EmulatorProcess::stats_json() const {
  return admin("GET", "/_admin/stats");
}

std::uint64_t EmulatorProcess::counter(const std::string& object, const std::string& name) const {
  std::string json = stats_json();
  std::size_t from = 0;
  if (!object.empty()) {
    from = json.find("\"" + object + "\":{");
    if (from == std::string::npos) return 0;
  }
  std::size_t at = json.find("\"" + name + "\":", from);
  if (at == std::string::npos) return 0;
  return std::strtoull(json.c_str() + at + name.size() + 3, nullptr, 10);
}

std::uint64_t EmulatorProcess::bytes_out(const std::string& object) const {
  return counter(object, "bytes_out");
}
std::uint64_t EmulatorProcess::requests(const std::string& object) const {
  return counter(object, "requests");
}
std::uint64_t EmulatorProcess::connections() const {
  return counter("", "connections");
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<std::size_t>(8, n - i));
  }
  return s;
}

}  // namespace ossshim::test
