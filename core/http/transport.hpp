// libcurl transport: pooled keep-alive connections, timeouts, retries with backoff and re-signing.
// Knows HTTP, not OSS: callers give a protocol Request and a signer; HTTP error statuses come back
// as responses (the object layer maps them), transport failures as Errors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "util/encode.hpp"
#include "util/error.hpp"
#include "util/forksafe.hpp"
#include "util/request.hpp"

namespace ossshim::http {

struct Response {
  int status = 0;
  std::vector<Header> headers;
  std::string body;            // error bodies and small XML results
  std::size_t sink_bytes = 0;  // bytes written into the caller's buffer
  const std::string* header(std::string_view name) const {
    for (const auto& h : headers)
      if (util::iequals(h.name, name)) return &h.value;
    return nullptr;
  }
};

struct Exchange {
  Request request;                // host/path/query/headers filled, unsigned
  std::string url;                // scheme://host/path?query, as sent
  std::string_view body;          // request body, streamed without a copy
  char* sink = nullptr;           // when set, a 2xx response body lands here ...
  std::size_t sink_capacity = 0;  // ... up to this many bytes (more is an error)
  // Instead of `sink`: each piece of a 2xx body, at its offset in the body (0 again when an
  // attempt restarts); false aborts the transfer with errno as the error.
  std::function<bool(const char* data, std::size_t len, std::size_t at)> sink_write;
  // Adds date and authorization headers for the given time; called before every attempt.
  std::function<void(Request&, std::time_t)> sign;
  // The service's error code of an error response (the object layer parses bodies, not HTTP).
  std::function<std::string(const Response&)> error_code;
  std::string op;      // "GetObject", for error messages
  std::string target;  // "oss://bucket/key"
};

struct Counters {
  std::atomic<std::uint64_t> requests{0}, retries{0}, bytes_in{0}, bytes_out{0}, connections{0};
};

// True while the calling thread is inside libcurl on the transport's behalf.
bool in_curl();

class CurlTransport;  // curl.hpp

// The transport used by the object layer. In tools and tests it is libcurl, linked in
// (direct.cpp); in libossshim.so it is libossshim-net.so's, loaded on first use (shim/net.cpp).
class Transport {
 public:
  explicit Transport(const Config& config);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Performs the exchange with retries (connection errors, partial bodies, timeouts, 5xx, 408, 429,
  // RequestTimeTooSkewed) until success, a non-retryable status, or the deadline.
  Result<Response> execute(Exchange& exchange);

  const Counters& counters() const;
  // In a forked child: forget the parent's connections without touching them (they are shared).
  void abandon_after_fork();

 private:
  // In a forked child, abandon_after_fork runs (forksafe): the child's requests never cross the
  // parent's pooled connections.
  void watch_fork();
  CurlTransport* impl_;
  std::uint64_t fork_hooks_ = 0;
};

}  // namespace ossshim::http
