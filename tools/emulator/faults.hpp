// Fault injection for the emulator: parsed from "name=value&..." specs, applied per request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ossemu {

struct FaultSpec {
  std::uint32_t first_byte_ms = 0;       // delay before response headers (after a request body)
  std::uint64_t bandwidth = 0;           // bytes/s for all bodies together, both ways; 0 = unlimited
  int error_status = 0;                  // any of 400..599 (0: none)
  std::string error_code;                // default InternalError / ServiceUnavailable / InsufficientStorage
  std::int64_t error_count = -1;         // fail the next N matching requests (-1: all, or error_percent)
  double error_percent = -1;             // fail this share of matching requests
  std::int64_t reset_after = -1;         // RST the connection after this many response body bytes
  std::int64_t truncate_after = -1;      // close cleanly after this many response body bytes
  std::int64_t replace_after = -1;       // replace the object's content after this many body bytes
  std::int64_t reset_upload_after = -1;  // RST the connection after reading this many request body bytes
  std::int64_t corrupt_upload = -1;      // flip the request body byte at this offset, as it arrives
  bool wrong_crc = false;                // x-oss-hash-crc64ecma in responses off by one
  std::string match;                     // only "bucket/key" starting with this
  std::vector<std::string> ops;          // only these operations (empty: all)
  std::int64_t count = -1;               // apply to at most this many requests (-1: unlimited)
  std::string text;                      // the spec as given, for GET /_admin/faults

  bool empty() const;
};

// Parses "first_byte_ms=10&bandwidth=250m&..."; returns an error message on bad input.
std::optional<std::string> parse_faults(const std::string& spec, FaultSpec& out);

// What one request gets.
struct FaultDecision {
  bool paced = false;  // under the bandwidth cap (match and ops apply; count does not)
  std::uint32_t first_byte_ms = 0;
  int error_status = 0;
  std::string error_code;
  std::int64_t reset_after = -1, truncate_after = -1, replace_after = -1;
  std::int64_t reset_upload_after = -1, corrupt_upload = -1;
  bool wrong_crc = false;
  bool body_faults() const { return reset_after >= 0 || truncate_after >= 0 || replace_after >= 0; }
};

class Faults {
 public:
  void set(FaultSpec spec);
  void clear();
  std::string describe();
  // Decides, consuming counts, what faults apply to a request for `op` on `object` ("bucket/key").
  FaultDecision decide(const std::string& op, const std::string& object);
  // Blocks so that body bytes, sent and received together, move at no more than the configured
  // total rate.
  void pace(std::size_t bytes);

 private:
  std::mutex mu_;
  FaultSpec spec_;
  bool armed_ = false;
  std::int64_t applied_ = 0;
  std::int64_t errors_left_ = -1;
  std::chrono::steady_clock::time_point next_send_{};
};

}  // namespace ossemu
