#include "http/curl.hpp"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "log/log.hpp"
#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossshim::http {

namespace {

using Clock = std::chrono::steady_clock;

struct GlobalInit {
  GlobalInit() {
    // No OpenSSL clean-up at exit: the shim's workers and a program's atexit handlers or static
    // destructors may still sign and fetch while the process exits. (Only effective when we are
    // the first to initialise OpenSSL, as in most programs.)
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
    curl_global_init(CURL_GLOBAL_DEFAULT);
  }
};

thread_local bool t_in_curl = false;

// While this thread is in libcurl: descriptors curl makes without SOCK_CLOEXEC (7.88's wakeup and
// resolver socketpairs) get it from the shim's socketpair.
struct InCurl {
  InCurl() { t_in_curl = true; }
  ~InCurl() { t_in_curl = false; }
};

// The shim's connections are its own: a program exec'd by the host process must not inherit them.
curl_socket_t open_socket_cloexec(void*, curlsocktype, curl_sockaddr* addr) {
  return ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

std::int64_t ms_until(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
}

}  // namespace

bool in_curl() {
  return t_in_curl;
}

// State of one attempt, shared with curl's callbacks.
struct CurlTransport::Attempt {
  Exchange* exchange;
  Response response;
  std::string_view upload;
  std::size_t upload_pos = 0;
  bool got_header = false;
  bool overflow = false;
  Clock::time_point started = Clock::now();
  Clock::time_point upload_done{};
  std::uint32_t first_byte_timeout_ms = 0;
  bool first_byte_timed_out = false;
  int sink_errno = 0;  // the caller's sink_write failed (not retried: it is not the network's)
  CURL* handle = nullptr;

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    std::string_view line(data, size * n);
    a->got_header = true;
    if (line.starts_with("HTTP/")) {
      a->response.headers.clear();  // a new status line (e.g. after 100 Continue)
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      a->response.headers.push_back(
          {std::string(util::trim(line.substr(0, colon))), std::string(util::trim(line.substr(colon + 1)))});
    }
    return size * n;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    std::size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(a->handle, CURLINFO_RESPONSE_CODE, &status);
    Exchange& x = *a->exchange;
    if ((x.sink || x.sink_write) && status >= 200 && status < 300) {
      if (a->response.sink_bytes + len > x.sink_capacity) {
        a->overflow = true;
        return 0;  // aborts the transfer
      }
      if (x.sink) {
        std::memcpy(x.sink + a->response.sink_bytes, data, len);
      } else if (!x.sink_write(data, len, a->response.sink_bytes)) {
        a->sink_errno = errno ? errno : EIO;
        return 0;
      }
      a->response.sink_bytes += len;
    } else {
      if (a->response.body.size() + len > (64u << 20)) {
        a->overflow = true;
        return 0;
      }
      a->response.body.append(data, len);
    }
    return len;
  }

  static std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    std::size_t len = std::min(size * n, a->upload.size() - a->upload_pos);
    std::memcpy(buffer, a->upload.data() + a->upload_pos, len);
    a->upload_pos += len;
    return len;
  }

  // libcurl has no time-to-first-byte limit: count from the end of the upload.
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) {
    auto* a = static_cast<Attempt*>(self);
    if (a->got_header || a->first_byte_timeout_ms == 0) return 0;
    auto now = Clock::now();
    if (ulnow < ultotal) return 0;
    if (a->upload_done == Clock::time_point{}) a->upload_done = now;
    if (now - a->upload_done > std::chrono::milliseconds(a->first_byte_timeout_ms)) {
      a->first_byte_timed_out = true;
      return 1;
    }
    return 0;
  }
};

CurlTransport::CurlTransport(const Config& config) : config_(config) {
  static GlobalInit init;
}

CurlTransport::~CurlTransport() {
  for (CURL* h : pool_) curl_easy_cleanup(h);
}

void CurlTransport::abandon_after_fork() {
  // The handles' sockets and TLS state belong to the parent too; cleaning them up here could send
  // a TLS close over the parent's connection. Leak them instead.
  new (&pool_mu_) std::mutex;
  new (&pool_) decltype(pool_)();  // the parent's vector may have been mid-change: not touched
}

CURL* CurlTransport::take_handle() {
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      CURL* h = pool_.back();
      pool_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void CurlTransport::give_back(CURL* handle) {
  std::lock_guard lock(pool_mu_);
  pool_.push_back(handle);
}

std::time_t CurlTransport::now() const {
  return std::time(nullptr) + clock_offset_.load(std::memory_order_relaxed);
}

namespace {
// Requests whose answer waits for work on the server (a server-side copy, completing a multipart
// upload of many parts): silence until the response is normal, so neither the first-byte nor the
// low-speed limit applies, and the deadline is at least 10 minutes.
bool server_works(const Request& req) {
  return req.header("x-oss-copy-source") || req.header("x-amz-copy-source") ||
         (req.method == "POST" && req.query_param("uploadId"));
}
constexpr std::uint32_t kServerWorkMs = 600000;
}  // namespace

namespace {
// What a connection failure most likely means, with the fix ("" when nothing useful can be said).
std::string connection_hint(CURLcode rc, const std::string& text, const std::string& endpoint) {
  bool https = endpoint.rfind("https://", 0) == 0;
  // A plain-HTTP server answers a TLS hello with text ("wrong version number") or by hanging up.
  if (rc == CURLE_SSL_CONNECT_ERROR && https) {
    bool plain = text.find("wrong version number") != std::string::npos;
    return std::string(plain ? "; the server answers plain HTTP, not TLS" : "; the TLS handshake failed") +
           ": if the server speaks plain HTTP, write the endpoint as http://" + endpoint.substr(8) +
           " (OSSSHIM_ENDPOINT; no scheme means https)";
  }
  if (rc == CURLE_COULDNT_RESOLVE_HOST)
    return "; check the host name in OSSSHIM_ENDPOINT (" + endpoint +
           ") and the bucket, with virtual addressing the bucket is part of it";
  if (rc == CURLE_COULDNT_CONNECT)
    return "; nothing accepts connections at OSSSHIM_ENDPOINT (" + endpoint + "): check the host and port";
  if (rc == CURLE_PEER_FAILED_VERIFICATION)
    return "; the server's certificate is not trusted: set ca_file (OSSSHIM_CA_FILE) to its CA bundle";
  return "";
}
}  // namespace

Result<Response> CurlTransport::attempt(Exchange& x, Clock::time_point deadline) {
  Attempt a;
  a.exchange = &x;
  a.upload = x.body;
  bool patient = server_works(x.request);
  a.first_byte_timeout_ms = patient ? 0 : config_.first_byte_timeout_ms;
  Request req = x.request;
  if (x.sign) x.sign(req, now());

  CURL* h = take_handle();
  a.handle = h;
  curl_easy_reset(h);  // keeps the handle's live connections
  curl_slist* headers = nullptr;
  for (const auto& hd : req.headers)
    headers = curl_slist_append(headers, (hd.name + ": " + hd.value).c_str());
  headers = curl_slist_append(headers, "Expect:");
  headers = curl_slist_append(headers, "Accept:");
  if (!req.header("Content-Type") && !x.body.empty()) headers = curl_slist_append(headers, "Content-Type:");

  curl_easy_setopt(h, CURLOPT_URL, x.url.c_str());
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &open_socket_cloexec);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(1, ms_until(deadline))));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, patient ? 0L : static_cast<long>(config_.low_speed_bytes));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(config_.low_speed_seconds));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, config_.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, config_.verify_tls ? 2L : 0L);
  if (!config_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Attempt::on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Attempt::on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Attempt::on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &a);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &Attempt::on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &a);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(x.body.size()));
    if (req.method == "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (req.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc;
  {
    InCurl in_curl;
    rc = curl_easy_perform(h);
  }
  curl_slist_free_all(headers);
  long status = 0, connects = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
  curl_off_t down = 0, up = 0;
  curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
  curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
  counters_.requests++;
  counters_.connections += static_cast<std::uint64_t>(connects);
  counters_.bytes_in += static_cast<std::uint64_t>(down);
  counters_.bytes_out += static_cast<std::uint64_t>(up);
  a.handle = nullptr;
  if (rc == CURLE_OK) {
    give_back(h);
  } else {
    curl_easy_cleanup(h);  // its connection is in an unknown state
  }

  if (rc == CURLE_OK) {
    a.response.status = static_cast<int>(status);
    return std::move(a.response);
  }
  Error e;
  e.op = x.op;
  e.target = x.target;
  e.err = EIO;
  e.http_status = a.overflow ? static_cast<int>(status) : 0;
  if (a.sink_errno) {
    e.err = a.sink_errno;
    e.code = "sink write failed";
    e.message = std::string("cannot store the body locally: ") + std::strerror(a.sink_errno);
  } else if (a.first_byte_timed_out) {
    e.err = ETIMEDOUT;
    e.code = "first-byte timeout";
    e.message =
        "no response byte within " + std::to_string(config_.first_byte_timeout_ms) + " ms from " + req.host;
  } else if (a.overflow) {
    e.code = "response too large";
    e.message =
        "body exceeds the " + std::to_string(x.sink ? x.sink_capacity : (64u << 20)) + " bytes expected";
  } else {
    e.err = rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO;
    e.code = curl_easy_strerror(rc);
    e.message = errbuf[0] ? std::string(util::trim(errbuf)) : std::string(curl_easy_strerror(rc));
    e.message += connection_hint(rc, e.message, config_.endpoint);
  }
  return e;
}

Result<Response> CurlTransport::execute(Exchange& x) {
  auto deadline =
      Clock::now() + std::chrono::milliseconds(server_works(x.request)
                                                   ? std::max(config_.request_timeout_ms, kServerWorkMs)
                                                   : config_.request_timeout_ms);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  for (std::uint32_t attempt_no = 0;; ++attempt_no) {
    Result<Response> r = attempt(x, deadline);
    bool retry = false;
    std::int64_t min_delay_ms = 0;
    std::string why;
    if (!r.ok()) {
      // A response that overflowed the caller's buffer will overflow again.
      retry = r.error().code != "response too large" && r.error().code != "sink write failed";
      why = r.error().code;
    } else {
      const Response& resp = r.value();
      int s = resp.status;
      if (s >= 500 || s == 408 || s == 429) {
        retry = true;
        why = "HTTP " + std::to_string(s);
        if (const std::string* d = resp.header("x-oss-qos-delay-time")) min_delay_ms = std::atoll(d->c_str());
      } else if (s == 403 && x.error_code && x.error_code(resp) == "RequestTimeTooSkewed") {
        // Re-sign with the server's clock, learned from its Date header.
        if (const std::string* date = resp.header("Date"))
          if (auto server = util::parse_rfc1123(*date))
            clock_offset_.store(*server - std::time(nullptr), std::memory_order_relaxed);
        retry = true;
        why = "RequestTimeTooSkewed";
      }
    }
    if (!retry || attempt_no >= config_.retries) return r;
    // Full-jitter exponential backoff.
    std::uint64_t cap = std::min<std::uint64_t>(
        config_.retry_max_ms, static_cast<std::uint64_t>(config_.retry_base_ms) << std::min(attempt_no, 20u));
    auto delay = static_cast<std::int64_t>(std::uniform_int_distribution<std::uint64_t>(0, cap)(rng));
    delay = std::max(delay, min_delay_ms);
    if (ms_until(deadline) <= delay) return r;
    counters_.retries++;
    log::debug(x.op + " " + x.target + ": retrying after " + why + " (attempt " +
               std::to_string(attempt_no + 2) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

}  // namespace ossshim::http
