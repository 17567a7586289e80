// libossshim-net.so: libcurl, OpenSSL, ISA-L and libunwind behind the table of api.hpp.
#define UNW_LOCAL_ONLY
#include "net/api.hpp"

#include <libunwind.h>

#include <cstring>

#include "http/curl.hpp"
#include "util/crc64.hpp"
#include "util/encode.hpp"

namespace {

using namespace ossshim;

std::size_t digest(int kind, const char* key, std::size_t key_len, const char* data, std::size_t len,
                   unsigned char* out) {
  std::string_view k(key, key_len), d(data, len);
  std::string r;
  switch (kind) {
    case OSSSHIM_HMAC_SHA1:
      r = util::hmac_sha1(k, d);
      break;
    case OSSSHIM_HMAC_SHA256:
      r = util::hmac_sha256(k, d);
      break;
    case OSSSHIM_SHA256:
      r = util::sha256(d);
      break;
    case OSSSHIM_MD5:
      r = util::md5(d);
      break;
    default:
      return 0;
  }
  std::memcpy(out, r.data(), r.size());
  return r.size();
}

void base64_encode(const char* data, std::size_t len, void* out) {
  *static_cast<std::string*>(out) = util::base64_encode(std::string_view(data, len));
}
bool base64_decode(const char* text, std::size_t len, void* out) {
  return util::base64_decode(std::string_view(text, len), *static_cast<std::string*>(out));
}

void* transport_new(const void* config) {
  return new http::CurlTransport(*static_cast<const Config*>(config));
}
void transport_delete(void* t) {
  delete static_cast<http::CurlTransport*>(t);
}
void transport_execute(void* t, void* exchange, void* result) {
  *static_cast<Result<http::Response>*>(result) =
      static_cast<http::CurlTransport*>(t)->execute(*static_cast<http::Exchange*>(exchange));
}
const void* transport_counters(const void* t) {
  return &static_cast<const http::CurlTransport*>(t)->counters();
}
void transport_abandon_after_fork(void* t) {
  static_cast<http::CurlTransport*>(t)->abandon_after_fork();
}

int unwind_init(void* cursor, void* context, int flags) {
  return unw_init_local2(static_cast<unw_cursor_t*>(cursor), static_cast<unw_context_t*>(context), flags);
}
int unwind_get_reg(void* cursor, int reg, void* value) {
  return unw_get_reg(static_cast<unw_cursor_t*>(cursor), reg, static_cast<unw_word_t*>(value));
}
int unwind_step(void* cursor) {
  return unw_step(static_cast<unw_cursor_t*>(cursor));
}

constexpr ossshim_net_api kApi = {
    net::kStamp,    &digest,           &base64_encode,     &base64_decode,      &util::crc64_update,
    &transport_new, &transport_delete, &transport_execute, &transport_counters, &transport_abandon_after_fork,
    &http::in_curl, &unwind_init,      &unwind_get_reg,    &unwind_step,
};

const ossshim_net_host* g_host = nullptr;

}  // namespace

// The library's own log (log.hpp) goes to the shim's.
namespace ossshim::log {
bool enabled(Level level) {
  return g_host && g_host->log_enabled(static_cast<int>(level));
}
void write(Level level, std::string_view message) {
  if (g_host) g_host->log_write(static_cast<int>(level), message.data(), message.size());
}
}  // namespace ossshim::log

extern "C" __attribute__((visibility("default"))) const ossshim_net_api* ossshim_net_open(
    const ossshim_net_host* host) {
  g_host = host;
  return &kApi;
}
