// Official signature vectors from OSS-API.md (Go v2 SDK signer_test.go, C++ SDK SignerTest.cc,
// AWS docs), reproduced verbatim, plus server-side verification.
#include <catch2/catch.hpp>
#include <map>

#include "auth/credentials.hpp"
#include "auth/signer.hpp"
#include "auth/verify.hpp"
#include "util/encode.hpp"
#include "util/time.hpp"

using namespace ossshim;
using namespace ossshim::auth;

namespace {
const Credentials kAkSk{"ak", "sk", ""};
const std::time_t kV1Time = *util::parse_rfc1123("Wed, 28 Dec 2022 10:27:41 GMT");

Request v1_put_request() {
  Request r;
  r.method = "PUT";
  r.bucket = "examplebucket";
  r.key = "nelson";
  r.headers = {{"Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="},
               {"Content-Type", "text/html"},
               {"x-oss-meta-author", "alice"},
               {"x-oss-meta-magic", "abracadabra"},
               {"x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT"}};
  return r;
}

Request v4_request(const char* content_type) {
  Request r;
  r.method = "PUT";
  r.bucket = "bucket";
  r.key = "1234+-/123/1.txt";
  r.headers = {{"x-oss-head1", "value"},
               {"abc", "value"},
               {"ZAbc", "value"},
               {"XYZ", "value"},
               {"content-type", content_type}};
  r.query = {{"param1", "value1"}, {"+param1", "value3"}, {"|param1", "value4"},
             {"+param2", ""},      {"|param2", ""},       {"param2", ""}};
  return r;
}

std::string query_value(const Request& r, const char* name) {
  const QueryParam* q = r.query_param(name);
  return q ? q->value : "<absent>";
}
}  // namespace

TEST_CASE("V1 header vectors (TestV1AuthHeader)", "[v1]") {
  Request r = v1_put_request();
  CHECK(v1_string_to_sign(r, "Wed, 28 Dec 2022 10:27:41 GMT") ==
        "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\n"
        "x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n"
        "/examplebucket/nelson");
  sign_v1(r, kAkSk, kV1Time);
  CHECK(*r.header("Authorization") == "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=");

  Request acl = v1_put_request();
  acl.query = {{"acl", ""}};
  sign_v1(acl, kAkSk, kV1Time);
  CHECK(*acl.header("Authorization") == "OSS ak:/afkugFbmWDQ967j1vr6zygBLQk=");

  Request group;
  group.method = "GET";
  group.bucket = "examplebucket";
  group.headers = {{"x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT"}};
  group.query = {{"resourceGroup", ""}, {"non-resousce", "null"}};
  std::string sts = v1_string_to_sign(group, "Wed, 28 Dec 2022 10:27:41 GMT", {"resourceGroup"});
  CHECK(sts ==
        "GET\n\n\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 "
        "GMT\n/examplebucket/?resourceGroup");
  CHECK(v1_signature("sk", sts) == "vkQmfuUDyi1uDi3bKt67oemssIs=");

  group.query = {{"resourceGroup", ""}, {"acl", ""}};
  sts = v1_string_to_sign(group, "Wed, 28 Dec 2022 10:27:41 GMT", {"resourceGroup"});
  CHECK(sts ==
        "GET\n\n\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 "
        "GMT\n/examplebucket/?acl&resourceGroup");
  CHECK(v1_signature("sk", sts) == "x3E5TgOvl/i7PN618s5mEvpJDYk=");
}

TEST_CASE("V1 presigned URL vectors (TestV1AuthQuery)", "[v1]") {
  Request r;
  r.method = "GET";
  r.bucket = "bucket";
  r.key = "key";
  r.query = {{"versionId", "versionId"}};
  CHECK(v1_string_to_sign(r, "1699807420") == "GET\n\n\n1699807420\n/bucket/key?versionId=versionId");
  presign_v1(r, kAkSk, 1699807420);
  CHECK(query_value(r, "Signature") == "dcLTea+Yh9ApirQ8o8dOPqtvJXQ=");
  CHECK(query_value(r, "OSSAccessKeyId") == "ak");
  CHECK(query_value(r, "Expires") == "1699807420");

  Request t;
  t.method = "GET";
  t.bucket = "bucket";
  t.key = "key+123";
  t.query = {{"versionId", "versionId"}};
  presign_v1(t, Credentials{"ak", "sk", "token"}, 1699808204);
  CHECK(query_value(t, "security-token") == "token");
  CHECK(query_value(t, "Signature") == "jzKYRrM5y6Br0dRFPaTGOsbrDhY=");
}

TEST_CASE("V4 header vectors (TestV4AuthHeader*)", "[v4]") {
  const V4Scope scope{"cn-hangzhou", "oss"};
  SECTION("plain, with intermediate values") {
    Request r = v4_request("text/plain");
    r.headers.push_back({"x-oss-content-sha256", "UNSIGNED-PAYLOAD"});
    sign_v4(r, kAkSk, scope, 1702743657);
    CHECK(*r.header("Authorization") ==
          "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,"
          "Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe");
    std::string canonical = v4_canonical_request(r, {});
    CHECK(canonical ==
          "PUT\n/bucket/1234%2B-/123/1.txt\n"
          "%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n"
          "content-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231216T162057Z\n"
          "x-oss-head1:value\n\n\nUNSIGNED-PAYLOAD");
    CHECK(v4_string_to_sign("20231216T162057Z", "20231216/cn-hangzhou/oss/aliyun_v4_request", canonical) ==
          "OSS4-HMAC-SHA256\n20231216T162057Z\n20231216/cn-hangzhou/oss/aliyun_v4_request\n"
          "f4613657f1b108998e8dbd10a1aa5da621dc2c6e02c9ddec0f163664848704c4");
  }
  SECTION("STS token") {
    Request r = v4_request("text/plain");
    r.headers.push_back({"x-oss-content-sha256", "UNSIGNED-PAYLOAD"});
    sign_v4(r, Credentials{"ak", "sk", "token"}, scope, 1702784856);
    CHECK(*r.header("x-oss-security-token") == "token");
    CHECK(*r.header("Authorization") ==
          "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,"
          "Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea");
  }
  SECTION("additional headers") {
    Request r = v4_request("text/plain");
    r.headers.push_back({"x-oss-content-sha256", "UNSIGNED-PAYLOAD"});
    CHECK(v4_additional_headers(r, {"ZAbc", "abc", "x-oss-no-exist", "x-oss-head1"}) ==
          std::vector<std::string>{"abc", "zabc"});
    sign_v4(r, kAkSk, scope, 1702747512, {"ZAbc", "abc", "x-oss-no-exist", "x-oss-head1"});
    CHECK(*r.header("Authorization") ==
          "OSS4-HMAC-SHA256 "
          "Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,"
          "Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f");
  }
  SECTION("CloudBox product") {
    Request r = v4_request("text/plain");
    r.headers.push_back({"x-oss-content-sha256", "UNSIGNED-PAYLOAD"});
    sign_v4(r, kAkSk, V4Scope{"cb-123", "oss-cloudbox"}, 1702743657);
    CHECK(*r.header("Authorization") ==
          "OSS4-HMAC-SHA256 Credential=ak/20231216/cb-123/oss-cloudbox/aliyun_v4_request,"
          "Signature=94ce1f12c17d148ea681030275a94449d3357f5b5b21133996eec80af3e08a43");
  }
}

TEST_CASE("V4 presigned URL vectors (TestV4AuthQuery*)", "[v4]") {
  SECTION("plain, with canonical query") {
    Request r = v4_request("application/octet-stream");
    presign_v4(r, kAkSk, V4Scope{"cn-hangzhou", "oss"}, 1702781677, 599);
    CHECK(query_value(r, "x-oss-signature") ==
          "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe");
    std::string canonical = v4_canonical_request(r, {});
    CHECK(canonical.find("\n%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2&"
                         "x-oss-credential=ak%2F20231217%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&"
                         "x-oss-date=20231217T025437Z&x-oss-expires=599&"
                         "x-oss-signature-version=OSS4-HMAC-SHA256\n") != std::string::npos);
  }
  SECTION("STS token") {
    Request r = v4_request("application/octet-stream");
    presign_v4(r, Credentials{"ak", "sk", "token"}, V4Scope{"cn-hangzhou", "oss"}, 1702785388, 599);
    CHECK(query_value(r, "x-oss-signature") ==
          "3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5");
  }
  SECTION("additional headers") {
    Request r = v4_request("application/octet-stream");
    presign_v4(r, kAkSk, V4Scope{"cn-hangzhou", "oss"}, 1702783809, 599, {"ZAbc", "abc"});
    CHECK(query_value(r, "x-oss-additional-headers") == "abc;zabc");
    CHECK(query_value(r, "x-oss-signature") ==
          "6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7");
  }
  SECTION("CloudBox") {
    Request r = v4_request("application/octet-stream");
    presign_v4(r, kAkSk, V4Scope{"cb-123", "oss-cloudbox"}, 1702781677, 599, {"ZAbc", "abc"});
    CHECK(query_value(r, "x-oss-signature") ==
          "07284191b9b4978ac3520cd39ee2dea2747eda454089359371ff463a6c7ba20f");
  }
}

TEST_CASE("AWS SigV4 vectors", "[s3v4]") {
  SECTION("S3 GET Object example") {
    Request r;
    r.method = "GET";
    r.host = "examplebucket.s3.amazonaws.com";
    r.path = "/test.txt";
    r.headers = {{"Range", "bytes=0-9"}};
    const std::string empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    std::time_t t = *util::parse_iso8601_basic("20130524T000000Z");
    sign_s3v4(r, Credentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""},
              "us-east-1", t, empty_hash);
    CHECK(util::hex_lower(util::sha256(s3v4_canonical_request(
              r, {"host", "range", "x-amz-content-sha256", "x-amz-date"}, empty_hash))) ==
          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    CHECK(*r.header("Authorization") ==
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
          "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
          "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  }
  SECTION("get-vanilla") {
    Request r;
    r.method = "GET";
    r.host = "example.amazonaws.com";
    r.path = "/";
    r.headers = {{"x-amz-date", "20150830T123600Z"}};
    const std::string empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    std::string canonical = s3v4_canonical_request(r, {"host", "x-amz-date"}, empty_hash);
    std::string sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" +
                      util::hex_lower(util::sha256(canonical));
    CHECK(s3v4_signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service",
                         sts) == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  }
}

// ---------------------------------------------------------------- verification

namespace {
const std::time_t kNow = 1702743657;

SecretLookup lookup_table(std::map<std::string, Credentials> table) {
  return [table](const std::string& ak) -> std::optional<Credentials> {
    auto it = table.find(ak);
    if (it == table.end()) return std::nullopt;
    return it->second;
  };
}

const SecretLookup kServer =
    lookup_table({{"ak", {"ak", "sk", ""}}, {"sts-ak", {"sts-ak", "sts-sk", "tok"}}});

Request object_request() {
  Request r;
  r.method = "GET";
  r.bucket = "bucket";
  r.key = "dir/a b+c.bin";
  r.host = "127.0.0.1:9000";
  r.path = "/bucket/dir/a%20b%2Bc.bin";
  r.headers = {{"Range", "bytes=0-9"}, {"x-oss-range-behavior", "standard"}};
  r.query = {{"versionId", "v1"}};
  return r;
}
}  // namespace

TEST_CASE("verify accepts what each signer produces", "[verify]") {
  for (Scheme scheme : {Scheme::v1, Scheme::v4, Scheme::s3v4}) {
    Request r = object_request();
    sign(r, kAkSk, SignOptions{scheme, "cn-hangzhou"}, kNow);
    VerifyResult v = verify(r, kServer, "cn-hangzhou", kNow + 30);
    INFO("scheme " << static_cast<int>(scheme) << ": " << v.error_code << " " << v.message);
    CHECK(v.ok);
    CHECK(v.scheme == scheme);
    CHECK(v.access_key_id == "ak");
  }
  Request v1q = object_request();
  presign_v1(v1q, kAkSk, kNow + 60);
  CHECK(verify(v1q, kServer, "cn-hangzhou", kNow).ok);
  Request v4q = object_request();
  presign_v4(v4q, kAkSk, V4Scope{"cn-hangzhou"}, kNow, 600);
  CHECK(verify(v4q, kServer, "cn-hangzhou", kNow + 500).ok);
  Request sts = object_request();
  sign(sts, Credentials{"sts-ak", "sts-sk", "tok"}, SignOptions{Scheme::v4, "cn-hangzhou"}, kNow);
  CHECK(verify(sts, kServer, "cn-hangzhou", kNow).ok);
}

TEST_CASE("verify rejects bad signatures with the right code", "[verify]") {
  for (Scheme scheme : {Scheme::v1, Scheme::v4, Scheme::s3v4}) {
    INFO("scheme " << static_cast<int>(scheme));
    Request wrong = object_request();
    sign(wrong, Credentials{"ak", "not-the-secret", ""}, SignOptions{scheme, "cn-hangzhou"}, kNow);
    VerifyResult v = verify(wrong, kServer, "cn-hangzhou", kNow);
    CHECK_FALSE(v.ok);
    CHECK(v.error_code == "SignatureDoesNotMatch");
    CHECK_FALSE(v.string_to_sign.empty());
    CHECK(v.message.find("sk") == std::string::npos);

    Request tampered_key = object_request();
    sign(tampered_key, kAkSk, SignOptions{scheme, "cn-hangzhou"}, kNow);
    tampered_key.key = "dir/other";
    tampered_key.path = "/bucket/dir/other";
    CHECK(verify(tampered_key, kServer, "cn-hangzhou", kNow).error_code == "SignatureDoesNotMatch");

    Request tampered_query = object_request();
    sign(tampered_query, kAkSk, SignOptions{scheme, "cn-hangzhou"}, kNow);
    tampered_query.query[0].value = "v2";
    CHECK(verify(tampered_query, kServer, "cn-hangzhou", kNow).error_code == "SignatureDoesNotMatch");

    Request skew = object_request();
    sign(skew, kAkSk, SignOptions{scheme, "cn-hangzhou"}, kNow);
    CHECK(verify(skew, kServer, "cn-hangzhou", kNow + 3600).error_code == "RequestTimeTooSkewed");

    Request unknown = object_request();
    sign(unknown, Credentials{"nobody", "x", ""}, SignOptions{scheme, "cn-hangzhou"}, kNow);
    CHECK(verify(unknown, kServer, "cn-hangzhou", kNow).error_code == "InvalidAccessKeyId");
  }
  Request tampered_header = object_request();
  sign(tampered_header, kAkSk, SignOptions{Scheme::v4, "cn-hangzhou"}, kNow);
  tampered_header.set_header("x-oss-range-behavior", "other");
  CHECK(verify(tampered_header, kServer, "cn-hangzhou", kNow).error_code == "SignatureDoesNotMatch");

  Request region = object_request();
  sign(region, kAkSk, SignOptions{Scheme::v4, "cn-beijing"}, kNow);
  CHECK(verify(region, kServer, "cn-hangzhou", kNow).error_code == "SignatureDoesNotMatch");

  Request expired = object_request();
  presign_v1(expired, kAkSk, kNow - 1);
  CHECK(verify(expired, kServer, "cn-hangzhou", kNow).error_code == "AccessDenied");
  Request expired4 = object_request();
  presign_v4(expired4, kAkSk, V4Scope{"cn-hangzhou"}, kNow, 60);
  CHECK(verify(expired4, kServer, "cn-hangzhou", kNow + 61).error_code == "AccessDenied");

  Request no_token = object_request();
  sign(no_token, Credentials{"sts-ak", "sts-sk", ""}, SignOptions{Scheme::v4, "cn-hangzhou"}, kNow);
  CHECK(verify(no_token, kServer, "cn-hangzhou", kNow).error_code == "InvalidSecurityToken");

  VerifyResult anon = verify(object_request(), kServer, "cn-hangzhou", kNow);
  CHECK(anon.anonymous);
  CHECK_FALSE(anon.ok);
}

TEST_CASE("V4 Authorization with spaces after commas is accepted", "[verify]") {
  Request r = object_request();
  sign(r, kAkSk, SignOptions{Scheme::v4, "cn-hangzhou"}, kNow);
  std::string auth = *r.header("Authorization");
  auth.replace(auth.find(",Signature"), 1, ", ");
  r.set_header("Authorization", auth);
  CHECK(verify(r, kServer, "cn-hangzhou", kNow).ok);
}

TEST_CASE("credentials from the environment", "[credentials]") {
  auto env_of = [](std::map<std::string, std::string> vars) -> EnvLookup {
    return [vars](const std::string& n) -> std::optional<std::string> {
      auto it = vars.find(n);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  };
  auto oss = credentials_from_env(Scheme::v4, env_of({{"OSS_ACCESS_KEY_ID", "id1"},
                                                      {"OSS_ACCESS_KEY_SECRET", "secret1"},
                                                      {"OSS_SESSION_TOKEN", "tok"},
                                                      {"ALIBABA_CLOUD_ACCESS_KEY_ID", "id2"},
                                                      {"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret2"}}));
  REQUIRE(oss.ok());
  CHECK(oss->creds.access_key_id == "id1");
  CHECK(oss->creds.security_token == "tok");
  CHECK(oss->source == "environment (OSS_ACCESS_KEY_ID)");

  auto ali = credentials_from_env(Scheme::v1, env_of({{"ALIBABA_CLOUD_ACCESS_KEY_ID", "id2"},
                                                      {"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret2"}}));
  REQUIRE(ali.ok());
  CHECK(ali->creds.access_key_secret == "secret2");

  auto aws = credentials_from_env(Scheme::s3v4, env_of({{"AWS_ACCESS_KEY_ID", "id3"},
                                                        {"AWS_SECRET_ACCESS_KEY", "secret3"},
                                                        {"OSS_ACCESS_KEY_ID", "id1"},
                                                        {"OSS_ACCESS_KEY_SECRET", "secret1"}}));
  REQUIRE(aws.ok());
  CHECK(aws->creds.access_key_id == "id3");

  auto half = credentials_from_env(Scheme::v4, env_of({{"OSS_ACCESS_KEY_SECRET", "hunter2"}}));
  REQUIRE_FALSE(half.ok());
  CHECK(half.error().to_string().find("OSS_ACCESS_KEY_ID") != std::string::npos);
  CHECK(half.error().to_string().find("hunter2") == std::string::npos);

  auto none = credentials_from_env(Scheme::v4, env_of({}));
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().err == EACCES);
  CHECK(credentials_from_env(Scheme::none, env_of({})).ok());
}
