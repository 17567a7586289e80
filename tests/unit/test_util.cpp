#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "util/crc64.hpp"
#include "util/encode.hpp"
#include "util/error.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

using namespace ossshim;
using namespace ossshim::util;

namespace {
std::uint64_t crc(const std::string& s) {
  return crc64_update(0, s.data(), s.size());
}
}  // namespace

TEST_CASE("CRC64-ECMA matches OSS check values", "[crc64]") {
  const std::string a = "123456789";
  const std::string b = "This is a test of the emergency broadcast system.";
  CHECK(crc(a) == 0x995DC9BBDF1939FAull);
  CHECK(crc(a) == 11051210869376104954ull);
  CHECK(crc(b) == 0x27DB187FC15BBC72ull);
  CHECK(crc(a + b) == 0x6A7AA19FCBF48688ull);
  CHECK(crc("") == 0);
}

TEST_CASE("CRC64 update continues from a previous final value", "[crc64]") {
  const std::string a = "123456789";
  const std::string b = "This is a test of the emergency broadcast system.";
  CHECK(crc64_update(crc(a), b.data(), b.size()) == crc(a + b));
}

TEST_CASE("CRC64 combine equals the CRC of the concatenation", "[crc64]") {
  const std::string a = "123456789";
  const std::string b = "This is a test of the emergency broadcast system.";
  CHECK(crc64_combine(crc(a), crc(b), b.size()) == 0x6A7AA19FCBF48688ull);
  CHECK(crc64_combine(crc(a), 0, 0) == crc(a));
  std::string big(3 * 1000 * 1000 + 7, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 7));
  std::string first = big.substr(0, 1234567), second = big.substr(1234567);
  CHECK(crc64_combine(crc(first), crc(second), second.size()) == crc(big));
}

TEST_CASE("URI encoding keeps unreserved bytes and optionally '/'", "[encode]") {
  CHECK(uri_encode("1234+-/123/1.txt", true) == "1234%2B-/123/1.txt");
  CHECK(uri_encode("a b/c~d", false) == "a%20b%2Fc~d");
  CHECK(uri_encode("\xE4\xB8\xAD", true) == "%E4%B8%AD");
  std::string out;
  REQUIRE(uri_decode("a%20b%2Fc+d", out, true));
  CHECK(out == "a b/c d");
  REQUIRE(uri_decode("a+b", out, false));
  CHECK(out == "a+b");
  CHECK_FALSE(uri_decode("bad%2", out, false));
  CHECK_FALSE(uri_decode("bad%zz", out, false));
}

TEST_CASE("base64 and hex", "[encode]") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string back;
    REQUIRE(base64_decode(base64_encode(s), back));
    CHECK(back == s);
  }
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  std::string bad;
  CHECK_FALSE(base64_decode("abc", bad));
  CHECK(hex_lower("\x01\xAB") == "01ab");
  CHECK(hex_upper("\x01\xAB") == "01AB");
  CHECK(hex_lower(md5("")) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex_lower(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("protocol time formats round-trip", "[time]") {
  std::time_t t = 1672223261;  // Wed, 28 Dec 2022 10:27:41 GMT
  CHECK(format_rfc1123(t) == "Wed, 28 Dec 2022 10:27:41 GMT");
  CHECK(format_iso8601_basic(t) == "20221228T102741Z");
  CHECK(format_iso8601_ms(t) == "2022-12-28T10:27:41.000Z");
  CHECK(parse_rfc1123("Wed, 28 Dec 2022 10:27:41 GMT") == t);
  CHECK(parse_iso8601_basic("20221228T102741Z") == t);
  CHECK(parse_iso8601("2022-12-28T10:27:41.000Z") == t);
  CHECK(parse_iso8601("2022-12-28T10:27:41Z") == t);
  CHECK_FALSE(parse_iso8601_basic("2022-12-28"));
  CHECK_FALSE(parse_rfc1123("yesterday"));
}

TEST_CASE("sizes", "[size]") {
  CHECK(parse_size("1024") == 1024u);
  CHECK(parse_size("64k") == 65536u);
  CHECK(parse_size("8MiB") == 8u << 20);
  CHECK(parse_size("8mb") == 8u << 20);
  CHECK(parse_size("16G") == 16ull << 30);
  CHECK(parse_size("1.5g") == 3ull << 29);
  CHECK_FALSE(parse_size(""));
  CHECK_FALSE(parse_size("-1"));
  CHECK_FALSE(parse_size("12q"));
  CHECK_FALSE(parse_size("99999999999t"));
  CHECK(format_size(3ull << 29) == "1.5 GiB");
}

TEST_CASE("errors print as one line naming what, where and why", "[error]") {
  Error e{ENOENT, "GetObject", "oss://b/k", 404, "NoSuchKey", "The specified key does not exist.", "5F3A"};
  CHECK(
      e.to_string() ==
      "GetObject oss://b/k: HTTP 404 NoSuchKey (The specified key does not exist.) request-id 5F3A [ENOENT]");
  Error t{EIO, "HeadObject", "oss://b/k", 0, "", "connect to 127.0.0.1:9 failed: Connection refused", ""};
  CHECK(t.to_string() == "HeadObject oss://b/k: connect to 127.0.0.1:9 failed: Connection refused [EIO]");
}
