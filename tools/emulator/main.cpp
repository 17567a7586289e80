// oss-emulator: a local OSS-compatible server for tests, benchmarks and the demo.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "server.hpp"

namespace {

const char* kUsage = R"(usage: oss-emulator --root DIR [options]

Serves DIR as OSS buckets: DIR/<bucket>/<key>. Path-style and virtual-hosted requests,
OSS V1, OSS V4 and AWS SigV4 signatures, multipart uploads, listing, copy, range reads.

options:
  --root DIR               directory holding one sub-directory per bucket (required)
  --listen HOST:PORT       loopback address to listen on (default 127.0.0.1:0 = any free port)
  --port-file FILE         write the chosen port to FILE once listening
  --region REGION          region for V4 credential scopes (default cn-hangzhou)
  --credentials AK:SK[:T]  accept this key (repeatable; STS token optional). Also from the
                           environment: OSS_EMULATOR_CREDENTIALS=ak:sk[,ak2:sk2].
                           Default when none is given: test-ak:test-sk
  --anonymous              also accept unsigned requests (signed ones are still verified)
  --fault SPEC             start with faults armed (same syntax as POST /_admin/faults?SPEC)
  --host-suffix SUFFIX     Host <bucket>.<SUFFIX> means virtual-hosted style (repeatable; default
                           localhost, oss-<region>.aliyuncs.com, oss-<region>-internal.aliyuncs.com)
  --quiet                  print nothing but the listening line
  --help                   this text

On start it prints one line: "oss-emulator listening on http://127.0.0.1:PORT".
Admin (unsigned, path style): GET /_admin/stats, POST /_admin/reset,
GET|POST|DELETE /_admin/faults[?SPEC]. See README.md, "The local OSS emulator".
)";

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

bool parse_credentials(const std::string& text, ossshim::auth::Credentials& c) {
  std::size_t a = text.find(':');
  if (a == std::string::npos || a == 0) return false;
  std::size_t b = text.find(':', a + 1);
  c.access_key_id = text.substr(0, a);
  c.access_key_secret = text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  c.security_token = b == std::string::npos ? "" : text.substr(b + 1);
  return !c.access_key_secret.empty();
}

int fail(const std::string& message) {
  std::fprintf(stderr, "oss-emulator: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  ossemu::ServerOptions opt;
  std::string port_file;
  bool suffix_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "oss-emulator: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--root") {
      opt.root = value();
    } else if (a == "--listen") {
      std::string v = value();
      std::size_t colon = v.rfind(':');
      if (colon == std::string::npos) return fail("--listen: expected HOST:PORT, got '" + v + "'");
      opt.listen_host = v.substr(0, colon);
      char* end = nullptr;
      long port = std::strtol(v.c_str() + colon + 1, &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) return fail("--listen: bad port in '" + v + "'");
      opt.port = static_cast<std::uint16_t>(port);
    } else if (a == "--port-file") {
      port_file = value();
    } else if (a == "--region") {
      opt.region = value();
    } else if (a == "--credentials") {
      ossshim::auth::Credentials c;
      if (!parse_credentials(value(), c)) return fail("--credentials: expected AK:SECRET[:TOKEN]");
      opt.credentials.push_back(c);
    } else if (a == "--anonymous") {
      opt.anonymous = true;
    } else if (a == "--fault") {
      std::string spec = value();
      ossemu::FaultSpec f;
      if (auto bad = ossemu::parse_faults(spec, f)) return fail("--fault: " + *bad);
      setenv("OSS_EMULATOR_FAULTS", spec.c_str(), 1);
    } else if (a == "--host-suffix") {
      if (!suffix_given) opt.host_suffixes.clear();
      suffix_given = true;
      opt.host_suffixes.push_back(value());
    } else if (a == "--threads") {
      opt.threads = static_cast<unsigned>(std::atoi(value().c_str()));
    } else if (a == "--quiet") {
      opt.quiet = true;
    } else {
      return fail("unknown option '" + a + "' (see --help)");
    }
  }
  if (opt.root.empty()) return fail("--root DIR is required (see --help)");
  if (::access(opt.root.c_str(), R_OK | W_OK | X_OK) != 0)
    return fail("--root " + opt.root + ": " + std::strerror(errno));
  if (const char* env = std::getenv("OSS_EMULATOR_CREDENTIALS")) {
    std::string list = env;
    std::size_t start = 0;
    while (start < list.size()) {
      std::size_t comma = list.find(',', start);
      ossshim::auth::Credentials c;
      if (!parse_credentials(
              list.substr(start, comma == std::string::npos ? std::string::npos : comma - start), c))
        return fail("OSS_EMULATOR_CREDENTIALS: expected ak:sk[,ak2:sk2]");
      opt.credentials.push_back(c);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (opt.credentials.empty()) opt.credentials.push_back({"test-ak", "test-sk", ""});
  // Clients configured for the real service address the emulator as <bucket>.oss-<region>.aliyuncs.com.
  if (!suffix_given) {
    opt.host_suffixes.push_back("oss-" + opt.region + ".aliyuncs.com");
    opt.host_suffixes.push_back("oss-" + opt.region + "-internal.aliyuncs.com");
  }

  ossemu::Server server(opt);
  if (std::string err = server.start(); !err.empty()) return fail(err);
  if (const char* spec = std::getenv("OSS_EMULATOR_FAULTS")) {
    ossemu::FaultSpec f;
    ossemu::parse_faults(spec, f);
    server.faults().set(f);
  }
  if (!port_file.empty()) std::ofstream(port_file) << server.port() << "\n";
  std::printf("oss-emulator listening on http://%s:%u\n", opt.listen_host.c_str(), server.port());
  std::fflush(stdout);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  while (!g_stop) pause();
  return 0;
}
