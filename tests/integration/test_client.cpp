// core/http + core/oss against the real emulator: every operation, ranges, listing, signing schemes,
// retries under injected faults, and clean errors.
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
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
