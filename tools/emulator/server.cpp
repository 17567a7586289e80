#include "server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <pugixml.hpp>
#include <random>
#include <thread>

#include "auth/verify.hpp"
#include "util/crc64.hpp"
#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossemu {

using ossshim::Header;
using ossshim::QueryParam;
using ossshim::Request;
namespace util = ossshim::util;

// ------------------------------------------------------------------ helpers

namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string new_request_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string raw(12, '\0');
  for (char& c : raw) c = static_cast<char>(rng());
  return util::hex_upper(raw);
}

std::string tag(const char* name, const std::string& value) {
  return std::string("<") + name + ">" + xml_escape(value) + "</" + name + ">";
}

std::string unquote(std::string s) {
  s = std::string(util::trim(s));
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// Streaming digest of an upload body.
struct BodyDigest {
  EVP_MD_CTX* md5 = EVP_MD_CTX_new();
  std::uint64_t crc = 0;
  BodyDigest() { EVP_DigestInit_ex(md5, EVP_md5(), nullptr); }
  ~BodyDigest() { EVP_MD_CTX_free(md5); }
  void update(const char* data, std::size_t n) {
    EVP_DigestUpdate(md5, data, n);
    crc = util::crc64_update(crc, data, n);
  }
  std::string md5_raw() {
    unsigned char out[16];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md5, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }
};

// A GET body served through a callback, for bandwidth caps and mid-body faults.
struct Stream {
  Server* server;
  int fd;
  std::uint64_t offset, length;
  std::int64_t reset_after, truncate_after, replace_after;
  int socket_fd;
  std::string object, path;
  std::uint64_t sent = 0;
  bool replaced = false;
};

ssize_t stream_read(void* cls, std::uint64_t pos, char* buf, std::size_t max) {
  auto* s = static_cast<Stream*>(cls);
  if (pos >= s->length) return MHD_CONTENT_READER_END_OF_STREAM;
  std::size_t want = std::min<std::uint64_t>({max, s->length - pos, 256 * 1024});
  auto limit = [&](std::int64_t at) {
    if (at >= 0 && static_cast<std::uint64_t>(at) > pos)
      want = std::min<std::uint64_t>(want, static_cast<std::uint64_t>(at) - pos);
  };
  limit(s->reset_after);
  limit(s->truncate_after);
  limit(s->replace_after);
  if (s->replace_after >= 0 && pos >= static_cast<std::uint64_t>(s->replace_after) && !s->replaced) {
    s->replaced = true;
    s->server->store().replace_content(s->path);
  }
  if (s->reset_after >= 0 && pos >= static_cast<std::uint64_t>(s->reset_after)) {
    linger l{1, 0};  // RST instead of FIN
    setsockopt(s->socket_fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (s->truncate_after >= 0 && pos >= static_cast<std::uint64_t>(s->truncate_after))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  s->server->faults().pace(want);
  ssize_t n = ::pread(s->fd, buf, want, static_cast<off_t>(s->offset + pos));
  if (n <= 0) return MHD_CONTENT_READER_END_WITH_ERROR;
  s->sent += static_cast<std::uint64_t>(n);
  s->server->stats().add_out(s->object, static_cast<std::uint64_t>(n));
  return n;
}

void stream_free(void* cls) {
  auto* s = static_cast<Stream*>(cls);
  ::close(s->fd);
  delete s;
}

ssize_t no_body(void*, std::uint64_t, char*, std::size_t) {
  return MHD_CONTENT_READER_END_WITH_ERROR;
}

// MHD would decode the URL in place; keep it raw so signatures see exactly what was sent.
std::size_t keep_raw(void*, MHD_Connection*, char* s) {
  return std::strlen(s);
}

MHD_Result collect_header(void* cls, MHD_ValueKind, const char* key, const char* value) {
  static_cast<std::vector<Header>*>(cls)->push_back({key, value ? value : ""});
  return MHD_YES;
}

MHD_Result collect_query(void* cls, MHD_ValueKind, const char* key, const char* value) {
  QueryParam q;
  if (!util::uri_decode(key, q.name, false)) q.name = key;
  if (value && !util::uri_decode(value, q.value, false)) q.value = value;
  static_cast<std::vector<QueryParam>*>(cls)->push_back(std::move(q));
  return MHD_YES;
}

void on_connection(void* cls, MHD_Connection*, void**, MHD_ConnectionNotificationCode code) {
  if (code == MHD_CONNECTION_NOTIFY_STARTED) static_cast<Server*>(cls)->stats().connections++;
}

MHD_Result dispatch(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                    const char* upload_data, std::size_t* upload_size, void** state) {
  return static_cast<Server*>(cls)->handle(c, url, method, upload_data, upload_size, state) ? MHD_YES
                                                                                            : MHD_NO;
}

}  // namespace

// ------------------------------------------------------------------ stats

void Stats::record(const std::string& op, const std::string& object, std::uint64_t out) {
  requests++;
  bytes_out += out;
  std::lock_guard lock(mu_);
  ops_[op]++;
  if (!object.empty()) {
    auto& o = objects_[object];
    o.requests++;
    o.bytes_out += out;
  }
}

void Stats::add_out(const std::string& object, std::uint64_t out) {
  bytes_out += out;
  std::lock_guard lock(mu_);
  objects_[object].bytes_out += out;
}

void Stats::add_in(const std::string& object, std::uint64_t in) {
  bytes_in += in;
  if (object.empty()) return;
  std::lock_guard lock(mu_);
  objects_[object].bytes_in += in;
}

std::string Stats::json() {
  std::lock_guard lock(mu_);
  std::string s = "{\"requests\":" + std::to_string(requests) +
                  ",\"bytes_out\":" + std::to_string(bytes_out) +
                  ",\"bytes_in\":" + std::to_string(bytes_in) +
                  ",\"connections\":" + std::to_string(connections) + ",\"ops\":{";
  bool first = true;
  for (const auto& [op, n] : ops_) {
    s += std::string(first ? "" : ",") + "\"" + op + "\":" + std::to_string(n);
    first = false;
  }
  s += "},\"objects\":{";
  first = true;
  for (const auto& [name, o] : objects_) {
    s += std::string(first ? "" : ",") + "\"" + json_escape(name) +
         "\":{\"requests\":" + std::to_string(o.requests) + ",\"bytes_out\":" + std::to_string(o.bytes_out) +
         ",\"bytes_in\":" + std::to_string(o.bytes_in) + "}";
    first = false;
  }
  return s + "}}\n";
}

void Stats::reset() {
  requests = bytes_out = bytes_in = connections = 0;
  std::lock_guard lock(mu_);
  ops_.clear();
  objects_.clear();
}

// ------------------------------------------------------------------ one request

struct Server::Exchange {
  MHD_Connection* conn = nullptr;
  Request req;         // bucket/key decoded, query decoded, path raw
  std::string op;      // OSS operation name
  std::string object;  // "bucket/key" for counters and fault matching
  std::string request_id = new_request_id();
  FaultDecision fault;
  std::optional<Failure> early;  // auth or validation failure decided before the body
  std::string string_to_sign;    // for SignatureDoesNotMatch bodies
  bool s3_dialect = false;       // SigV4-signed: S3 clients expect lowercase ETags
  // Body handling: streamed to a temp file (PutObject, UploadPart) or kept in memory.
  bool stream_body = false;
  int body_fd = -1;
  std::string temp_path;
  std::int64_t body_offset = -1;  // UploadPart in place: where in the upload's data file
  std::uint64_t written = 0;
  std::string part_dir;
  int part = 0;
  Store* store = nullptr;  // to release an in-place part
  BodyDigest digest;
  std::string body;
  std::uint64_t received = 0;
  bool started = false;

  const std::string* q(const char* name) const {
    const QueryParam* p = req.query_param(name);
    return p ? &p->value : nullptr;
  }
  bool has(const char* name) const { return req.query_param(name) != nullptr; }
  // A piece of the request body: to the temp file (hashed on the way) or kept in memory.
  void take_body(const char* data, std::size_t n) {
    if (!stream_body) {
      if (body.size() + n > (64u << 20))
        early = Failure{400, "EntityTooLarge", "request body too large for this operation"};
      else
        body.append(data, n);
      return;
    }
    digest.update(data, n);
    while (n > 0) {
      ssize_t w = body_offset >= 0
                      ? ::pwrite(body_fd, data, n,
                                 static_cast<off_t>(static_cast<std::uint64_t>(body_offset) + written))
                      : ::write(body_fd, data, n);
      if (w <= 0) {
        early = Failure{500, "InternalError", std::string("write: ") + std::strerror(errno)};
        return;
      }
      data += w;
      n -= static_cast<std::size_t>(w);
      written += static_cast<std::uint64_t>(w);
    }
  }
  // Drops a partly received body so a failed upload leaves nothing behind, before the reply.
  void discard_body() {
    if (body_fd >= 0) ::close(body_fd);
    if (!temp_path.empty()) ::unlink(temp_path.c_str());
    if (body_offset >= 0 && store) store->release_part(part_dir, part, PartTarget{-1, "", body_offset});
    body_fd = -1;
    temp_path.clear();
    body_offset = -1;
  }
  ~Exchange() { discard_body(); }
};

namespace {

struct Reply {
  int status = 200;
  std::vector<Header> headers;
  std::string body;
  // File body (sendfile) or callback stream instead of `body`.
  int fd = -1;
  std::uint64_t offset = 0, length = 0;
  Stream* stream = nullptr;
  bool head_size = false;  // HEAD: advertise `length` without a body
};

std::string error_xml(const Failure& f, const std::string& rid, const std::string& host,
                      const std::string& sts) {
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  " + tag("Code", f.code) + "\n  " +
                  tag("Message", f.message) + "\n  " + tag("RequestId", rid) + "\n  " + tag("HostId", host) +
                  "\n";
  if (!sts.empty()) x += "  " + tag("StringToSign", sts) + "\n";
  return x + "  " + tag("EC", "0000-00000000") + "\n</Error>\n";
}

}  // namespace

void request_completed(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode);

Server::Server(ServerOptions options) : opt_(std::move(options)), store_(opt_.root) {}

Server::~Server() {
  if (daemon_) MHD_stop_daemon(daemon_);
}

std::string Server::start() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(opt_.port);
  if (inet_pton(AF_INET, opt_.listen_host.c_str(), &addr.sin_addr) != 1)
    return "--listen: '" + opt_.listen_host + "' is not an IPv4 address";
  if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127)
    return "--listen: refusing " + opt_.listen_host + ": the emulator listens on loopback (127.0.0.0/8) only";
  daemon_ = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (opt_.quiet ? 0 : MHD_USE_ERROR_LOG),
      opt_.port, nullptr, nullptr, &dispatch, this, MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
      MHD_OPTION_UNESCAPE_CALLBACK, &keep_raw, nullptr, MHD_OPTION_NOTIFY_CONNECTION, &on_connection, this,
      MHD_OPTION_NOTIFY_COMPLETED, &request_completed, nullptr, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
      MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
      // Request bodies arrive in pieces of about the read buffer: 1 MiB instead of the default 32 KiB
      // takes one recv, one write and one poll per ~512 KiB instead of per 16 KiB.
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<std::size_t>(1 << 20),
      MHD_OPTION_CONNECTION_MEMORY_INCREMENT, static_cast<std::size_t>(256 << 10), MHD_OPTION_END);
  if (!daemon_)
    return "cannot listen on " + opt_.listen_host + ":" + std::to_string(opt_.port) + ": " +
           std::strerror(errno);
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info ? info->port : opt_.port;
  return "";
}

// Classifies the request, verifies it and prepares body handling (first callback).
static void begin(Server& s, Server::Exchange& x, const ServerOptions& opt, const char* url,
                  const char* method);

int Server::handle(void* connection, const char* url, const char* method, const char* upload_data,
                   std::size_t* upload_size, void** state) {
  auto* conn = static_cast<MHD_Connection*>(connection);
  auto* x = static_cast<Exchange*>(*state);
  if (!x) {
    x = new Exchange;
    x->conn = conn;
    *state = x;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, &collect_header, &x->req.headers);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &collect_query, &x->req.query);
    begin(*this, *x, opt_, url, method);
    return MHD_YES;
  }
  if (*upload_size > 0) {
    bool reset = false;
    std::size_t n = *upload_size;
    if (std::int64_t at = x->fault.reset_upload_after;
        at >= 0 && x->received + n > static_cast<std::uint64_t>(at)) {
      n = static_cast<std::size_t>(static_cast<std::uint64_t>(at) - x->received);
      reset = true;
    }
    // Request bodies share the bandwidth cap with response bodies: not reading holds the sender back.
    if (x->fault.paced && n > 0) faults_.pace(n);
    std::string corrupted;
    if (std::int64_t at = x->fault.corrupt_upload; at >= 0 && static_cast<std::uint64_t>(at) >= x->received &&
                                                   static_cast<std::uint64_t>(at) < x->received + n) {
      corrupted.assign(upload_data, n);
      corrupted[static_cast<std::uint64_t>(at) - x->received] ^= 0x5a;  // damaged on the way in
      upload_data = corrupted.data();
    }
    x->received += n;
    stats_.add_in(x->object, n);
    if (!x->early && n > 0) x->take_body(upload_data, n);
    if (reset) {
      // RST instead of FIN: the client sees the connection reset mid-upload.
      if (const MHD_ConnectionInfo* ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)) {
        linger l{1, 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      return MHD_NO;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return respond(*x);
}

void request_completed(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  delete static_cast<Server::Exchange*>(*state);
  *state = nullptr;
}

// ------------------------------------------------------------------ routing and auth

static std::string op_name(const Server::Exchange& x) {
  const Request& r = x.req;
  const std::string& m = r.method;
  if (r.bucket.empty()) return m == "GET" ? "ListBuckets" : "Unsupported";
  if (r.key.empty()) {
    if (m == "GET" && x.has("uploads")) return "ListMultipartUploads";
    if (m == "GET" && x.has("location")) return "GetBucketLocation";
    if (m == "GET" && x.has("acl")) return "GetBucketAcl";
    if (m == "GET") return x.q("list-type") && *x.q("list-type") == "2" ? "ListObjectsV2" : "ListObjects";
    if (m == "HEAD") return "HeadBucket";
    if (m == "PUT") return "PutBucket";
    if (m == "DELETE") return "DeleteBucket";
    if (m == "POST" && x.has("delete")) return "DeleteMultipleObjects";
    return "Unsupported";
  }
  bool copy = r.header("x-oss-copy-source") || r.header("x-amz-copy-source");
  if (m == "HEAD") return "HeadObject";
  if (x.has("symlink") && (m == "GET" || m == "PUT")) return m == "GET" ? "GetSymlink" : "PutSymlink";
  if (m == "GET") return x.has("uploadId") ? "ListParts" : "GetObject";
  if (m == "PUT") {
    if (x.has("partNumber") && x.has("uploadId")) return copy ? "UploadPartCopy" : "UploadPart";
    return copy ? "CopyObject" : "PutObject";
  }
  if (m == "POST") {
    if (x.has("uploads")) return "InitiateMultipartUpload";
    if (x.has("uploadId")) return "CompleteMultipartUpload";
    return "Unsupported";
  }
  if (m == "DELETE") return x.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  return "Unsupported";
}

static void begin(Server& s, Server::Exchange& x, const ServerOptions& opt, const char* url,
                  const char* method) {
  Request& r = x.req;
  r.method = method;
  r.path = url;
  if (const std::string* h = r.header("Host")) r.host = *h;
  std::string path = url;
  if (path.starts_with("/_admin/")) {
    x.op = "Admin";
    return;
  }
  // Virtual-hosted when Host is <bucket>.<suffix>; otherwise the first path segment is the bucket.
  std::string host =
      r.host.substr(0, r.host.rfind(':') == std::string::npos ? r.host.size() : r.host.rfind(':'));
  std::string raw_key;
  for (const auto& suffix : opt.host_suffixes) {
    if (host.size() > suffix.size() + 1 && host.ends_with("." + suffix)) {
      r.bucket = host.substr(0, host.size() - suffix.size() - 1);
      raw_key = path.size() > 1 ? path.substr(1) : "";
      break;
    }
  }
  if (r.bucket.empty() && path.size() > 1) {
    std::size_t slash = path.find('/', 1);
    r.bucket = path.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
    raw_key = slash == std::string::npos ? "" : path.substr(slash + 1);
  }
  if (!util::uri_decode(raw_key, r.key, false))
    x.early = Failure{400, "InvalidURI", "malformed percent-encoding"};
  x.op = op_name(x);
  x.object = r.bucket.empty() ? "" : r.bucket + "/" + r.key;

  // Authentication.
  auto secret_for = [&opt](const std::string& ak) -> std::optional<ossshim::auth::Credentials> {
    for (const auto& c : opt.credentials)
      if (c.access_key_id == ak) return c;
    return std::nullopt;
  };
  auto v = ossshim::auth::verify(r, secret_for, opt.region, std::time(nullptr));
  x.s3_dialect = v.scheme == ossshim::auth::Scheme::s3v4;
  if (!v.ok && !(v.anonymous && opt.anonymous) && !x.early) {
    x.early = Failure{403, v.error_code, v.message};
    x.string_to_sign = v.string_to_sign;
  }
  x.fault = s.faults().decide(x.op, x.object);

  if (x.early) return;
  if (x.op == "PutObject" && !r.key.empty()) {
    if (auto f = s.store().temp_file_for(r.bucket, r.key, x.temp_path, x.body_fd)) x.early = f;
    x.stream_body = true;
  } else if (x.op == "UploadPart") {
    const std::string* n = x.q("partNumber");
    int part = n ? std::atoi(n->c_str()) : 0;
    if (part < 1 || part > 10000) {
      x.early =
          Failure{400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive."};
    } else if (auto f = s.store().upload_dir(r.bucket, r.key, *x.q("uploadId"), x.part_dir)) {
      x.early = f;
    } else {
      // In place in the upload's data file when the part fits its layout (Content-Length known).
      std::int64_t length = -1;
      if (const std::string* cl = r.header("Content-Length")) {
        std::string_view v = util::trim(*cl);
        if (std::from_chars(v.data(), v.data() + v.size(), length).ptr != v.data() + v.size()) length = -1;
      }
      PartTarget t;
      if (auto f2 = s.store().part_target(x.part_dir, part, length, t)) {
        x.early = f2;
      } else {
        x.body_fd = t.fd;
        x.temp_path = t.temp_path;
        x.body_offset = t.offset;
        x.part = part;
        x.store = &s.store();
      }
    }
    x.stream_body = true;
  }
}

// ------------------------------------------------------------------ responses

// S3 clients (s3cmd) compare ETags with their lowercase MD5 hex; OSS clients see OSS's uppercase.
static void lowercase_etags(Reply& reply) {
  auto lower = [](std::string& v, std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to && i < v.size(); ++i)
      if (v[i] >= 'A' && v[i] <= 'F') v[i] = static_cast<char>(v[i] + 32);
  };
  for (auto& h : reply.headers)
    if (util::iequals(h.name, "ETag")) lower(h.value, 0, h.value.size());
  for (std::size_t at = reply.body.find("<ETag>"); at != std::string::npos;
       at = reply.body.find("<ETag>", at + 1))
    lower(reply.body, at + 6, reply.body.find("</ETag>", at));
}

static int send_reply(Server& s, Server::Exchange& x, Reply& reply) {
  if (x.s3_dialect) lowercase_etags(reply);
  if (x.fault.wrong_crc)
    for (auto& h : reply.headers)
      if (util::iequals(h.name, "x-oss-hash-crc64ecma"))
        h.value = std::to_string(std::strtoull(h.value.c_str(), nullptr, 10) + 1);
  if (x.fault.first_byte_ms) std::this_thread::sleep_for(std::chrono::milliseconds(x.fault.first_byte_ms));
  MHD_Response* resp;
  std::uint64_t out_bytes = 0;
  if (reply.stream) {
    resp =
        MHD_create_response_from_callback(reply.length, 256 * 1024, &stream_read, reply.stream, &stream_free);
  } else if (reply.fd >= 0) {
    resp = MHD_create_response_from_fd_at_offset64(reply.length, reply.fd, reply.offset);
    out_bytes = x.req.method == "HEAD" ? 0 : reply.length;
  } else if (reply.head_size) {
    resp = MHD_create_response_from_callback(reply.length, 4096, &no_body, nullptr, nullptr);
  } else {
    resp = MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
    out_bytes = x.req.method == "HEAD" ? 0 : reply.body.size();
  }
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "x-oss-request-id", x.request_id.c_str());
  MHD_add_response_header(resp, "Server", "oss-emulator");
  for (const auto& h : reply.headers) MHD_add_response_header(resp, h.name.c_str(), h.value.c_str());
  // Bytes of callback streams are counted as they leave; the rest when queued. Request bodies
  // were counted as they arrived.
  s.stats().record(x.op, x.object, out_bytes);
  MHD_Result ret = MHD_queue_response(x.conn, static_cast<unsigned>(reply.status), resp);
  MHD_destroy_response(resp);
  return ret;
}

static int send_failure(Server& s, Server::Exchange& x, const Failure& f) {
  x.discard_body();
  Reply reply;
  reply.status = f.status;
  std::string host = x.req.host;
  std::string xml =
      error_xml(f, x.request_id, host, f.code == "SignatureDoesNotMatch" ? x.string_to_sign : "");
  reply.headers.push_back({"x-oss-ec", "0000-00000000"});
  if (f.status == 503) reply.headers.push_back({"x-oss-qos-delay-time", "10"});
  if (x.req.method == "HEAD") {
    reply.headers.push_back({"x-oss-err", util::base64_encode(xml)});
  } else {
    reply.headers.push_back({"Content-Type", "application/xml"});
    reply.body = xml;
  }
  return send_reply(s, x, reply);
}

static int send_xml(Server& s, Server::Exchange& x, const std::string& xml, int status = 200) {
  Reply reply;
  reply.status = status;
  reply.headers.push_back({"Content-Type", "application/xml"});
  reply.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + xml;
  return send_reply(s, x, reply);
}

static void object_headers(Reply& reply, const ObjectMeta& m) {
  reply.headers.push_back({"ETag", m.etag});
  reply.headers.push_back({"Last-Modified", util::format_rfc1123(m.mtime)});
  reply.headers.push_back({"Content-Type", m.content_type});
  reply.headers.push_back({"x-oss-object-type", m.object_type});
  reply.headers.push_back({"x-oss-hash-crc64ecma", std::to_string(m.crc64)});
  reply.headers.push_back({"x-oss-storage-class", "Standard"});
  reply.headers.push_back({"Accept-Ranges", "bytes"});
}

// Conditional headers; returns a status (304/412) to stop with, or 0.
static int preconditions(const Request& r, const ObjectMeta& m) {
  if (const std::string* v = r.header("If-Match");
      v && !util::iequals(unquote(*v), unquote(m.etag)) && *v != "*")
    return 412;
  if (const std::string* v = r.header("If-Unmodified-Since")) {
    auto t = util::parse_rfc1123(*v);
    if (t && m.mtime > *t) return 412;
  }
  if (const std::string* v = r.header("If-None-Match");
      v && (util::iequals(unquote(*v), unquote(m.etag)) || *v == "*"))
    return 304;
  if (const std::string* v = r.header("If-Modified-Since")) {
    auto t = util::parse_rfc1123(*v);
    if (t && m.mtime <= *t) return 304;
  }
  return 0;
}

// Parses "bytes=a-b", "bytes=a-", "bytes=-n" (first range only). Returns false if unparsable.
static bool parse_range(const std::string& h, std::uint64_t size, bool standard, std::uint64_t& first,
                        std::uint64_t& last, bool& unsatisfiable) {
  unsatisfiable = false;
  if (!h.starts_with("bytes=")) return false;
  std::string spec = h.substr(6);
  spec = spec.substr(0, spec.find(','));
  std::size_t dash = spec.find('-');
  if (dash == std::string::npos) return false;
  std::string a = std::string(util::trim(spec.substr(0, dash))),
              b = std::string(util::trim(spec.substr(dash + 1)));
  auto digits = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (a.empty()) {
    if (!digits(b)) return false;
    std::uint64_t n = std::stoull(b);
    if (n == 0 || size == 0) return unsatisfiable = true, true;
    first = n >= size ? 0 : size - n;
    last = size - 1;
    return true;
  }
  if (!digits(a) || (!b.empty() && !digits(b))) return false;
  first = std::stoull(a);
  last = b.empty() ? (size ? size - 1 : 0) : std::stoull(b);
  if (last < first) return false;
  if (first >= size) return unsatisfiable = true, true;
  if (last >= size) {
    if (!standard && !b.empty()) return false;  // legacy OSS: invalid range -> whole object
    last = size - 1;
  }
  return true;
}

static std::string list_key(const Server::Exchange& x, const std::string& key) {
  const std::string* enc = x.q("encoding-type");
  return enc && *enc == "url" ? util::uri_encode(key, true) : key;
}

// Content-MD5 against the body received: nullopt when absent or equal. OSS answers a mismatch with
// InvalidDigest (its error 0017-00000503), S3 with BadDigest; a value that is not base64 of 16
// bytes is InvalidDigest on both.
static std::optional<Failure> check_md5(const Server::Exchange& x, const std::string& md5) {
  const std::string* want = x.req.header("Content-MD5");
  if (!want) return std::nullopt;
  std::string raw;
  if (!util::base64_decode(util::trim(*want), raw) || raw.size() != 16)
    return Failure{400, "InvalidDigest", "The Content-MD5 you specified was invalid."};
  if (raw == md5) return std::nullopt;
  return Failure{400, x.s3_dialect ? "BadDigest" : "InvalidDigest",
                 "The Content-MD5 you specified did not match what we received."};
}

// How a write asks not to replace an existing object: OSS's x-oss-forbid-overwrite: true (refused
// with 409 FileAlreadyExists) or S3's If-None-Match: * (refused with 412 PreconditionFailed).
enum class Overwrite { allowed, forbidden_oss, forbidden_s3 };
static Overwrite overwrite_rule(const Request& r) {
  if (const std::string* v = r.header("x-oss-forbid-overwrite"); v && util::iequals(util::trim(*v), "true"))
    return Overwrite::forbidden_oss;
  if (const std::string* v = r.header("If-None-Match"); v && util::trim(*v) == "*")
    return Overwrite::forbidden_s3;
  return Overwrite::allowed;
}
static Failure overwrite_refused(Overwrite rule) {
  if (rule == Overwrite::forbidden_s3)
    return {412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."};
  return {409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten."};
}
// The store refuses with FileAlreadyExists; S3 clients get their 412 instead.
static Failure as_client_expects(const Failure& f, Overwrite rule) {
  return f.code == "FileAlreadyExists" ? overwrite_refused(rule) : f;
}

static int do_get(Server& s, Server::Exchange& x) {
  ObjectMeta m;
  if (auto f = s.store().head(x.req.bucket, x.req.key, m)) return send_failure(s, x, *f);
  if (int st = preconditions(x.req, m)) {
    if (st == 412)
      return send_failure(
          s, x,
          {412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."});
    Reply reply;
    reply.status = 304;
    reply.headers.push_back({"ETag", m.etag});
    return send_reply(s, x, reply);
  }
  Reply reply;
  object_headers(reply, m);
  std::uint64_t first = 0, last = m.size ? m.size - 1 : 0;
  bool ranged = false;
  const std::string* range = x.req.header("Range");
  const std::string* behavior = x.req.header("x-oss-range-behavior");
  bool standard = (behavior && *behavior == "standard") || x.req.header("x-amz-date") ||
                  x.req.header("x-amz-content-sha256");
  if (range) {
    bool unsatisfiable = false;
    if (parse_range(*range, m.size, standard, first, last, unsatisfiable)) {
      if (unsatisfiable) {
        if (standard) {
          Failure f{416, "InvalidRange", "The requested range cannot be satisfied"};
          return send_failure(s, x, f);
        }
      } else {
        ranged = true;
      }
    }
    if (!ranged) first = 0, last = m.size ? m.size - 1 : 0;
  }
  std::uint64_t length = m.size == 0 ? 0 : last - first + 1;
  if (ranged) {
    reply.status = 206;
    reply.headers.push_back({"Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
                                                  "/" + std::to_string(m.size)});
  }
  if (x.req.method == "HEAD" || x.op == "HeadObject") {
    reply.head_size = true;
    reply.length = m.size;
    return send_reply(s, x, reply);
  }
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return send_failure(s, x, {404, "NoSuchKey", "The specified key does not exist."});
  reply.offset = first;
  reply.length = length;
  if (x.fault.body_faults() || x.fault.paced) {
    const MHD_ConnectionInfo* ci = MHD_get_connection_info(x.conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    reply.stream = new Stream{&s,
                              fd,
                              first,
                              length,
                              x.fault.reset_after,
                              x.fault.truncate_after,
                              x.fault.replace_after,
                              ci ? ci->connect_fd : -1,
                              x.object,
                              m.path};
  } else {
    reply.fd = fd;
  }
  return send_reply(s, x, reply);
}

static int do_put_object(Server& s, Server::Exchange& x) {
  std::string md5 = x.digest.md5_raw();
  if (auto f = check_md5(x, md5)) return send_failure(s, x, *f);
  ::close(x.body_fd);
  x.body_fd = -1;
  const std::string* ctype = x.req.header("Content-Type");
  Overwrite rule = overwrite_rule(x.req);
  ObjectMeta m;
  auto f =
      s.store().commit(x.req.bucket, x.req.key, x.temp_path, "\"" + util::hex_upper(md5) + "\"", x.digest.crc,
                       ctype ? *ctype : "application/octet-stream", rule != Overwrite::allowed, m);
  x.temp_path.clear();
  if (f) return send_failure(s, x, as_client_expects(*f, rule));
  Reply reply;
  reply.headers = {{"ETag", m.etag},
                   {"x-oss-hash-crc64ecma", std::to_string(m.crc64)},
                   {"Content-MD5", util::base64_encode(md5)}};
  return send_reply(s, x, reply);
}

// Decodes "/bucket/key?versionId=..." from x-oss-copy-source / x-amz-copy-source.
static bool copy_source(const Request& r, std::string& bucket, std::string& key) {
  const std::string* src = r.header("x-oss-copy-source");
  if (!src) src = r.header("x-amz-copy-source");
  if (!src) return false;
  std::string raw = src->substr(0, src->find('?'));
  if (!raw.empty() && raw[0] == '/') raw = raw.substr(1);
  std::string decoded;
  if (!util::uri_decode(raw, decoded, false)) return false;
  std::size_t slash = decoded.find('/');
  if (slash == std::string::npos) return false;
  bucket = decoded.substr(0, slash);
  key = decoded.substr(slash + 1);
  return true;
}

// Copies [first, first+len) of a source object into fd, hashing it (digest) or, without a digest,
// in the kernel (copy_file_range).
static std::optional<Failure> copy_range(const ObjectMeta& src, std::uint64_t first, std::uint64_t len,
                                         int fd, BodyDigest* digest) {
  int in = ::open(src.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Failure{404, "NoSuchKey", "The specified key does not exist."};
  std::vector<char> buf(digest ? 1 << 20 : 0);
  while (len > 0) {
    ssize_t n;
    if (digest) {
      n = ::pread(in, buf.data(), std::min<std::uint64_t>(buf.size(), len), static_cast<off_t>(first));
      if (n > 0 && ::write(fd, buf.data(), static_cast<std::size_t>(n)) != n) n = -1;
      if (n > 0) digest->update(buf.data(), static_cast<std::size_t>(n));
    } else {
      loff_t at = static_cast<loff_t>(first);
      n = ::copy_file_range(in, &at, fd, nullptr, len, 0);
    }
    if (n <= 0) {
      ::close(in);
      return Failure{500, "InternalError", "copy failed"};
    }
    first += static_cast<std::uint64_t>(n);
    len -= static_cast<std::uint64_t>(n);
  }
  ::close(in);
  return std::nullopt;
}

// x-oss-copy-source-if-* (x-amz-copy-source-if-*) against the source: 412 for if-match and
// if-unmodified-since, 304 for if-none-match and if-modified-since, as for a GET; 0 when they hold.
static int copy_preconditions(const Request& r, const ObjectMeta& src) {
  Request conditions;
  for (const char* name : {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}) {
    const std::string* v = r.header(std::string("x-oss-copy-source-") + name);
    if (!v) v = r.header(std::string("x-amz-copy-source-") + name);
    if (v) conditions.set_header(name, *v);
  }
  return preconditions(conditions, src);
}

static int do_copy(Server& s, Server::Exchange& x, bool part) {
  std::string sb, sk;
  if (!copy_source(x.req, sb, sk)) return send_failure(s, x, {400, "InvalidArgument", "bad copy source"});
  ObjectMeta src;
  if (auto f = s.store().head(sb, sk, src)) return send_failure(s, x, *f);
  if (int st = copy_preconditions(x.req, src); st == 412) {
    return send_failure(
        s, x, {412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."});
  } else if (st == 304) {
    Reply reply;
    reply.status = 304;
    return send_reply(s, x, reply);
  }
  std::uint64_t first = 0, len = src.size;
  const std::string* range = x.req.header("x-oss-copy-source-range");
  if (!range) range = x.req.header("x-amz-copy-source-range");
  if (part && range) {
    std::uint64_t last;
    bool unsat;
    if (!parse_range(*range, src.size, true, first, last, unsat) || unsat)
      return send_failure(s, x, {416, "InvalidRange", "The requested range cannot be satisfied"});
    len = last - first + 1;
  }
  std::string temp;
  int fd;
  std::string dir;
  if (part) {
    int n = std::atoi(x.q("partNumber")->c_str());
    if (auto f = s.store().upload_dir(x.req.bucket, x.req.key, *x.q("uploadId"), dir))
      return send_failure(s, x, *f);
    if (auto f = s.store().part_temp(dir, n, temp, fd)) return send_failure(s, x, *f);
  } else if (auto f = s.store().temp_file_for(x.req.bucket, x.req.key, temp, fd)) {
    return send_failure(s, x, *f);
  }
  x.temp_path = temp;
  x.body_fd = fd;
  // A part's ETag is the MD5 of its range; a copied object keeps the source's ETag and CRC64, so its
  // bytes need no hashing.
  if (auto f = copy_range(src, first, len, fd, part ? &x.digest : nullptr)) return send_failure(s, x, *f);
  ::close(fd);
  x.body_fd = -1;
  std::string etag = part ? "\"" + util::hex_upper(x.digest.md5_raw()) + "\"" : "";
  std::string result_root = part ? "CopyPartResult" : "CopyObjectResult";
  if (part) {
    PartInfo info;
    if (auto f = s.store().commit_part(dir, std::atoi(x.q("partNumber")->c_str()), PartTarget{-1, temp, -1},
                                       len, etag, x.digest.crc, info))
      return send_failure(s, x, *f);
    x.temp_path.clear();
    Reply reply;
    reply.headers = {{"Content-Type", "application/xml"},
                     {"x-oss-hash-crc64ecma", std::to_string(info.crc64)}};
    reply.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyPartResult>" +
                 tag("LastModified", util::format_iso8601_ms(info.mtime)) + tag("ETag", etag) +
                 "</CopyPartResult>\n";
    return send_reply(s, x, reply);
  }
  Overwrite rule = overwrite_rule(x.req);
  ObjectMeta m;
  auto f = s.store().commit(x.req.bucket, x.req.key, temp, src.etag, src.crc64, src.content_type,
                            rule != Overwrite::allowed, m);
  x.temp_path.clear();
  if (f) return send_failure(s, x, as_client_expects(*f, rule));
  Reply reply;
  reply.headers = {{"Content-Type", "application/xml"}, {"x-oss-hash-crc64ecma", std::to_string(m.crc64)}};
  reply.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + result_root + ">" + tag("ETag", m.etag) +
               tag("LastModified", util::format_iso8601_ms(m.mtime)) + "</" + result_root + ">\n";
  return send_reply(s, x, reply);
}

// PutSymlink: x-oss-symlink-target (URL-encoded) names the target key; GetSymlink returns it so.
static int do_symlink(Server& s, Server::Exchange& x) {
  ObjectMeta m;
  std::string target;
  if (x.op == "PutSymlink") {
    const std::string* raw = x.req.header("x-oss-symlink-target");
    if (!raw || !util::uri_decode(*raw, target, false))
      return send_failure(s, x, {400, "InvalidArgument", "PutSymlink needs an x-oss-symlink-target header."});
    Overwrite rule = overwrite_rule(x.req);
    if (auto f = s.store().put_symlink(x.req.bucket, x.req.key, target, rule != Overwrite::allowed, m))
      return send_failure(s, x, as_client_expects(*f, rule));
    Reply reply;
    reply.headers = {{"ETag", m.etag}};
    return send_reply(s, x, reply);
  }
  if (auto f = s.store().get_symlink(x.req.bucket, x.req.key, target, m)) return send_failure(s, x, *f);
  Reply reply;
  reply.headers = {{"ETag", m.etag},
                   {"Last-Modified", util::format_rfc1123(m.mtime)},
                   {"x-oss-symlink-target", util::uri_encode(target, true)}};
  return send_reply(s, x, reply);
}

static int do_list(Server& s, Server::Exchange& x, bool v2) {
  if (!s.store().bucket_exists(x.req.bucket))
    return send_failure(s, x, {404, "NoSuchBucket", "The specified bucket does not exist."});
  auto get = [&](const char* n) { return x.q(n) ? *x.q(n) : std::string(); };
  int max_keys = 100;
  if (x.q("max-keys")) {
    max_keys = std::atoi(get("max-keys").c_str());
    if (max_keys < 1 || max_keys > 1000 ||
        get("max-keys").find_first_not_of("0123456789") != std::string::npos)
      return send_failure(s, x, {400, "InvalidArgument", "max-keys must be between 1 and 1000"});
  }
  std::string prefix = get("prefix"), delimiter = get("delimiter");
  std::string marker;
  if (v2) {
    marker = get("start-after");
    if (x.q("continuation-token")) {
      std::string decoded;
      if (!util::base64_decode(get("continuation-token"), decoded))
        return send_failure(s, x, {400, "InvalidArgument", "bad continuation-token"});
      marker = decoded;
    }
  } else {
    marker = get("marker");
  }
  ListResult r = s.store().list(x.req.bucket, prefix, delimiter, marker, max_keys);
  std::string xml = "<ListBucketResult>" + tag("Name", x.req.bucket) + tag("Prefix", list_key(x, prefix)) +
                    tag("MaxKeys", std::to_string(max_keys)) + tag("Delimiter", list_key(x, delimiter));
  if (x.q("encoding-type")) xml += tag("EncodingType", get("encoding-type"));
  xml += tag("IsTruncated", r.truncated ? "true" : "false");
  if (v2) {
    if (x.q("start-after")) xml += tag("StartAfter", list_key(x, get("start-after")));
    if (x.q("continuation-token")) xml += tag("ContinuationToken", get("continuation-token"));
    if (r.truncated) xml += tag("NextContinuationToken", util::base64_encode(r.next_marker));
    xml += tag("KeyCount", std::to_string(r.objects.size() + r.prefixes.size()));
  } else {
    xml += tag("Marker", list_key(x, marker));
    if (r.truncated) xml += tag("NextMarker", list_key(x, r.next_marker));
  }
  bool owner = !v2 || get("fetch-owner") == "true";
  for (const auto& o : r.objects) {
    xml += "<Contents>" + tag("Key", list_key(x, o.key)) +
           tag("LastModified", util::format_iso8601_ms(o.mtime)) + tag("ETag", o.etag) + tag("Type", o.type) +
           tag("Size", std::to_string(o.size)) + tag("StorageClass", "Standard");
    if (owner) xml += "<Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner>";
    xml += "</Contents>";
  }
  for (const auto& p : r.prefixes)
    xml += "<CommonPrefixes>" + tag("Prefix", list_key(x, p)) + "</CommonPrefixes>";
  return send_xml(s, x, xml + "</ListBucketResult>\n");
}

static int do_multipart(Server& s, Server::Exchange& x) {
  const Request& r = x.req;
  if (x.op == "InitiateMultipartUpload") {
    if (std::string p; auto f = s.store().object_path(r.bucket, r.key, p)) return send_failure(s, x, *f);
    if (!s.store().bucket_exists(r.bucket))
      return send_failure(s, x, {404, "NoSuchBucket", "The specified bucket does not exist."});
    // OSS checks x-oss-forbid-overwrite here already (and again at completion); S3 takes no
    // conditional header on CreateMultipartUpload.
    if (ObjectMeta m; overwrite_rule(r) == Overwrite::forbidden_oss && !s.store().head(r.bucket, r.key, m))
      return send_failure(s, x, overwrite_refused(Overwrite::forbidden_oss));
    const std::string* ctype = r.header("Content-Type");
    std::string id = s.store().initiate(r.bucket, r.key, ctype ? *ctype : "application/octet-stream");
    return send_xml(s, x,
                    "<InitiateMultipartUploadResult>" + tag("Bucket", r.bucket) +
                        tag("Key", list_key(x, r.key)) + tag("UploadId", id) +
                        (x.q("encoding-type") ? tag("EncodingType", *x.q("encoding-type")) : "") +
                        "</InitiateMultipartUploadResult>\n");
  }
  if (x.op == "UploadPart") {
    ::close(x.body_fd);
    x.body_fd = -1;
    std::string md5 = x.digest.md5_raw();
    if (auto f = check_md5(x, md5)) return send_failure(s, x, *f);
    PartInfo info;
    std::string etag = "\"" + util::hex_upper(md5) + "\"";
    auto f = s.store().commit_part(x.part_dir, x.part, PartTarget{-1, x.temp_path, x.body_offset}, x.written,
                                   etag, x.digest.crc, info);
    x.body_offset = -1;  // released by commit_part either way
    if (f) return send_failure(s, x, *f);
    x.temp_path.clear();
    Reply reply;
    reply.headers = {{"ETag", etag},
                     {"x-oss-hash-crc64ecma", std::to_string(info.crc64)},
                     {"Content-MD5", util::base64_encode(md5)}};
    return send_reply(s, x, reply);
  }
  if (x.op == "CompleteMultipartUpload") {
    std::vector<std::pair<int, std::string>> wanted;
    const std::string* all = r.header("x-oss-complete-all");
    if (!(all && *all == "yes")) {
      pugi::xml_document doc;
      if (!doc.load_buffer(x.body.data(), x.body.size()) || !doc.child("CompleteMultipartUpload"))
        return send_failure(s, x, {400, "MalformedXML", "The XML you provided was not well-formed."});
      for (auto p : doc.child("CompleteMultipartUpload").children("Part"))
        wanted.emplace_back(p.child("PartNumber").text().as_int(), p.child("ETag").text().as_string());
      if (wanted.empty()) return send_failure(s, x, {400, "MalformedXML", "no Part elements"});
    }
    Overwrite rule = overwrite_rule(r);
    ObjectMeta m;
    if (auto f = s.store().complete(r.bucket, r.key, *x.q("uploadId"), wanted, rule != Overwrite::allowed, m))
      return send_failure(s, x, as_client_expects(*f, rule));
    Reply reply;
    reply.headers = {{"Content-Type", "application/xml"}, {"x-oss-hash-crc64ecma", std::to_string(m.crc64)}};
    reply.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>" +
                 (x.q("encoding-type") ? tag("EncodingType", *x.q("encoding-type")) : std::string()) +
                 tag("Location", "http://" + r.host + "/" + r.bucket + "/" + util::uri_encode(r.key, true)) +
                 tag("Bucket", r.bucket) + tag("Key", list_key(x, r.key)) + tag("ETag", m.etag) +
                 "</CompleteMultipartUploadResult>\n";
    return send_reply(s, x, reply);
  }
  if (x.op == "AbortMultipartUpload") {
    if (auto f = s.store().abort(r.bucket, r.key, *x.q("uploadId"))) return send_failure(s, x, *f);
    Reply reply;
    reply.status = 204;
    return send_reply(s, x, reply);
  }
  if (x.op == "ListParts") {
    std::string dir;
    if (auto f = s.store().upload_dir(r.bucket, r.key, *x.q("uploadId"), dir)) return send_failure(s, x, *f);
    int marker = x.q("part-number-marker") ? std::atoi(x.q("part-number-marker")->c_str()) : 0;
    int max = x.q("max-parts") ? std::atoi(x.q("max-parts")->c_str()) : 1000;
    std::string xml = "<ListPartsResult>" + tag("Bucket", r.bucket) + tag("Key", list_key(x, r.key)) +
                      tag("UploadId", *x.q("uploadId")) + tag("StorageClass", "Standard") +
                      tag("PartNumberMarker", std::to_string(marker)) + tag("MaxParts", std::to_string(max));
    std::string items;
    int count = 0, next = marker;
    bool truncated = false;
    for (const auto& p : s.store().parts(dir)) {
      if (p.number <= marker) continue;
      if (count == max) {
        truncated = true;
        break;
      }
      ++count;
      next = p.number;
      items += "<Part>" + tag("PartNumber", std::to_string(p.number)) +
               tag("LastModified", util::format_iso8601_ms(p.mtime)) + tag("ETag", p.etag) +
               tag("HashCrc64ecma", std::to_string(p.crc64)) + tag("Size", std::to_string(p.size)) +
               "</Part>";
    }
    xml += tag("NextPartNumberMarker", std::to_string(next)) +
           tag("IsTruncated", truncated ? "true" : "false") + items + "</ListPartsResult>\n";
    return send_xml(s, x, xml);
  }
  // ListMultipartUploads: in (key, upload id) order, after the markers, max-uploads a page.
  if (!s.store().bucket_exists(r.bucket))
    return send_failure(s, x, {404, "NoSuchBucket", "The specified bucket does not exist."});
  auto get = [&](const char* n) { return x.q(n) ? *x.q(n) : std::string(); };
  int max = 1000;
  if (x.q("max-uploads")) {
    max = std::atoi(get("max-uploads").c_str());
    if (max < 1 || max > 1000 || get("max-uploads").find_first_not_of("0123456789") != std::string::npos)
      return send_failure(s, x, {400, "InvalidArgument", "max-uploads must be between 1 and 1000"});
  }
  std::string prefix = get("prefix"), key_marker = get("key-marker"), id_marker = get("upload-id-marker");
  std::string items;
  int count = 0;
  bool truncated = false;
  const UploadInfo* last = nullptr;
  std::vector<UploadInfo> all = s.store().uploads(r.bucket, prefix);
  for (const auto& u : all) {
    // With only a key marker, uploads of that key are skipped; with an upload-id marker too, those after it.
    if (!key_marker.empty() &&
        (u.key < key_marker || (u.key == key_marker && (id_marker.empty() || u.upload_id <= id_marker))))
      continue;
    if (count == max) {
      truncated = true;
      break;
    }
    ++count;
    last = &u;
    items += "<Upload>" + tag("Key", list_key(x, u.key)) + tag("UploadId", u.upload_id) +
             tag("StorageClass", "Standard") + tag("Initiated", util::format_iso8601_ms(u.initiated)) +
             "</Upload>";
  }
  std::string xml = "<ListMultipartUploadsResult>" + tag("Bucket", r.bucket) +
                    tag("KeyMarker", list_key(x, key_marker)) + tag("UploadIdMarker", id_marker) +
                    tag("NextKeyMarker", truncated ? list_key(x, last->key) : "") +
                    tag("NextUploadIdMarker", truncated ? last->upload_id : "") + tag("Delimiter", "") +
                    tag("Prefix", list_key(x, prefix)) + tag("MaxUploads", std::to_string(max)) +
                    tag("IsTruncated", truncated ? "true" : "false");
  if (x.q("encoding-type")) xml += tag("EncodingType", get("encoding-type"));
  return send_xml(s, x, xml + items + "</ListMultipartUploadsResult>\n");
}

static int do_bucket(Server& s, Server::Exchange& x) {
  const Request& r = x.req;
  if (x.op == "ListBuckets") {
    std::string xml =
        "<ListAllMyBucketsResult><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></"
        "Owner><Buckets>";
    for (const auto& b : s.store().buckets())
      xml += "<Bucket>" + tag("Name", b) + tag("CreationDate", "2020-01-01T00:00:00.000Z") + "</Bucket>";
    return send_xml(s, x, xml + "</Buckets></ListAllMyBucketsResult>\n");
  }
  if (x.op == "PutBucket") {
    if (auto f = s.store().create_bucket(r.bucket)) return send_failure(s, x, *f);
    Reply reply;
    return send_reply(s, x, reply);
  }
  if (!s.store().bucket_exists(r.bucket))
    return send_failure(s, x, {404, "NoSuchBucket", "The specified bucket does not exist."});
  if (x.op == "HeadBucket") {
    Reply reply;
    return send_reply(s, x, reply);
  }
  if (x.op == "DeleteBucket") {
    if (auto f = s.store().delete_bucket(r.bucket)) return send_failure(s, x, *f);
    Reply reply;
    reply.status = 204;
    return send_reply(s, x, reply);
  }
  if (x.op == "GetBucketLocation") return send_xml(s, x, tag("LocationConstraint", "") + "\n");
  if (x.op == "GetBucketAcl")
    return send_xml(s, x,
                    "<AccessControlPolicy><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner>"
                    "<AccessControlList><Grant>private</Grant></AccessControlList></AccessControlPolicy>\n");
  // DeleteMultipleObjects
  pugi::xml_document doc;
  if (!doc.load_buffer(x.body.data(), x.body.size()) || !doc.child("Delete"))
    return send_failure(s, x, {400, "MalformedXML", "The XML you provided was not well-formed."});
  bool quiet = std::string(doc.child("Delete").child("Quiet").text().as_string()) == "true";
  std::string xml = "<DeleteResult>";
  for (auto o : doc.child("Delete").children("Object")) {
    std::string key = o.child("Key").text().as_string();
    s.store().remove(r.bucket, key);
    if (!quiet) xml += "<Deleted>" + tag("Key", list_key(x, key)) + "</Deleted>";
  }
  return send_xml(s, x, xml + "</DeleteResult>\n");
}

int Server::respond(Exchange& x) {
  if (x.op == "Admin") return admin(x);
  if (x.early) return send_failure(*this, x, *x.early);
  if (x.fault.error_status)
    return send_failure(*this, x, {x.fault.error_status, x.fault.error_code, "injected fault"});
  const std::string& op = x.op;
  if (op == "GetObject" || op == "HeadObject") return do_get(*this, x);
  if (op == "PutObject") return do_put_object(*this, x);
  if (op == "PutSymlink" || op == "GetSymlink") return do_symlink(*this, x);
  if (op == "CopyObject") return do_copy(*this, x, false);
  if (op == "UploadPartCopy") return do_copy(*this, x, true);
  if (op == "DeleteObject") {
    if (auto f = store_.remove(x.req.bucket, x.req.key); f && f->code == "NoSuchBucket")
      return send_failure(*this, x, *f);
    Reply reply;
    reply.status = 204;
    return send_reply(*this, x, reply);
  }
  if (op == "ListObjectsV2" || op == "ListObjects") return do_list(*this, x, op == "ListObjectsV2");
  if (op.find("Multipart") != std::string::npos || op == "UploadPart" || op == "ListParts")
    return do_multipart(*this, x);
  if (op == "Unsupported")
    return send_failure(*this, x, {501, "NotImplemented", "The emulator does not implement this operation."});
  return do_bucket(*this, x);
}

int Server::admin(Exchange& x) {
  std::string path = x.req.path.substr(8);
  Reply reply;
  reply.headers.push_back({"Content-Type", "application/json"});
  const std::string& m = x.req.method;
  if (path == "stats" && m == "GET") {
    reply.body = stats_.json();
  } else if (path == "reset" && m == "POST") {
    stats_.reset();
    reply.body = "{}\n";
  } else if (path == "faults" && m == "GET") {
    reply.body = "{\"faults\":\"" + json_escape(faults_.describe()) + "\"}\n";
  } else if (path == "faults" && m == "DELETE") {
    faults_.clear();
    reply.body = "{}\n";
  } else if (path == "faults" && (m == "POST" || m == "PUT")) {
    std::string spec;
    for (const auto& q : x.req.query) spec += (spec.empty() ? "" : "&") + q.name + "=" + q.value;
    FaultSpec f;
    if (auto bad = parse_faults(spec, f)) {
      reply.status = 400;
      reply.body = "{\"error\":\"" + json_escape(*bad) + "\"}\n";
    } else {
      faults_.set(f);
      reply.body = "{\"faults\":\"" + json_escape(spec) + "\"}\n";
    }
  } else {
    reply.status = 404;
    reply.body = "{\"error\":\"unknown admin request " + json_escape(m + " /_admin/" + path) + "\"}\n";
  }
  MHD_Response* resp =
      MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
  for (const auto& h : reply.headers) MHD_add_response_header(resp, h.name.c_str(), h.value.c_str());
  MHD_Result ret = MHD_queue_response(x.conn, static_cast<unsigned>(reply.status), resp);
  MHD_destroy_response(resp);
  return ret;
}

}  // namespace ossemu
