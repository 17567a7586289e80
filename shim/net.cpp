// The shim's side of libossshim-net.so: finds and loads it (dlopen, RTLD_LOCAL) on first use, and
// implements the digests, CRC and Transport of core/ by calling through its table, with the
// re-entrancy guard up so that everything libcurl and OpenSSL do in libc passes straight through.
#include "net.hpp"
#include "util/forksafe.hpp"

#include <dlfcn.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "guard.hpp"
#include "http/transport.hpp"
#include "log/log.hpp"
#include "util/crc64.hpp"
#include "util/encode.hpp"

namespace ossshim::shim {
namespace {

constexpr const char* kNetName = "libossshim-net.so";

std::atomic<const ossshim_net_api*> g_api{nullptr};
std::mutex g_load_mu;
const bool g_load_fork_safe = (forksafe::add_mutex(forksafe::Rank::transport, g_load_mu), true);
std::string g_load_error;  // guarded by g_load_mu: the first failure, repeated to later callers

int host_log_enabled(int level) {
  return log::enabled(static_cast<log::Level>(level));
}
void host_log_write(int level, const char* message, std::size_t len) {
  log::write(static_cast<log::Level>(level), std::string_view(message, len));
}
constexpr ossshim_net_host kHost = {&host_log_enabled, &host_log_write};

// Next to libossshim.so (build directory or install prefix alike), or OSSSHIM_NET_LIBRARY (not in
// set-uid programs: secure_getenv).
std::string net_path() {
  if (const char* p = secure_getenv("OSSSHIM_NET_LIBRARY"); p && *p) return p;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&net_path), &info) == 0 || info.dli_fname == nullptr) return kNetName;
  std::string self = info.dli_fname;
  auto slash = self.rfind('/');
  return slash == std::string::npos ? kNetName : self.substr(0, slash + 1) + kNetName;
}

const ossshim_net_api* open_net(std::string& why) {
  std::string path = net_path();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    why = "ossshim: cannot load " + path + " (" + (e ? e : "unknown error") +
          "): install it next to libossshim.so from the same build, or set OSSSHIM_NET_LIBRARY to its path";
    return nullptr;
  }
  auto open = reinterpret_cast<ossshim_net_open_fn>(dlsym(h, "ossshim_net_open"));
  const ossshim_net_api* api = open ? open(&kHost) : nullptr;
  if (api == nullptr || !net::same_stamp(api->stamp, net::kStamp)) {
    why = "ossshim: " + path + " is not the libossshim-net.so of this libossshim.so (" +
          (api ? "different build" : "no ossshim_net_open") + "): install both from the same build";
    return nullptr;  // left loaded: unloading a half-initialised libcurl is not worth the risk
  }
  return api;
}

const ossshim_net_api& api() {
  const ossshim_net_api* a = g_api.load(std::memory_order_acquire);
  if (a) return *a;
  std::string why;
  a = load_net(&why);
  if (a) return *a;
  // The file system is only created once the library loaded, so no core code can get here.
  log::error(why + " -- aborting");
  abort();
}

}  // namespace

const ossshim_net_api* load_net(std::string* why) {
  if (const ossshim_net_api* a = g_api.load(std::memory_order_acquire)) return a;
  OwnCall own;  // the loader's open/mmap/read, and libcurl's and OpenSSL's constructors
  std::lock_guard lock(g_load_mu);
  if (const ossshim_net_api* a = g_api.load(std::memory_order_acquire)) return a;
  if (!g_load_error.empty()) {
    if (why) *why = g_load_error;
    return nullptr;
  }
  const ossshim_net_api* a = open_net(g_load_error);
  if (a == nullptr) {
    if (why) *why = g_load_error;
    return nullptr;
  }
  g_api.store(a, std::memory_order_release);
  return a;
}

bool net_loaded() {
  return g_api.load(std::memory_order_acquire) != nullptr;
}

}  // namespace ossshim::shim

// ---- core/ functions that libossshim.so gets from libossshim-net.so ---------------------------
using ossshim::shim::api;
using ossshim::shim::OwnCall;

namespace ossshim::util {
namespace {
std::string digest(int kind, std::string_view key, std::string_view data) {
  OwnCall own;
  unsigned char out[64];
  std::size_t n = api().digest(kind, key.data(), key.size(), data.data(), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), n);
}
}  // namespace

std::string hmac_sha1(std::string_view key, std::string_view msg) {
  return digest(OSSSHIM_HMAC_SHA1, key, msg);
}
std::string hmac_sha256(std::string_view key, std::string_view msg) {
  return digest(OSSSHIM_HMAC_SHA256, key, msg);
}
std::string sha256(std::string_view data) {
  return digest(OSSSHIM_SHA256, {}, data);
}
std::string md5(std::string_view data) {
  return digest(OSSSHIM_MD5, {}, data);
}
std::string base64_encode(std::string_view bytes) {
  OwnCall own;
  std::string out;
  api().base64_encode(bytes.data(), bytes.size(), &out);
  return out;
}
bool base64_decode(std::string_view text, std::string& out) {
  OwnCall own;
  return api().base64_decode(text.data(), text.size(), &out);
}
std::uint64_t crc64_update(std::uint64_t prev, const void* data, std::size_t len) {
  return api().crc64_update(prev, data, len);  // pure computation: no guard needed
}
}  // namespace ossshim::util

namespace ossshim::http {

Transport::Transport(const Config& config) {
  OwnCall own;
  impl_ = static_cast<CurlTransport*>(api().transport_new(&config));
  watch_fork();
}
Transport::~Transport() {
  forksafe::remove(fork_hooks_);
  OwnCall own;
  api().transport_delete(impl_);
}
Result<Response> Transport::execute(Exchange& exchange) {
  OwnCall own;
  Result<Response> result{Error{}};
  api().transport_execute(impl_, &exchange, &result);
  return result;
}
const Counters& Transport::counters() const {
  return *static_cast<const Counters*>(api().transport_counters(impl_));
}
void Transport::abandon_after_fork() {
  api().transport_abandon_after_fork(impl_);
}
void Transport::watch_fork() {
  auto in_child = [](void* t) { static_cast<Transport*>(t)->abandon_after_fork(); };
  fork_hooks_ = forksafe::add(forksafe::Rank::transport, forksafe::Hooks{nullptr, nullptr, in_child}, this);
}

// Asked by socket()/socketpair() of every program: only a thread inside libcurl can be.
bool in_curl() {
  return ossshim::shim::in_own_call() && ossshim::shim::net_loaded() && api().in_curl();
}

}  // namespace ossshim::http
