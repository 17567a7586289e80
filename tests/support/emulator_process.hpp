// Starts the real oss-emulator ($OSSSHIM_EMULATOR) on a temporary root for a test, and talks to
// its admin interface. The process is stopped and the root removed when the object goes away.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace ossshim::test {

class EmulatorProcess {
 public:
  struct Options {
    std::string root;                     // empty: a new temporary directory, removed afterwards
    std::vector<std::string> extra_args;  // e.g. {"--anonymous"}
    bool anonymous = false;
  };
  EmulatorProcess();
  explicit EmulatorProcess(Options options);
  ~EmulatorProcess();
  EmulatorProcess(const EmulatorProcess&) = delete;
  EmulatorProcess& operator=(const EmulatorProcess&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  const std::string& root() const { return root_; }
  std::string access_key_id() const { return "test-ak"; }
  std::string access_key_secret() const { return "test-sk"; }
  std::string region() const { return "cn-hangzhou"; }

  // A client configuration pointing at this emulator (path style, V4 unless changed).
  Config config() const;
  // Writes an object directly into the served directory (creating the bucket directory).
  void put_file(const std::string& bucket, const std::string& key, const std::string& data) const;

  std::string admin(const std::string& method, const std::string& path_and_query) const;
  void set_faults(const std::string& spec) const;
  void clear_faults() const;
  void reset_stats() const;
  std::string stats_json() const;
  // Counters from /_admin/stats: total when object is empty, else for "bucket/key".
  std::uint64_t bytes_out(const std::string& object = "") const;
  std::uint64_t requests(const std::string& object = "") const;
  std::uint64_t connections() const;

 private:
  std::uint64_t counter(const std::string& object, const std::string& name) const;
  std::string root_;
  bool own_root_ = false;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// Deterministic pseudo-random bytes (the same for the same seed), for test objects.
std::string random_bytes(std::size_t n, unsigned seed = 1);

}  // namespace ossshim::test
