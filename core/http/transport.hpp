// libcurl transport: pooled keep-alive connections, timeouts, retries with backoff and re-signing.
// Knows HTTP, not OSS: callers give a protocol Request and a signer; HTTP error statuses come back
// as responses (the object layer maps them), transport failures as Errors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "util/error.hpp"
#include "util/forksafe.hpp"
#include "util/request.hpp"

typedef void CURL;

namespace ossshim::http {

struct Response {
  int status = 0;
  std::vector<Header> headers;
  std::string body;            // error bodies and small XML results
  std::size_t sink_bytes = 0;  // bytes written into the caller's buffer
  const std::string* header(std::string_view name) const;
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

class Transport {
 public:
  explicit Transport(const Config& config);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Performs the exchange with retries (connection errors, partial bodies, timeouts, 5xx, 408, 429,
  // RequestTimeTooSkewed) until success, a non-retryable status, or the deadline.
  Result<Response> execute(Exchange& exchange);

  const Counters& counters() const { return counters_; }

 private:
  struct Attempt;
  CURL* take_handle();
  void give_back(CURL* handle);
  Result<Response> attempt(Exchange& exchange, std::chrono::steady_clock::time_point deadline);
  std::time_t now() const;

  Config config_;
  std::mutex pool_mu_;
  // Around fork the pool is held; in the child it is emptied without touching the handles: their
  // connections are the parent's (a request of the child's on one would cross the parent's).
  std::uint64_t fork_hooks_ = 0;
  std::vector<CURL*> pool_;
  std::atomic<std::int64_t> clock_offset_{0};  // server time - local time, learned from skew errors
  Counters counters_;
};

}  // namespace ossshim::http
