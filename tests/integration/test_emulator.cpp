// Emulator behaviour seen from raw HTTP (libcurl + our signers): addressing styles, conditionals,
// legacy range semantics, presigned URLs, anonymous access, HEAD errors, v1 listing, admin errors.
#include <curl/curl.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "auth/signer.hpp"
#include "emulator_process.hpp"
#include "util/encode.hpp"

using namespace ossshim;
using ossshim::test::EmulatorProcess;

namespace {

struct Raw {
  long status = 0;
  std::string body;
  std::vector<Header> headers;
  std::string header(const std::string& name) const {
    for (const auto& h : headers)
      if (util::iequals(h.name, name)) return h.value;
    return "";
  }
};

std::size_t on_body(char* d, std::size_t s, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(d, s * n);
  return s * n;
}
std::size_t on_header(char* d, std::size_t s, std::size_t n, void* out) {
  std::string line(d, s * n);
  auto colon = line.find(':');
  if (colon != std::string::npos)
    static_cast<std::vector<Header>*>(out)->push_back(
        {line.substr(0, colon), std::string(util::trim(line.substr(colon + 1)))});
  return s * n;
}

// Sends `req` (signed by the caller or not) to the emulator at 127.0.0.1:port.
Raw send(const EmulatorProcess& emu, const Request& req, const std::string& body = "") {
  CURL* h = curl_easy_init();
  std::string qs;
  for (const auto& q : req.query)
    qs += (qs.empty() ? "?" : "&") + util::uri_encode(q.name, false) +
          (q.value.empty() ? "" : "=" + util::uri_encode(q.value, false));
  std::string url = "http://127.0.0.1:" + std::to_string(emu.port()) + req.path + qs;
  curl_slist* list = nullptr;
  for (const auto& hd : req.headers) list = curl_slist_append(list, (hd.name + ": " + hd.value).c_str());
  list = curl_slist_append(list, ("Host: " + req.host).c_str());
  list = curl_slist_append(list, "Expect:");
  if (!req.header("Content-Type")) list = curl_slist_append(list, "Content-Type:");  // curl adds a form type
  Raw out;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "HEAD") curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  if (!body.empty() || req.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &out.headers);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  REQUIRE(curl_easy_perform(h) == CURLE_OK);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(h);
  return out;
}

Request path_style(const EmulatorProcess& emu, const std::string& method, const std::string& bucket,
                   const std::string& key) {
  Request r;
  r.method = method;
  r.bucket = bucket;
  r.key = key;
  r.host = "127.0.0.1:" + std::to_string(emu.port());
  r.path = "/" + bucket + "/" + util::uri_encode(key, true);
  return r;
}

const auth::Credentials kCreds{"test-ak", "test-sk", ""};

Raw signed_send(const EmulatorProcess& emu, Request r, const std::string& body = "") {
  auth::sign(r, kCreds, auth::SignOptions{auth::Scheme::v4, "cn-hangzhou"}, std::time(nullptr));
  return send(emu, r, body);
}

}  // namespace

TEST_CASE("virtual-hosted and path-style addressing reach the same object", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "dir/file name.txt", "content");
  Request vh;
  vh.method = "GET";
  vh.bucket = "bkt";
  vh.key = "dir/file name.txt";
  vh.host = "bkt.localhost:" + std::to_string(emu.port());
  vh.path = "/dir/file%20name.txt";
  CHECK(signed_send(emu, vh).body == "content");
  vh.host = "bkt.oss-cn-hangzhou.aliyuncs.com";
  CHECK(signed_send(emu, vh).body == "content");
  CHECK(signed_send(emu, path_style(emu, "GET", "bkt", "dir/file name.txt")).body == "content");
}

TEST_CASE("conditional requests and range semantics", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", "0123456789");
  Raw head = signed_send(emu, path_style(emu, "HEAD", "bkt", "k"));
  REQUIRE(head.status == 200);
  CHECK(head.header("Content-Length") == "10");
  std::string etag = head.header("ETag");

  Request inm = path_style(emu, "GET", "bkt", "k");
  inm.set_header("If-None-Match", etag);
  CHECK(signed_send(emu, inm).status == 304);
  Request im = path_style(emu, "GET", "bkt", "k");
  im.set_header("If-Match", "\"0000\"");
  Raw failed = signed_send(emu, im);
  CHECK(failed.status == 412);
  CHECK(failed.body.find("<Code>PreconditionFailed</Code>") != std::string::npos);
  Request ims = path_style(emu, "GET", "bkt", "k");
  ims.set_header("If-Modified-Since", head.header("Last-Modified"));
  CHECK(signed_send(emu, ims).status == 304);

  Request suffix = path_style(emu, "GET", "bkt", "k");
  suffix.set_header("Range", "bytes=-3");
  Raw s = signed_send(emu, suffix);
  CHECK(s.status == 206);
  CHECK(s.body == "789");
  CHECK(s.header("Content-Range") == "bytes 7-9/10");
  // Without x-oss-range-behavior: standard, an unsatisfiable range gives the whole object (legacy OSS).
  Request legacy = path_style(emu, "GET", "bkt", "k");
  legacy.set_header("Range", "bytes=20-30");
  Raw l = signed_send(emu, legacy);
  CHECK(l.status == 200);
  CHECK(l.body == "0123456789");
  legacy.set_header("x-oss-range-behavior", "standard");
  CHECK(signed_send(emu, legacy).status == 416);
}

TEST_CASE("HEAD errors carry the error document in x-oss-err", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", "x");
  Raw r = signed_send(emu, path_style(emu, "HEAD", "bkt", "missing"));
  CHECK(r.status == 404);
  CHECK(r.body.empty());
  std::string xml;
  REQUIRE(util::base64_decode(r.header("x-oss-err"), xml));
  CHECK(xml.find("<Code>NoSuchKey</Code>") != std::string::npos);
  CHECK_FALSE(r.header("x-oss-request-id").empty());
}

TEST_CASE("presigned URLs and anonymous access", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", "secret-data");
  Request v1 = path_style(emu, "GET", "bkt", "k");
  auth::presign_v1(v1, kCreds, std::time(nullptr) + 60);
  CHECK(send(emu, v1).body == "secret-data");
  Request expired = path_style(emu, "GET", "bkt", "k");
  auth::presign_v1(expired, kCreds, std::time(nullptr) - 60);
  Raw e = send(emu, expired);
  CHECK(e.status == 403);
  CHECK(e.body.find("<Code>AccessDenied</Code>") != std::string::npos);
  Request v4 = path_style(emu, "GET", "bkt", "k");
  auth::presign_v4(v4, kCreds, auth::V4Scope{"cn-hangzhou"}, std::time(nullptr), 300);
  CHECK(send(emu, v4).body == "secret-data");

  Raw anon = send(emu, path_style(emu, "GET", "bkt", "k"));
  CHECK(anon.status == 403);
  EmulatorProcess open_emu(EmulatorProcess::Options{"", {}, true});
  open_emu.put_file("bkt", "k", "public");
  CHECK(send(open_emu, path_style(open_emu, "GET", "bkt", "k")).body == "public");
}

TEST_CASE("a bad Content-MD5 stores nothing", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  Request put = path_style(emu, "PUT", "bkt", "new");
  put.set_header("Content-MD5", util::base64_encode(util::md5("other")));
  Raw r = signed_send(emu, put, "payload");
  CHECK(r.status == 400);
  CHECK(r.body.find("<Code>InvalidDigest</Code>") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(emu.root() + "/bkt/new"));
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(emu.root() + "/bkt")) ++entries;
  CHECK(entries == 1);  // no temp file left behind
}

TEST_CASE("ListObjects v1 pages with markers", "[emulator]") {
  EmulatorProcess emu;
  for (const char* k : {"a", "b", "c/d", "c/e", "f"}) emu.put_file("bkt", k, k);
  std::vector<std::string> seen;
  std::string marker;
  for (int page = 0; page < 10; ++page) {
    Request list = path_style(emu, "GET", "bkt", "");
    list.path = "/bkt/";
    list.query = {{"delimiter", "/"}, {"max-keys", "2"}};
    if (!marker.empty()) list.query.push_back({"marker", marker});
    Raw r = signed_send(emu, list);
    REQUIRE(r.status == 200);
    for (std::size_t at = r.body.find("<Key>"); at != std::string::npos; at = r.body.find("<Key>", at + 1))
      seen.push_back(r.body.substr(at + 5, r.body.find("</Key>", at) - at - 5));
    for (std::size_t at = r.body.find("<Prefix>c/"); at != std::string::npos;
         at = r.body.find("<Prefix>c/", at + 1))
      seen.push_back("c/");
    auto next = r.body.find("<NextMarker>");
    if (next == std::string::npos) break;
    marker = r.body.substr(next + 12, r.body.find("</NextMarker>") - next - 12);
  }
  std::sort(seen.begin(), seen.end());  // each page lists keys before prefixes
  CHECK(seen == std::vector<std::string>{"a", "b", "c/", "f"});
}

TEST_CASE("admin interface validates fault specs and counts bytes", "[emulator]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", std::string(1000, 'z'));
  CHECK_THROWS_WITH(emu.set_faults("explode=1"), Catch::Contains("unknown fault 'explode'"));
  CHECK_THROWS_WITH(emu.set_faults("error_status=abc"), Catch::Contains("bad value"));
  emu.set_faults("first_byte_ms=1&match=bkt/");
  CHECK(emu.admin("GET", "/_admin/faults").find("first_byte_ms=1&match=bkt/") != std::string::npos);
  emu.clear_faults();
  emu.reset_stats();
  signed_send(emu, path_style(emu, "GET", "bkt", "k"));
  CHECK(emu.bytes_out("bkt/k") == 1000);
  CHECK(emu.requests("bkt/k") == 1);
  CHECK(emu.stats_json().find("\"GetObject\":1") != std::string::npos);
}
