// Emulator behaviour seen from raw HTTP (libcurl + our signers): addressing styles, conditionals,
// legacy range semantics, presigned URLs, anonymous access, HEAD errors, v1 listing, admin errors;
// the write side: overwrite protection, Content-MD5, CRC64 headers, ListMultipartUploads, and the
// faults for uploads (any error status, resets, corruption, wrong CRCs, bandwidth, first byte).
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "auth/signer.hpp"
#include "emulator_process.hpp"
#include "util/crc64.hpp"
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

// Sends `req` (signed by the caller or not) to the emulator at 127.0.0.1:port. With `rc`, a transfer
// that fails (a reset connection) is reported there instead of failing the test.
Raw send(const EmulatorProcess& emu, const Request& req, const std::string& body = "",
         CURLcode* rc = nullptr) {
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
  CURLcode result = curl_easy_perform(h);
  if (rc)
    *rc = result;
  else
    REQUIRE(result == CURLE_OK);
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

Raw signed_send(const EmulatorProcess& emu, Request r, const std::string& body = "",
                auth::Scheme scheme = auth::Scheme::v4, CURLcode* rc = nullptr) {
  auth::sign(r, kCreds, auth::SignOptions{scheme, "cn-hangzhou"}, std::time(nullptr));
  return send(emu, r, body, rc);
}

// The text of <name> in an XML body (first occurrence), or "".
std::string xml_text(const std::string& body, const std::string& name) {
  std::size_t a = body.find("<" + name + ">");
  if (a == std::string::npos) return "";
  a += name.size() + 2;
  return body.substr(a, body.find("</" + name + ">", a) - a);
}

std::string initiate(const EmulatorProcess& emu, const std::string& bucket, const std::string& key) {
  Request r = path_style(emu, "POST", bucket, key);
  r.query = {{"uploads", ""}};
  Raw out = signed_send(emu, r);
  REQUIRE(out.status == 200);
  return xml_text(out.body, "UploadId");
}

Request part_request(const EmulatorProcess& emu, const std::string& bucket, const std::string& key,
                     const std::string& id, int n) {
  Request r = path_style(emu, "PUT", bucket, key);
  r.query = {{"partNumber", std::to_string(n)}, {"uploadId", id}};
  return r;
}

Request complete_request(const EmulatorProcess& emu, const std::string& key, const std::string& id) {
  Request r = path_style(emu, "POST", "bkt", key);
  r.query = {{"uploadId", id}};
  r.set_header("x-oss-complete-all", "yes");
  return r;
}

// A counter of /_admin/stats for one object ("bucket/key").
std::uint64_t object_counter(const EmulatorProcess& emu, const std::string& object, const std::string& name) {
  std::string json = emu.stats_json();
  std::size_t from = json.find("\"" + object + "\":{");
  if (from == std::string::npos) return 0;
  std::size_t at = json.find("\"" + name + "\":", from);
  return std::strtoull(json.c_str() + at + name.size() + 3, nullptr, 10);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
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

TEST_CASE("a Content-MD5 mismatch is InvalidDigest for OSS clients, BadDigest for S3 clients",
          "[emulator][write]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  Request put = path_style(emu, "PUT", "bkt", "k");
  put.set_header("Content-MD5", util::base64_encode(util::md5("other")));
  Raw s3 = signed_send(emu, put, "payload", auth::Scheme::s3v4);
  CHECK(s3.status == 400);
  CHECK(xml_text(s3.body, "Code") == "BadDigest");
  Request malformed = path_style(emu, "PUT", "bkt", "k");
  malformed.set_header("Content-MD5", "not-a-digest");
  Raw m = signed_send(emu, malformed, "payload");
  CHECK(m.status == 400);
  CHECK(xml_text(m.body, "Code") == "InvalidDigest");
  CHECK(xml_text(m.body, "Message") == "The Content-MD5 you specified was invalid.");
  CHECK_FALSE(std::filesystem::exists(emu.root() + "/bkt/k"));

  std::string id = initiate(emu, "bkt", "mp");
  Request part = part_request(emu, "bkt", "mp", id, 1);
  part.set_header("Content-MD5", util::base64_encode(util::md5("other")));
  Raw p = signed_send(emu, part, "payload");
  CHECK(p.status == 400);
  CHECK(xml_text(p.body, "Code") == "InvalidDigest");
  Request list = path_style(emu, "GET", "bkt", "mp");
  list.query = {{"uploadId", id}};
  CHECK(signed_send(emu, list).body.find("<Part>") == std::string::npos);
  part.set_header("Content-MD5", util::base64_encode(util::md5("payload")));
  CHECK(signed_send(emu, part, "payload").status == 200);
}

TEST_CASE("x-oss-forbid-overwrite (409) and If-None-Match: * (412) keep an existing object",
          "[emulator][write]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "taken", "old");
  emu.put_file("bkt", "src", "source bytes");
  auto content = [&](const std::string& key) {
    std::ifstream in(emu.root() + "/bkt/" + key);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  auto oss = [](Request r) {
    r.set_header("x-oss-forbid-overwrite", "true");
    return r;
  };
  auto s3 = [](Request r) {
    r.set_header("If-None-Match", "*");
    return r;
  };
  auto code = [](const Raw& r) { return std::to_string(r.status) + " " + xml_text(r.body, "Code"); };

  CHECK(code(signed_send(emu, oss(path_style(emu, "PUT", "bkt", "taken")), "new")) ==
        "409 FileAlreadyExists");
  CHECK(code(signed_send(emu, s3(path_style(emu, "PUT", "bkt", "taken")), "new", auth::Scheme::s3v4)) ==
        "412 PreconditionFailed");
  CHECK(signed_send(emu, oss(path_style(emu, "PUT", "bkt", "fresh")), "new").status == 200);
  CHECK(signed_send(emu, s3(path_style(emu, "PUT", "bkt", "fresh2")), "new", auth::Scheme::s3v4).status ==
        200);

  Request copy = path_style(emu, "PUT", "bkt", "taken");
  copy.set_header("x-oss-copy-source", "/bkt/src");
  CHECK(code(signed_send(emu, oss(copy))) == "409 FileAlreadyExists");
  Request s3copy = path_style(emu, "PUT", "bkt", "taken");
  s3copy.set_header("x-amz-copy-source", "/bkt/src");
  CHECK(code(signed_send(emu, s3(s3copy), "", auth::Scheme::s3v4)) == "412 PreconditionFailed");

  Request init = path_style(emu, "POST", "bkt", "taken");
  init.query = {{"uploads", ""}};
  CHECK(code(signed_send(emu, oss(init))) == "409 FileAlreadyExists");  // OSS checks at initiation too
  std::string id = initiate(emu, "bkt", "taken");
  REQUIRE(signed_send(emu, part_request(emu, "bkt", "taken", id, 1), "mp").status == 200);
  CHECK(code(signed_send(emu, oss(complete_request(emu, "taken", id)))) == "409 FileAlreadyExists");
  CHECK(code(signed_send(emu, s3(complete_request(emu, "taken", id)))) == "412 PreconditionFailed");
  CHECK(content("taken") == "old");
  CHECK(signed_send(emu, complete_request(emu, "taken", id)).status == 200);  // no condition: replaced
  CHECK(content("taken") == "mp");

  // Racing creators with the header: exactly one wins, atomically.
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      CURLcode rc;  // passed, so that no Catch2 assertion runs on this thread (not thread-safe)
      Raw r = signed_send(emu, oss(path_style(emu, "PUT", "bkt", "race")), "writer " + std::to_string(t),
                          auth::Scheme::v4, &rc);
      if (r.status == 200) ++created;
      if (r.status == 409) ++refused;
    });
  for (auto& t : threads) t.join();
  CHECK(created == 1);
  CHECK(refused == 7);
}

TEST_CASE("uploads, part copies and completions return the CRC64 of what was stored", "[emulator][write]") {
  EmulatorProcess emu;
  std::string src = "0123456789abcdefghij";
  emu.put_file("bkt", "src", src);
  auto crc = [](std::string_view s) { return std::to_string(util::crc64_update(0, s.data(), s.size())); };
  std::string body(150 * 1024, 'p');
  Raw put = signed_send(emu, path_style(emu, "PUT", "bkt", "k"), body);
  CHECK(put.header("x-oss-hash-crc64ecma") == crc(body));

  std::string id = initiate(emu, "bkt", "mp");
  Raw p1 = signed_send(emu, part_request(emu, "bkt", "mp", id, 1), body);
  CHECK(p1.header("x-oss-hash-crc64ecma") == crc(body));
  Request copy = part_request(emu, "bkt", "mp", id, 2);
  copy.set_header("x-oss-copy-source", "/bkt/src");
  copy.set_header("x-oss-copy-source-range", "bytes=5-9");
  Raw p2 = signed_send(emu, copy);
  CHECK(p2.status == 200);
  CHECK(p2.header("x-oss-hash-crc64ecma") == crc("56789"));
  CHECK_FALSE(xml_text(p2.body, "ETag").empty());
  copy.set_header("x-oss-copy-source-if-match", "\"0000\"");
  CHECK(signed_send(emu, copy).status == 412);  // the source is not that version
  Raw done = signed_send(emu, complete_request(emu, "mp", id));
  CHECK(done.status == 200);
  CHECK(done.header("x-oss-hash-crc64ecma") == crc(body + "56789"));

  emu.set_faults("wrong_crc=1&ops=HeadObject");
  Raw head = signed_send(emu, path_style(emu, "HEAD", "bkt", "k"));
  CHECK(head.header("x-oss-hash-crc64ecma") ==
        std::to_string(util::crc64_update(0, body.data(), body.size()) + 1));
  emu.clear_faults();
}

TEST_CASE("error faults take any status 400..599 with a code", "[emulator][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", "x");
  emu.set_faults("error_status=507&ops=PutObject");
  Raw full = signed_send(emu, path_style(emu, "PUT", "bkt", "new"), "data");
  CHECK(full.status == 507);
  CHECK(xml_text(full.body, "Code") == "InsufficientStorage");
  CHECK_FALSE(std::filesystem::exists(emu.root() + "/bkt/new"));
  emu.set_faults("error_status=403&error_code=QuotaExceeded&ops=PutObject,UploadPart");
  Raw quota = signed_send(emu, path_style(emu, "PUT", "bkt", "new"), "data");
  CHECK(quota.status == 403);
  CHECK(xml_text(quota.body, "Code") == "QuotaExceeded");
  CHECK(signed_send(emu, path_style(emu, "GET", "bkt", "k")).status == 200);  // other operations pass
  CHECK_THROWS_WITH(emu.set_faults("error_status=404"), Catch::Contains("needs error_code"));
  CHECK_THROWS_WITH(emu.set_faults("error_status=600&error_code=X"), Catch::Contains("bad value"));
  CHECK_THROWS_WITH(emu.set_faults("error_status=399&error_code=X"), Catch::Contains("bad value"));
  CHECK_THROWS_WITH(emu.set_faults("wrong_crc=maybe"), Catch::Contains("bad value"));
  emu.clear_faults();
}

TEST_CASE("upload faults: a reset after N body bytes, a damaged byte; bytes_in counts what arrived",
          "[emulator][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  std::string body = ossshim::test::random_bytes(1 << 20, 51);

  emu.set_faults("reset_upload_after=65536&ops=PutObject&count=1");
  emu.reset_stats();
  CURLcode rc = CURLE_OK;
  signed_send(emu, path_style(emu, "PUT", "bkt", "big"), body, auth::Scheme::v4, &rc);
  CHECK(rc != CURLE_OK);  // the connection was reset mid-body
  CHECK_FALSE(std::filesystem::exists(emu.root() + "/bkt/big"));
  CHECK(object_counter(emu, "bkt/big", "bytes_in") == 65536);
  CHECK(signed_send(emu, path_style(emu, "PUT", "bkt", "big"), body).status == 200);  // count=1: spent
  CHECK(object_counter(emu, "bkt/big", "bytes_in") == 65536 + body.size());

  // ops filters: a reset for parts leaves single PUTs alone.
  emu.set_faults("reset_upload_after=1000&ops=UploadPart");
  CHECK(signed_send(emu, path_style(emu, "PUT", "bkt", "other"), body).status == 200);
  std::string id = initiate(emu, "bkt", "mp");
  signed_send(emu, part_request(emu, "bkt", "mp", id, 1), body, auth::Scheme::v4, &rc);
  CHECK(rc != CURLE_OK);

  // A damaged byte without Content-MD5 is stored as received (with Content-MD5 it is refused).
  emu.set_faults("corrupt_upload=1000&ops=PutObject");
  CHECK(signed_send(emu, path_style(emu, "PUT", "bkt", "damaged"), body).status == 200);
  std::ifstream in(emu.root() + "/bkt/damaged", std::ios::binary);
  std::string stored((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(stored.size() == body.size());
  CHECK(stored[1000] != body[1000]);
  stored[1000] = body[1000];
  CHECK(stored == body);
  emu.clear_faults();
}

TEST_CASE("the bandwidth cap paces upload bodies and first_byte_ms delays their responses",
          "[emulator][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  std::string body = ossshim::test::random_bytes(2 << 20, 52);
  // Lower bounds only: the cap guarantees them, however slow the machine.
  emu.set_faults("bandwidth=4m");
  auto start = std::chrono::steady_clock::now();
  CHECK(signed_send(emu, path_style(emu, "PUT", "bkt", "capped"), body).status == 200);
  CHECK(seconds_since(start) >= 0.4);            // 2 MiB at 4 MiB/s
  emu.set_faults("bandwidth=4m&ops=GetObject");  // ops and match choose what is paced
  start = std::chrono::steady_clock::now();
  CHECK(signed_send(emu, path_style(emu, "GET", "bkt", "capped")).body == body);
  CHECK(seconds_since(start) >= 0.4);
  emu.set_faults("first_byte_ms=300&ops=PutObject,UploadPart");
  start = std::chrono::steady_clock::now();
  CHECK(signed_send(emu, path_style(emu, "PUT", "bkt", "late"), "x").status == 200);
  CHECK(seconds_since(start) >= 0.3);
  emu.clear_faults();
}

TEST_CASE("ListMultipartUploads: prefix, markers, max-uploads, url encoding, fixed initiation time",
          "[emulator][write]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  std::vector<std::pair<std::string, std::string>> want;
  for (const char* key : {"d/b", "d/a c", "d/a c", "e/x"}) want.emplace_back(key, initiate(emu, "bkt", key));
  std::sort(want.begin(), want.end());
  Request first = path_style(emu, "GET", "bkt", "");
  first.path = "/bkt/";
  first.query = {{"uploads", ""}};
  Raw all = signed_send(emu, first);
  REQUIRE(all.status == 200);
  std::string initiated = xml_text(all.body, "Initiated");
  CHECK(initiated.size() == 24);  // 2024-01-01T00:00:00.000Z

  std::vector<std::pair<std::string, std::string>> seen;
  std::string key_marker, id_marker;
  for (int page = 0; page < 10; ++page) {
    Request list = first;
    list.query = {{"uploads", ""}, {"prefix", "d/"}, {"max-uploads", "1"}, {"encoding-type", "url"}};
    if (!key_marker.empty()) list.query.push_back({"key-marker", key_marker});
    if (!id_marker.empty()) list.query.push_back({"upload-id-marker", id_marker});
    Raw r = signed_send(emu, list);
    REQUIRE(r.status == 200);
    std::string key;
    REQUIRE(util::uri_decode(xml_text(r.body, "Key"), key, false));
    seen.emplace_back(key, xml_text(r.body, "UploadId"));
    if (xml_text(r.body, "IsTruncated") != "true") break;
    REQUIRE(util::uri_decode(xml_text(r.body, "NextKeyMarker"), key_marker, false));
    id_marker = xml_text(r.body, "NextUploadIdMarker");
  }
  CHECK(seen == std::vector<std::pair<std::string, std::string>>(want.begin(), want.begin() + 3));

  // A part uploaded a second later does not change when the upload was initiated.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  REQUIRE(signed_send(emu, part_request(emu, "bkt", want[0].first, want[0].second, 1), "p").status == 200);
  Request again = first;
  again.query = {{"uploads", ""}, {"prefix", want[0].first}};
  CHECK(xml_text(signed_send(emu, again).body, "Initiated") == initiated);

  Request bad = first;
  bad.query = {{"uploads", ""}, {"max-uploads", "0"}};
  CHECK(signed_send(emu, bad).status == 400);
  Request missing = path_style(emu, "GET", "nobucket", "");
  missing.path = "/nobucket/";
  missing.query = {{"uploads", ""}};
  CHECK(xml_text(signed_send(emu, missing).body, "Code") == "NoSuchBucket");
}

TEST_CASE("symlink objects on the wire: headers, URL-encoded targets, V1 signing, errors",
          "[emulator][symlink]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "dir/target file+1.bin", "0123456789");
  Request put = path_style(emu, "PUT", "bkt", "links/l");
  put.query = {{"symlink", ""}};
  put.set_header("x-oss-symlink-target", util::uri_encode("dir/target file+1.bin", true));
  // V1 signs the symlink sub-resource: a wrong canonical resource would be 403.
  Raw made = signed_send(emu, put, "", auth::Scheme::v1);
  REQUIRE(made.status == 200);
  CHECK_FALSE(made.header("ETag").empty());

  Request get = path_style(emu, "GET", "bkt", "links/l");
  get.query = {{"symlink", ""}};
  Raw link = signed_send(emu, get);
  REQUIRE(link.status == 200);
  CHECK(link.body.empty());
  std::string target;
  REQUIRE(util::uri_decode(link.header("x-oss-symlink-target"), target, false));
  CHECK(target == "dir/target file+1.bin");

  Raw head = signed_send(emu, path_style(emu, "HEAD", "bkt", "links/l"));
  CHECK(head.status == 200);
  CHECK(head.header("x-oss-object-type") == "Symlink");
  CHECK(head.header("Content-Length") == "10");
  Request ranged = path_style(emu, "GET", "bkt", "links/l");
  ranged.set_header("Range", "bytes=2-4");
  ranged.set_header("x-oss-range-behavior", "standard");
  Raw body = signed_send(emu, ranged);
  CHECK(body.status == 206);
  CHECK(body.body == "234");

  Request bare = path_style(emu, "PUT", "bkt", "links/none");  // no target header
  bare.query = {{"symlink", ""}};
  CHECK(signed_send(emu, bare).status == 400);
  Request plain = path_style(emu, "GET", "bkt", "dir/target file+1.bin");
  plain.query = {{"symlink", ""}};
  Raw not_link = signed_send(emu, plain);
  CHECK(not_link.status == 400);
  CHECK(xml_text(not_link.body, "Code") == "NotSymlink");

  // Deleting the target leaves a dangling link: HEAD 404 SymlinkTargetNotExist, GET ?symlink works.
  REQUIRE(signed_send(emu, path_style(emu, "DELETE", "bkt", "dir/target file+1.bin")).status == 204);
  Raw dangling = signed_send(emu, path_style(emu, "HEAD", "bkt", "links/l"));
  CHECK(dangling.status == 404);
  std::string xml;
  REQUIRE(util::base64_decode(dangling.header("x-oss-err"), xml));
  CHECK(xml.find("<Code>SymlinkTargetNotExist</Code>") != std::string::npos);
  CHECK(signed_send(emu, get).status == 200);
  Request list = path_style(emu, "GET", "bkt", "");
  list.path = "/bkt/";
  list.query = {{"list-type", "2"}, {"prefix", "links/"}};
  Raw listed = signed_send(emu, list);
  REQUIRE(listed.status == 200);
  CHECK(xml_text(listed.body, "Key") == "links/l");
  CHECK(xml_text(listed.body, "Type") == "Symlink");
}
