// The boundary between libossshim.so and libossshim-net.so.
//
// libossshim.so is preloaded into every program, so it depends on libc alone. What needs
// libcurl, OpenSSL, ISA-L or libunwind lives in libossshim-net.so, which the shim dlopen()s
// (RTLD_LOCAL) on the first virtual access and reaches through this table of C function
// pointers. The two libraries come from the same build: the table carries the ABI version and
// the sizes of the project types that cross it (Config, Exchange, Response), and the shim refuses
// a table whose stamp differs.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// What libossshim-net.so gets from the shim: its log, so that transport messages go where the
// shim's go (level and file as configured).
struct ossshim_net_host {
  int (*log_enabled)(int level);
  void (*log_write)(int level, const char* message, std::size_t len);
};

struct ossshim_net_stamp {
  std::uint32_t abi;
  std::uint32_t config_size, exchange_size, response_size, result_size, string_size;
};

enum { OSSSHIM_NET_ABI = 1 };
enum ossshim_digest { OSSSHIM_HMAC_SHA1 = 1, OSSSHIM_HMAC_SHA256, OSSSHIM_SHA256, OSSSHIM_MD5 };

struct ossshim_net_api {
  ossshim_net_stamp stamp;
  // Digests (util/encode.hpp) into `out` (at least 64 bytes); returns the digest's length.
  // `key` is ignored by the plain digests.
  std::size_t (*digest)(int kind, const char* key, std::size_t key_len, const char* data, std::size_t len,
                        unsigned char* out);
  // base64 (util/encode.hpp): `out` is a std::string*.
  void (*base64_encode)(const char* data, std::size_t len, void* out);
  bool (*base64_decode)(const char* text, std::size_t len, void* out);
  std::uint64_t (*crc64_update)(std::uint64_t prev, const void* data, std::size_t len);
  // http::CurlTransport: `config` is a const Config*, `exchange` an http::Exchange*, `result` a
  // Result<http::Response>* that execute assigns.
  void* (*transport_new)(const void* config);
  void (*transport_delete)(void* transport);
  void (*transport_execute)(void* transport, void* exchange, void* result);
  const void* (*transport_counters)(const void* transport);  // const http::Counters*
  void (*transport_abandon_after_fork)(void* transport);
  bool (*in_curl)();
  // libunwind's local unwinder for the crash reporter (unw_init_local2, unw_get_reg, unw_step),
  // with unw_cursor_t* / unw_context_t* / unw_word_t* as void*.
  int (*unw_init_local2)(void* cursor, void* context, int flags);
  int (*unw_get_reg)(void* cursor, int reg, void* value);
  int (*unw_step)(void* cursor);
};

// libossshim-net.so's one exported function.
const ossshim_net_api* ossshim_net_open(const ossshim_net_host* host);
typedef const ossshim_net_api* (*ossshim_net_open_fn)(const ossshim_net_host* host);
}

#include <string>

#include "http/transport.hpp"

namespace ossshim::net {
// The stamp of this build, compared by the shim with the loaded library's.
constexpr ossshim_net_stamp kStamp = {OSSSHIM_NET_ABI,
                                      sizeof(Config),
                                      sizeof(http::Exchange),
                                      sizeof(http::Response),
                                      sizeof(Result<http::Response>),
                                      sizeof(std::string)};
inline bool same_stamp(const ossshim_net_stamp& a, const ossshim_net_stamp& b) {
  return a.abi == b.abi && a.config_size == b.config_size && a.exchange_size == b.exchange_size &&
         a.response_size == b.response_size && a.result_size == b.result_size &&
         a.string_size == b.string_size;
}
}  // namespace ossshim::net
