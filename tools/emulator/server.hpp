// The emulator's HTTP front: libmicrohttpd, one thread per connection, OSS routing, signature
// verification through core/auth, counters, fault injection and the /_admin interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth/signer.hpp"
#include "faults.hpp"
#include "store.hpp"

struct MHD_Daemon;

namespace ossemu {

struct ServerOptions {
  std::string root;
  std::string listen_host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string region = "cn-hangzhou";
  std::vector<ossshim::auth::Credentials> credentials;
  bool anonymous = false;
  std::vector<std::string> host_suffixes = {"localhost"};
  unsigned threads = 0;  // unused with thread-per-connection; kept for future pools
  bool quiet = false;
};

struct ObjectCounters {
  std::uint64_t requests = 0, bytes_out = 0, bytes_in = 0;
};

class Stats {
 public:
  std::atomic<std::uint64_t> requests{0}, bytes_out{0}, bytes_in{0}, connections{0};
  // One answered request and the response bytes queued with it.
  void record(const std::string& op, const std::string& object, std::uint64_t out);
  void add_out(const std::string& object, std::uint64_t out);  // response bytes as they leave
  void add_in(const std::string& object, std::uint64_t in);    // request body bytes as they arrive
  std::string json();
  void reset();

 private:
  std::mutex mu_;
  std::map<std::string, std::uint64_t> ops_;
  std::map<std::string, ObjectCounters> objects_;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Starts listening; returns an error message on failure.
  std::string start();
  std::uint16_t port() const { return port_; }

  // Internal, called from libmicrohttpd callbacks.
  struct Exchange;
  int handle(void* connection, const char* url, const char* method, const char* upload_data,
             std::size_t* upload_size, void** state);
  Stats& stats() { return stats_; }
  Faults& faults() { return faults_; }
  Store& store() { return store_; }

 private:
  int respond(Exchange& x);
  int admin(Exchange& x);

  ServerOptions opt_;
  Store store_;
  Stats stats_;
  Faults faults_;
  MHD_Daemon* daemon_ = nullptr;
  std::uint16_t port_ = 0;
};

}  // namespace ossemu
