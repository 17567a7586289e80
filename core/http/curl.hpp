// The libcurl implementation behind Transport: pooled keep-alive connections, timeouts,
// retries with backoff and re-signing. Linked into tools and tests directly, and into
// libossshim-net.so for the shim.
#pragma once

#include <mutex>

#include "http/transport.hpp"

typedef void CURL;

namespace ossshim::http {

class CurlTransport {
 public:
  explicit CurlTransport(const Config& config);
  ~CurlTransport();
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  // Performs the exchange with retries (connection errors, partial bodies, timeouts, 5xx, 408, 429,
  // RequestTimeTooSkewed) until success, a non-retryable status, or the deadline.
  Result<Response> execute(Exchange& exchange);

  const Counters& counters() const { return counters_; }
  // In a forked child: forget the parent's connections without touching them (they are shared).
  void abandon_after_fork();

 private:
  struct Attempt;
  CURL* take_handle();
  void give_back(CURL* handle);
  Result<Response> attempt(Exchange& exchange, std::chrono::steady_clock::time_point deadline);
  std::time_t now() const;

  Config config_;
  std::mutex pool_mu_;
  std::vector<CURL*> pool_;
  std::atomic<std::int64_t> clock_offset_{0};  // server time - local time, learned from skew errors
  Counters counters_;
};

}  // namespace ossshim::http
