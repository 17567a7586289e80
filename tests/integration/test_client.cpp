// core/http + core/oss against the real emulator: every operation, ranges, listing, signing schemes,
// retries under injected faults, and clean errors; the write path (forbid_overwrite, Content-MD5 and
// CRC64 checks, UploadPartCopy, ListMultipartUploads, write errnos) and `ossrun uploads`.
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "emulator_process.hpp"
#include "oss/client.hpp"
#include "util/crc64.hpp"

using namespace ossshim;
using ossshim::test::EmulatorProcess;
using ossshim::test::random_bytes;

namespace {

std::unique_ptr<oss::Client> client_for(const EmulatorProcess& emu, Config c, auth::Credentials creds = {}) {
  if (creds.empty()) creds = {emu.access_key_id(), emu.access_key_secret(), ""};
  auto r = oss::Client::create(c, creds);
  REQUIRE(r.ok());
  return std::move(r.value());
}

std::unique_ptr<oss::Client> client_for(const EmulatorProcess& emu) {
  return client_for(emu, emu.config());
}

Result<std::string> read_all(oss::Client& c, const std::string& b, const std::string& k, std::uint64_t off,
                             std::size_t len, const std::string& if_match = "") {
  std::string buf(len, '\0');
  auto r = c.get_range(b, k, oss::RangeRead{off, len, buf.data(), if_match});
  if (!r.ok()) return r.error();
  buf.resize(r.value());
  return buf;
}

}  // namespace

TEST_CASE("head, ranged get, put, copy, delete round trip", "[client]") {
  EmulatorProcess emu;
  std::string data = random_bytes(3 * 1000 * 1000 + 17);
  emu.put_file("bkt", "models/a b+c/\xE4\xB8\xAD.bin", data);
  auto c = client_for(emu);
  const std::string key = "models/a b+c/\xE4\xB8\xAD.bin";

  auto info = c->head_object("bkt", key);
  REQUIRE(info.ok());
  CHECK(info->size == data.size());
  REQUIRE(info->crc64);
  CHECK(*info->crc64 == util::crc64_update(0, data.data(), data.size()));
  CHECK_FALSE(info->etag.empty());

  auto mid = read_all(*c, "bkt", key, 12345, 100000);
  REQUIRE(mid.ok());
  CHECK(mid.value() == data.substr(12345, 100000));
  // Past the end: a short read, not an error.
  auto tail = read_all(*c, "bkt", key, data.size() - 10, 4096);
  REQUIRE(tail.ok());
  CHECK(tail.value() == data.substr(data.size() - 10));
  // At or after the end: 416 -> EINVAL.
  auto beyond = read_all(*c, "bkt", key, data.size(), 10);
  REQUIRE_FALSE(beyond.ok());
  CHECK(beyond.error().err == EINVAL);
  CHECK(beyond.error().code == "InvalidRange");

  auto put = c->put_object("bkt", "up/small.txt", "hello world");
  REQUIRE(put.ok());
  CHECK(*put->crc64 == util::crc64_update(0, "hello world", 11));
  auto back = read_all(*c, "bkt", "up/small.txt", 0, 100);
  REQUIRE(back.ok());
  CHECK(back.value() == "hello world");

  auto copy = c->copy_object("bkt", key, "bkt", "copy/of it.bin");
  REQUIRE(copy.ok());
  auto copied = c->head_object("bkt", "copy/of it.bin");
  REQUIRE(copied.ok());
  CHECK(copied->size == data.size());
  CHECK(copied->crc64 == info->crc64);

  REQUIRE(c->delete_object("bkt", "copy/of it.bin").ok());
  auto gone = c->head_object("bkt", "copy/of it.bin");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().err == ENOENT);
  CHECK(gone.error().http_status == 404);
  CHECK(gone.error().code == "NoSuchKey");  // decoded from x-oss-err on HEAD
  CHECK_FALSE(gone.error().request_id.empty());
  CHECK(c->delete_object("bkt", "never/existed").ok());  // 204 like OSS
}

TEST_CASE("multipart upload, list parts, complete with CRC check, abort", "[client]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  auto c = client_for(emu);
  std::string data = random_bytes(5 * 256 * 1024 + 999, 7);
  auto id = c->initiate_multipart("bkt", "mp/object.bin");
  REQUIRE(id.ok());
  std::vector<oss::UploadedPart> parts;
  for (int i = 0; i < 6; ++i) {
    std::size_t off = static_cast<std::size_t>(i) * 256 * 1024;
    auto p = c->upload_part(
        "bkt", "mp/object.bin", id.value(), i + 1,
        std::string_view(data).substr(off, std::min<std::size_t>(256 * 1024, data.size() - off)));
    REQUIRE(p.ok());
    parts.push_back(p.value());
  }
  auto listed = c->list_parts("bkt", "mp/object.bin", id.value());
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 6);
  CHECK(listed.value()[5].size == 999);
  auto done = c->complete_multipart("bkt", "mp/object.bin", id.value(), parts);
  REQUIRE(done.ok());
  CHECK(done->etag.find("-6\"") != std::string::npos);
  auto back = read_all(*c, "bkt", "mp/object.bin", 0, data.size());
  REQUIRE(back.ok());
  CHECK(back.value() == data);

  // Parts below 100 KiB (except the last) are refused at completion.
  auto small = c->initiate_multipart("bkt", "mp/small.bin");
  REQUIRE(small.ok());
  std::vector<oss::UploadedPart> tiny;
  for (int i = 1; i <= 2; ++i)
    tiny.push_back(c->upload_part("bkt", "mp/small.bin", small.value(), i, "xx").value());
  auto refused = c->complete_multipart("bkt", "mp/small.bin", small.value(), tiny);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "EntityTooSmall");
  REQUIRE(c->abort_multipart("bkt", "mp/small.bin", small.value()).ok());
  auto aborted = c->list_parts("bkt", "mp/small.bin", small.value());
  REQUIRE_FALSE(aborted.ok());
  CHECK(aborted.error().code == "NoSuchUpload");
  CHECK(aborted.error().err == ENOENT);
}

TEST_CASE("listing with delimiter, paging and odd keys", "[client]") {
  EmulatorProcess emu;
  std::vector<std::string> keys = {"d/a.txt", "d/b c.txt", "d/plus+sign", "d/\xE4\xB8\xAD\xE6\x96\x87",
                                   "d/sub/x", "d/sub/y",   "d/sub2/z",    "top"};
  for (const auto& k : keys) emu.put_file("bkt", k, k);
  auto c = client_for(emu);
  std::vector<std::string> objects, prefixes;
  oss::ListRequest req;
  req.prefix = "d/";
  req.max_keys = 2;
  int pages = 0;
  for (;;) {
    auto page = c->list_objects("bkt", req);
    REQUIRE(page.ok());
    ++pages;
    for (const auto& o : page->objects) objects.push_back(o.key);
    for (const auto& p : page->common_prefixes) prefixes.push_back(p);
    if (!page->truncated) break;
    req.continuation_token = page->next_continuation_token;
  }
  CHECK(pages == 3);
  CHECK(objects ==
        std::vector<std::string>{"d/a.txt", "d/b c.txt", "d/plus+sign", "d/\xE4\xB8\xAD\xE6\x96\x87"});
  CHECK(prefixes == std::vector<std::string>{"d/sub/", "d/sub2/"});
  auto missing = c->list_objects("nosuchbucket", oss::ListRequest{});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "NoSuchBucket");
  CHECK(missing.error().err == ENOENT);
}

TEST_CASE("every signature scheme is accepted; a wrong secret is EACCES without the secret", "[client]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "k", "payload");
  for (auth::Scheme scheme : {auth::Scheme::v1, auth::Scheme::v4, auth::Scheme::s3v4}) {
    Config cfg = emu.config();
    cfg.signature = scheme;
    auto c = client_for(emu, cfg);
    auto r = read_all(*c, "bkt", "k", 0, 7);
    INFO("scheme " << static_cast<int>(scheme) << (r.ok() ? "" : r.error().to_string()));
    REQUIRE(r.ok());
    CHECK(r.value() == "payload");
    REQUIRE(c->put_object("bkt", "k2", "x").ok());
    auto bad = client_for(emu, cfg, {"test-ak", "wrong-secret-value", ""});
    auto denied = bad->head_object("bkt", "k");
    REQUIRE_FALSE(denied.ok());
    CHECK(denied.error().err == EACCES);
    CHECK(denied.error().code == "SignatureDoesNotMatch");
    CHECK(denied.error().to_string().find("wrong-secret-value") == std::string::npos);
  }
  Config anon = emu.config();
  anon.signature = auth::Scheme::none;
  auto c = client_for(emu, anon);
  auto r = c->head_object("bkt", "k");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().err == EACCES);
}

TEST_CASE("retries absorb injected faults; exhausted retries fail cleanly", "[client][faults]") {
  EmulatorProcess emu;
  std::string data = random_bytes(2 << 20, 3);
  emu.put_file("bkt", "obj", data);
  auto c = client_for(emu);

  emu.set_faults("error_status=503&error_count=2");
  auto r1 = read_all(*c, "bkt", "obj", 0, data.size());
  REQUIRE(r1.ok());
  CHECK(r1.value() == data);

  emu.set_faults("reset_after=100000&count=1&ops=GetObject");
  auto r2 = read_all(*c, "bkt", "obj", 0, data.size());
  REQUIRE(r2.ok());
  CHECK(r2.value() == data);

  emu.set_faults("truncate_after=65536&count=1&ops=GetObject");
  auto r3 = read_all(*c, "bkt", "obj", 0, data.size());
  REQUIRE(r3.ok());
  CHECK(r3.value() == data);

  emu.set_faults("error_status=500");  // every request
  Config cfg = emu.config();
  cfg.retries = 2;
  auto few = client_for(emu, cfg);
  auto r4 = few->head_object("bkt", "obj");
  REQUIRE_FALSE(r4.ok());
  CHECK(r4.error().err == EIO);
  CHECK(r4.error().http_status == 500);
  CHECK(r4.error().code == "InternalError");
  CHECK_FALSE(r4.error().request_id.empty());
  emu.clear_faults();
}

TEST_CASE("an object replaced mid-read is ESTALE, never mixed bytes", "[client][faults]") {
  EmulatorProcess emu;
  std::string data = random_bytes(1 << 20, 5);
  emu.put_file("bkt", "obj", data);
  auto c = client_for(emu);
  auto info = c->head_object("bkt", "obj");
  REQUIRE(info.ok());
  emu.set_faults("replace_after=1000&count=1&ops=GetObject");
  auto first = read_all(*c, "bkt", "obj", 0, 512 * 1024, info->etag);
  REQUIRE(first.ok());
  CHECK(first.value() == data.substr(0, 512 * 1024));  // served from the version it started on
  auto second = read_all(*c, "bkt", "obj", 512 * 1024, 512 * 1024, info->etag);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().err == ESTALE);
  CHECK(second.error().code == "PreconditionFailed");
}

TEST_CASE("timeouts and an unreachable endpoint give bounded, clear errors", "[client][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "obj", "x");
  Config cfg = emu.config();
  cfg.first_byte_timeout_ms = 200;
  cfg.retries = 1;
  auto c = client_for(emu, cfg);
  emu.set_faults("first_byte_ms=1500");
  auto start = std::chrono::steady_clock::now();
  auto slow = c->head_object("bkt", "obj");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error().err == ETIMEDOUT);
  CHECK(slow.error().to_string().find("no response byte within 200 ms") != std::string::npos);
  CHECK(secs < 10);  // bounded: a sanity bound, not a performance assertion
  emu.clear_faults();

  Config down = emu.config();
  down.endpoint = "http://127.0.0.1:9";  // discard port: nothing listens
  down.retries = 1;
  auto d = client_for(emu, down);
  auto refused = d->head_object("bkt", "obj");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().err == EIO);
  CHECK(refused.error().http_status == 0);
  CHECK(refused.error().to_string().find("127.0.0.1") != std::string::npos);
  CHECK(refused.error().to_string().find("HeadObject oss://bkt/obj") == 0);
}

TEST_CASE("connections are reused and concurrent range reads are correct", "[client]") {
  EmulatorProcess emu;
  std::string data = random_bytes(8 << 20, 11);
  emu.put_file("bkt", "big", data);
  auto c = client_for(emu);
  emu.reset_stats();
  std::string out(data.size(), '\0');
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  const std::size_t piece = data.size() / 32;
  for (int t = 0; t < 32; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 4; ++round) {
        std::size_t off = static_cast<std::size_t>(t) * piece;
        auto r = c->get_range("bkt", "big", oss::RangeRead{off, piece, out.data() + off, ""});
        if (!r.ok() || r.value() != piece) failures++;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(out == data);
  CHECK(emu.requests("bkt/big") == 128);
  // 128 requests over at most one connection per thread; the two admin reads above add two.
  CHECK(emu.connections() <= 32 + 2);
}

TEST_CASE("RequestTimeTooSkewed is re-signed and retried; other 403s are not retried", "[client][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", "obj", "data");
  auto c = client_for(emu);
  emu.set_faults("error_status=403&error_code=RequestTimeTooSkewed&error_count=1");
  emu.reset_stats();
  auto ok = c->head_object("bkt", "obj");
  REQUIRE(ok.ok());
  CHECK(emu.requests("bkt/obj") == 2);

  emu.set_faults("error_status=403&error_code=AccessDenied&error_count=1");
  emu.reset_stats();
  auto denied = c->head_object("bkt", "obj");
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().code == "AccessDenied");
  CHECK(denied.error().err == EACCES);
  CHECK(emu.requests("bkt/obj") == 1);
}

TEST_CASE("a bandwidth cap slows bodies down but keeps them intact", "[client][faults]") {
  EmulatorProcess emu;
  std::string data = random_bytes(3 << 20, 9);
  emu.put_file("bkt", "obj", data);
  auto c = client_for(emu);
  emu.set_faults("bandwidth=20m");
  auto r = read_all(*c, "bkt", "obj", 0, data.size());
  REQUIRE(r.ok());
  CHECK(r.value() == data);
  emu.clear_faults();
}

// ------------------------------------------------------------------ the write path

namespace {

Config with_scheme(const EmulatorProcess& emu, auth::Scheme scheme) {
  Config cfg = emu.config();
  cfg.signature = scheme;
  return cfg;
}

const char* scheme_name(auth::Scheme s) {
  return s == auth::Scheme::s3v4 ? "s3v4" : "v4";
}

// Parts of `data`, `part` bytes each (the last one shorter), uploaded in order.
std::vector<oss::UploadedPart> upload_parts(oss::Client& c, const std::string& b, const std::string& k,
                                            const std::string& id, std::string_view data, std::size_t part) {
  std::vector<oss::UploadedPart> parts;
  for (std::size_t off = 0, n = 1; off < data.size(); off += part, ++n) {
    auto p =
        c.upload_part(b, k, id, static_cast<int>(n), data.substr(off, std::min(part, data.size() - off)));
    REQUIRE(p.ok());
    parts.push_back(p.value());
  }
  return parts;
}

}  // namespace

TEST_CASE("forbid_overwrite refuses an existing key with EEXIST on every call that creates one",
          "[client][write]") {
  for (auth::Scheme scheme : {auth::Scheme::v4, auth::Scheme::s3v4}) {
    INFO("signature " << scheme_name(scheme));
    EmulatorProcess emu;
    emu.put_file("bkt", "taken", "old");
    auto c = client_for(emu, with_scheme(emu, scheme));
    const oss::WriteOptions keep{true};
    bool s3 = scheme == auth::Scheme::s3v4;
    auto expect_exists = [&](const Error& e) {
      CHECK(e.err == EEXIST);
      CHECK(e.http_status == (s3 ? 412 : 409));  // If-None-Match: * / x-oss-forbid-overwrite
      CHECK(e.code == (s3 ? "PreconditionFailed" : "FileAlreadyExists"));
    };

    auto put = c->put_object("bkt", "taken", "new", keep);
    REQUIRE_FALSE(put.ok());
    expect_exists(put.error());
    CHECK(read_all(*c, "bkt", "taken", 0, 10).value() == "old");
    REQUIRE(c->put_object("bkt", "fresh", "new", keep).ok());
    REQUIRE(c->put_object("bkt", "taken", "replaced").ok());  // without the option: replaced

    auto copy = c->copy_object("bkt", "fresh", "bkt", "taken", keep);
    REQUIRE_FALSE(copy.ok());
    expect_exists(copy.error());
    REQUIRE(c->copy_object("bkt", "fresh", "bkt", "copy", keep).ok());

    // OSS refuses at initiation already; S3 takes no condition there and refuses at completion.
    auto early = c->initiate_multipart("bkt", "taken", keep);
    if (s3) {
      REQUIRE(early.ok());
      auto parts = upload_parts(*c, "bkt", "taken", early.value(), "abc", 3);
      auto done = c->complete_multipart("bkt", "taken", early.value(), parts, keep);
      REQUIRE_FALSE(done.ok());
      expect_exists(done.error());
    } else {
      REQUIRE_FALSE(early.ok());
      expect_exists(early.error());
    }
    // Created by someone else while our upload was running.
    auto id = c->initiate_multipart("bkt", "race", keep);
    REQUIRE(id.ok());
    auto parts = upload_parts(*c, "bkt", "race", id.value(), "mine", 4);
    REQUIRE(c->put_object("bkt", "race", "theirs").ok());
    auto late = c->complete_multipart("bkt", "race", id.value(), parts, keep);
    REQUIRE_FALSE(late.ok());
    expect_exists(late.error());
    CHECK(read_all(*c, "bkt", "race", 0, 10).value() == "theirs");
    CHECK(read_all(*c, "bkt", "taken", 0, 20).value() == "replaced");
  }
}

TEST_CASE("the server checks Content-MD5: a body damaged on the way is refused and nothing is stored",
          "[client][write][faults]") {
  for (auth::Scheme scheme : {auth::Scheme::v4, auth::Scheme::s3v4}) {
    INFO("signature " << scheme_name(scheme));
    EmulatorProcess emu;
    emu.put_file("bkt", ".keep", "");
    Config cfg = with_scheme(emu, scheme);
    cfg.retries = 0;
    auto c = client_for(emu, cfg);
    std::string data = random_bytes(300000, 21);
    const char* digest_code = scheme == auth::Scheme::s3v4 ? "BadDigest" : "InvalidDigest";

    emu.set_faults("corrupt_upload=123456&ops=PutObject");
    auto put = c->put_object("bkt", "damaged", data);
    REQUIRE_FALSE(put.ok());
    CHECK(put.error().err == EIO);
    CHECK(put.error().http_status == 400);
    CHECK(put.error().code == digest_code);
    CHECK(c->head_object("bkt", "damaged").error().err == ENOENT);

    emu.set_faults("corrupt_upload=0&ops=UploadPart");
    auto id = c->initiate_multipart("bkt", "mp");
    REQUIRE(id.ok());
    auto part = c->upload_part("bkt", "mp", id.value(), 1, data);
    REQUIRE_FALSE(part.ok());
    CHECK(part.error().err == EIO);
    CHECK(part.error().code == digest_code);
    CHECK(c->list_parts("bkt", "mp", id.value())->empty());
    emu.clear_faults();
    REQUIRE(c->upload_part("bkt", "mp", id.value(), 1, data).ok());  // intact: accepted
  }
}

TEST_CASE("a CRC64 from the server that does not match what was sent fails the upload",
          "[client][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  auto c = client_for(emu);
  std::string data = random_bytes(250000, 22);

  auto fine = c->put_object("bkt", "ok", data);
  REQUIRE(fine.ok());
  CHECK(fine->crc64 == util::crc64_update(0, data.data(), data.size()));

  emu.set_faults("wrong_crc=1&ops=PutObject");
  auto put = c->put_object("bkt", "k", data);
  REQUIRE_FALSE(put.ok());
  CHECK(put.error().err == EIO);
  CHECK(put.error().code == oss::kCrcMismatch);
  CHECK(put.error().to_string().find("PutObject oss://bkt/k: ") == 0);
  CHECK(put.error().to_string().find("upload integrity: CRC64 mismatch") != std::string::npos);

  emu.set_faults("wrong_crc=1&ops=UploadPart");
  auto id = c->initiate_multipart("bkt", "mp");
  REQUIRE(id.ok());
  auto bad_part = c->upload_part("bkt", "mp", id.value(), 1, data);
  REQUIRE_FALSE(bad_part.ok());
  CHECK(bad_part.error().to_string().find("upload integrity: CRC64 mismatch") != std::string::npos);

  emu.set_faults("wrong_crc=1&ops=CompleteMultipartUpload");
  auto parts = upload_parts(*c, "bkt", "mp", id.value(), data, 200 * 1024);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].crc64 == util::crc64_update(0, data.data(), 200 * 1024));
  auto done = c->complete_multipart("bkt", "mp", id.value(), parts);
  REQUIRE_FALSE(done.ok());
  CHECK(done.error().err == EIO);
  CHECK(done.error().code == oss::kCrcMismatch);
  CHECK(done.error().to_string().find("CompleteMultipartUpload oss://bkt/mp: ") == 0);
  emu.clear_faults();
}

TEST_CASE("upload_part_copy assembles an object from ranges of others, pinned to the source ETag",
          "[client][write]") {
  for (auth::Scheme scheme : {auth::Scheme::v4, auth::Scheme::s3v4}) {
    INFO("signature " << scheme_name(scheme));
    EmulatorProcess emu;
    std::string a = random_bytes(700 * 1024 + 5, 31), b = random_bytes(300 * 1024, 32);
    emu.put_file("bkt", "src/a b.bin", a);
    emu.put_file("other", "b", b);
    auto c = client_for(emu, with_scheme(emu, scheme));
    auto src = c->head_object("bkt", "src/a b.bin");
    REQUIRE(src.ok());

    auto id = c->initiate_multipart("bkt", "joined");
    REQUIRE(id.ok());
    auto p1 = c->upload_part_copy("bkt", "joined", id.value(), 1, "bkt", "src/a b.bin", 0, 400 * 1024 - 1,
                                  src->etag);
    REQUIRE(p1.ok());
    CHECK(p1->size == 400 * 1024);
    CHECK_FALSE(p1->etag.empty());
    CHECK(p1->crc64 == util::crc64_update(0, a.data(), 400 * 1024));
    auto p2 =
        c->upload_part_copy("bkt", "joined", id.value(), 2, "bkt", "src/a b.bin", 400 * 1024, a.size() - 1);
    REQUIRE(p2.ok());
    auto p3 = c->upload_part_copy("bkt", "joined", id.value(), 3, "other", "b", 1000, 1000 + 200 * 1024 - 1);
    REQUIRE(p3.ok());
    auto p4 = c->upload_part("bkt", "joined", id.value(), 4, "tail");
    REQUIRE(p4.ok());
    auto done =
        c->complete_multipart("bkt", "joined", id.value(), {p1.value(), p2.value(), p3.value(), p4.value()});
    REQUIRE(done.ok());  // the parts' CRCs combined matched the object's
    std::string want = a + b.substr(1000, 200 * 1024) + "tail";
    auto back = read_all(*c, "bkt", "joined", 0, want.size() + 10);
    REQUIRE(back.ok());
    CHECK(back.value() == want);

    auto id2 = c->initiate_multipart("bkt", "stale");
    REQUIRE(id2.ok());
    auto changed =
        c->upload_part_copy("bkt", "stale", id2.value(), 1, "bkt", "src/a b.bin", 0, 99, "\"0123\"");
    REQUIRE_FALSE(changed.ok());
    CHECK(changed.error().err == ESTALE);
    CHECK(changed.error().code == "PreconditionFailed");
    auto missing = c->upload_part_copy("bkt", "stale", id2.value(), 1, "bkt", "no such", 0, 99);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().err == ENOENT);
    CHECK(missing.error().code == "NoSuchKey");
    CHECK(missing.error().to_string().find("part 1 from oss://bkt/no such") != std::string::npos);
    auto backwards = c->upload_part_copy("bkt", "stale", id2.value(), 1, "bkt", "src/a b.bin", 10, 9);
    REQUIRE_FALSE(backwards.ok());
    CHECK(backwards.error().err == EINVAL);
    auto beyond =
        c->upload_part_copy("bkt", "stale", id2.value(), 1, "bkt", "src/a b.bin", a.size(), a.size() + 9);
    REQUIRE_FALSE(beyond.ok());
    CHECK(beyond.error().err == EINVAL);  // 416 InvalidRange
  }
}

TEST_CASE("list_multipart_uploads pages through every incomplete upload under a prefix", "[client][write]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  auto c = client_for(emu);
  std::time_t before = std::time(nullptr);
  std::vector<std::pair<std::string, std::string>> want;  // (key, upload id)
  for (const char* key :
       {"ckpt/b", "ckpt/a b+c", "ckpt/\xE4\xB8\xAD", "ckpt/a b+c", "ckpt/sub/x", "ckpt/z"}) {
    auto id = c->initiate_multipart("bkt", key);
    REQUIRE(id.ok());
    want.emplace_back(key, id.value());
  }
  for (const char* key : {"ckpt2/y", "other"}) REQUIRE(c->initiate_multipart("bkt", key).ok());
  std::sort(want.begin(), want.end());

  emu.reset_stats();
  auto listed = c->list_multipart_uploads("bkt", "ckpt/", 2);
  REQUIRE(listed.ok());
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& u : listed.value()) {
    got.emplace_back(u.key, u.upload_id);
    CHECK(u.initiated >= before - 1);
    CHECK(u.initiated <= std::time(nullptr) + 1);
  }
  CHECK(got == want);
  CHECK(emu.stats_json().find("\"ListMultipartUploads\":3") != std::string::npos);  // 6 uploads, 2 a page

  auto all = c->list_multipart_uploads("bkt", "");
  REQUIRE(all.ok());
  CHECK(all->size() == 8);

  // Completed and aborted uploads are no longer listed.
  REQUIRE(c->abort_multipart("bkt", want[0].first, want[0].second).ok());
  auto parts = upload_parts(*c, "bkt", want[1].first, want[1].second, "x", 1);
  REQUIRE(c->complete_multipart("bkt", want[1].first, want[1].second, parts).ok());
  auto after = c->list_multipart_uploads("bkt", "ckpt/", 2);
  REQUIRE(after.ok());
  CHECK(after->size() == 4);

  auto missing = c->list_multipart_uploads("nosuchbucket", "");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().err == ENOENT);
  CHECK(missing.error().code == "NoSuchBucket");
}

TEST_CASE("write failures the server reports map to the errno a local file system gives",
          "[client][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  Config cfg = emu.config();
  cfg.retries = 0;
  auto c = client_for(emu, cfg);
  auto fails_with = [&](const std::string& spec, int err, const std::string& code) {
    INFO(spec);
    emu.set_faults(spec);
    auto put = c->put_object("bkt", "k", "data");
    REQUIRE_FALSE(put.ok());
    CHECK(put.error().err == err);
    CHECK(put.error().code == code);
  };
  fails_with("error_status=403&error_code=QuotaExceeded&ops=PutObject", EDQUOT, "QuotaExceeded");
  fails_with("error_status=403&error_code=InsufficientStorageSpace&ops=PutObject", EDQUOT,
             "InsufficientStorageSpace");
  fails_with("error_status=400&error_code=XMinioAdminBucketQuotaExceeded&ops=PutObject", EDQUOT,
             "XMinioAdminBucketQuotaExceeded");
  fails_with("error_status=507&ops=PutObject", ENOSPC, "InsufficientStorage");
  fails_with("error_status=507&error_code=XMinioStorageFull&ops=PutObject", ENOSPC, "XMinioStorageFull");
  fails_with("error_status=413&error_code=EntityTooLarge&ops=PutObject", EFBIG, "EntityTooLarge");
  fails_with("error_status=400&error_code=EntityTooLarge&ops=PutObject", EFBIG, "EntityTooLarge");

  emu.set_faults("error_status=507&ops=UploadPart");
  auto id = c->initiate_multipart("bkt", "mp");
  REQUIRE(id.ok());
  auto part = c->upload_part("bkt", "mp", id.value(), 1, "data");
  REQUIRE_FALSE(part.ok());
  CHECK(part.error().err == ENOSPC);
  emu.clear_faults();
  CHECK(c->head_object("bkt", "k").error().err == ENOENT);
}

TEST_CASE("an upload reset mid-body is retried; when every attempt is reset it fails with EIO",
          "[client][write][faults]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  std::string data = random_bytes(1 << 20, 41);
  auto c = client_for(emu);
  emu.set_faults("reset_upload_after=100000&count=1&ops=PutObject");
  emu.reset_stats();
  auto put = c->put_object("bkt", "k", data);
  REQUIRE(put.ok());
  CHECK(read_all(*c, "bkt", "k", 0, data.size()).value() == data);
  CHECK(emu.requests("bkt/k") >= 2);

  Config cfg = emu.config();
  cfg.retries = 1;
  auto few = client_for(emu, cfg);
  emu.set_faults("reset_upload_after=100000&ops=PutObject,UploadPart");
  auto lost = few->put_object("bkt", "lost", data);
  REQUIRE_FALSE(lost.ok());
  CHECK(lost.error().err == EIO);
  CHECK(lost.error().http_status == 0);
  CHECK(few->head_object("bkt", "lost").error().err == ENOENT);
  auto id = few->initiate_multipart("bkt", "mp");
  REQUIRE(id.ok());
  auto part = few->upload_part("bkt", "mp", id.value(), 1, data);
  REQUIRE_FALSE(part.ok());
  CHECK(part.error().err == EIO);
  emu.clear_faults();
}

TEST_CASE("ossrun uploads lists incomplete uploads under a path and aborts the old ones", "[ossrun][write]") {
  EmulatorProcess emu;
  emu.put_file("bkt", ".keep", "");
  auto c = client_for(emu);
  std::map<std::string, std::string> ids;  // key -> upload id
  for (const char* key : {"ckpt/a.bin", "ckpt/sub/b.bin", "ckpt2/c.bin", "other/d.bin"}) {
    auto id = c->initiate_multipart("bkt", key);
    REQUIRE(id.ok());
    ids[key] = id.value();
  }
  REQUIRE(c->upload_part("bkt", "ckpt/a.bin", ids["ckpt/a.bin"], 1, "part").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  auto young = c->initiate_multipart("bkt", "ckpt/young.bin");
  REQUIRE(young.ok());
  ids["ckpt/young.bin"] = young.value();

  const char* build = std::getenv("OSSSHIM_BUILD_ROOT");
  REQUIRE(build);
  setenv("OSSSHIM_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("OSSSHIM_REGION", emu.region().c_str(), 1);
  setenv("OSS_ACCESS_KEY_ID", emu.access_key_id().c_str(), 1);
  setenv("OSS_ACCESS_KEY_SECRET", emu.access_key_secret().c_str(), 1);
  for (const char* v :
       {"OSSSHIM_CONFIG", "OSSSHIM_PREFIX", "OSSSHIM_SIGNATURE", "OSSSHIM_ADDRESSING", "OSS_SESSION_TOKEN"})
    unsetenv(v);
  struct Run {
    int status;
    std::string out, err;
  };
  std::string dir = emu.root() + "/../ossrun-out";
  std::filesystem::create_directories(dir);
  auto ossrun = [&](const std::string& args) {
    std::string cmd =
        std::string(build) + "/tools/ossrun/ossrun " + args + " >" + dir + "/out 2>" + dir + "/err";
    int rc = std::system(cmd.c_str());
    auto slurp = [](const std::string& p) {
      std::ifstream in(p);
      return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    return Run{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(dir + "/out"), slurp(dir + "/err")};
  };
  auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };

  Run list = ossrun("uploads /oss/bkt/ckpt");
  INFO(list.out << list.err);
  CHECK(list.status == 0);
  CHECK(list.err.empty());
  CHECK(lines(list.out) == 4);
  for (const char* key : {"ckpt/a.bin", "ckpt/sub/b.bin", "ckpt/young.bin"})
    CHECK(list.out.find("/oss/bkt/" + std::string(key) + "  " + ids[key] + "  20") != std::string::npos);
  CHECK(list.out.find("ckpt2") == std::string::npos);  // a sibling, not under the directory
  CHECK(list.out.find("other") == std::string::npos);
  // Initiated (UTC, ISO-8601) and age.
  CHECK(std::regex_search(list.out,
                          std::regex(R"(/ckpt/a\.bin  \w+  20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ  [3-9]s\n)")));
  CHECK(std::regex_search(list.out, std::regex(R"(/ckpt/young\.bin  \w+  \S+Z  [0-2]s\n)")));
  CHECK(list.out.find("3 uploads listed, 0 aborted\n") != std::string::npos);

  Run cleanup = ossrun("uploads --abort --older-than 2s /oss/bkt/ckpt /oss/bkt/ckpt/sub");
  INFO(cleanup.out << cleanup.err);
  CHECK(cleanup.status == 0);
  CHECK(lines(cleanup.out) == 3);
  CHECK(cleanup.out.find("/oss/bkt/ckpt/a.bin  " + ids["ckpt/a.bin"]) != std::string::npos);
  CHECK(cleanup.out.find("aborted\n") != std::string::npos);
  CHECK(cleanup.out.find("2 uploads listed, 2 aborted; 1 younger than 2s left out\n") != std::string::npos);
  auto left = c->list_multipart_uploads("bkt", "");
  REQUIRE(left.ok());
  std::set<std::string> keys;
  for (const auto& u : left.value()) keys.insert(u.key);
  CHECK(keys == std::set<std::string>{"ckpt/young.bin", "ckpt2/c.bin", "other/d.bin"});

  // Failures: one line naming the operation, the object and the server's reason; status 1.
  emu.set_faults("error_status=403&error_code=AccessDenied&ops=AbortMultipartUpload");
  Run denied = ossrun("uploads --abort /oss/bkt/other");
  CHECK(denied.status == 1);
  CHECK(denied.out.find("NOT aborted") != std::string::npos);
  CHECK(denied.out.find("1 upload listed, 0 aborted\n") != std::string::npos);
  CHECK(lines(denied.err) == 1);
  CHECK(denied.err.find("AbortMultipartUpload oss://bkt/other/d.bin: HTTP 403 AccessDenied") !=
        std::string::npos);
  emu.clear_faults();
  Run missing = ossrun("uploads /oss/nosuchbucket");
  CHECK(missing.status == 1);
  CHECK(lines(missing.err) == 1);
  CHECK(missing.err.find("ListMultipartUploads oss://nosuchbucket/: HTTP 404 NoSuchBucket") !=
        std::string::npos);
  // Usage errors stop before any request, like ossrun's other usage errors.
  CHECK(ossrun("uploads --older-than soon /oss/bkt").status == 2);
  CHECK(ossrun("uploads /elsewhere/bkt").status == 2);
  CHECK(ossrun("uploads").status == 2);
}

TEST_CASE("symlink objects: PutSymlink, GetSymlink, HEAD/GET follow, listing type", "[client][symlink]") {
  EmulatorProcess emu;
  std::string data = random_bytes(70000);
  emu.put_file("bkt", "m/blobs/abc", data);
  auto c = client_for(emu);

  REQUIRE(c->put_symlink("bkt", "m/snapshots/r1/config.json", "m/blobs/abc").ok());
  auto l = c->get_symlink("bkt", "m/snapshots/r1/config.json");
  REQUIRE(l.ok());
  CHECK(l->target == "m/blobs/abc");
  CHECK(!l->etag.empty());
  // The emulator's tree on disk is the POSIX view: a relative symbolic link.
  CHECK(std::filesystem::read_symlink(emu.root() + "/bkt/m/snapshots/r1/config.json") == "../../blobs/abc");

  auto head = c->head_object("bkt", "m/snapshots/r1/config.json");  // followed: the target's size
  REQUIRE(head.ok());
  CHECK(head->object_type == "Symlink");
  CHECK(head->size == data.size());
  auto got = read_all(*c, "bkt", "m/snapshots/r1/config.json", 1000, 5000);
  REQUIRE(got.ok());
  CHECK(*got == data.substr(1000, 5000));

  oss::ListRequest req;
  req.prefix = "m/snapshots/r1/";
  auto page = c->list_objects("bkt", req);
  REQUIRE(page.ok());
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].type == "Symlink");

  // A plain object is not a link; a dangling link and a link to a link fail HEAD with the codes
  // that say "this key is a link".
  auto plain = c->get_symlink("bkt", "m/blobs/abc");
  REQUIRE(!plain.ok());
  CHECK(plain.error().err == EINVAL);
  CHECK(plain.error().code == "NotSymlink");
  REQUIRE(c->put_symlink("bkt", "dangling", "no/such/key").ok());
  auto dangling = c->head_object("bkt", "dangling");
  REQUIRE(!dangling.ok());
  CHECK(dangling.error().code == oss::kSymlinkTargetMissing);
  CHECK(dangling.error().err == ENOENT);
  REQUIRE(c->put_symlink("bkt", "chain", "m/snapshots/r1/config.json").ok());
  auto chain = c->head_object("bkt", "chain");
  REQUIRE(!chain.ok());
  CHECK(chain.error().code == oss::kSymlinkTargetInvalid);

  // forbid_overwrite keeps an existing key; without it the link is replaced.
  oss::WriteOptions keep;
  keep.forbid_overwrite = true;
  auto refused = c->put_symlink("bkt", "dangling", "m/blobs/abc", keep);
  REQUIRE(!refused.ok());
  CHECK(refused.error().err == EEXIST);
  REQUIRE(c->put_symlink("bkt", "dangling", "m/blobs/abc").ok());
  CHECK(c->get_symlink("bkt", "dangling")->target == "m/blobs/abc");
  // Deleting a link leaves its target.
  REQUIRE(c->delete_object("bkt", "dangling").ok());
  CHECK(!c->head_object("bkt", "dangling").ok());
  CHECK(c->head_object("bkt", "m/blobs/abc").ok());
  CHECK(!c->get_symlink("bkt", "missing").ok());
  CHECK(c->get_symlink("bkt", "missing").error().err == ENOENT);
}

TEST_CASE("symlink objects are refused with EPERM on S3-compatible endpoints", "[client][symlink]") {
  EmulatorProcess emu;
  Config cfg = emu.config();
  cfg.signature = auth::Scheme::s3v4;
  auto c = client_for(emu, cfg);
  auto r = c->put_symlink("bkt", "l", "t");
  REQUIRE(!r.ok());
  CHECK(r.error().err == EPERM);
}
