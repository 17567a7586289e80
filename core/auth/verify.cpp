#include "auth/verify.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>

#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossshim::auth {

namespace {

bool same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// "k1=v1,k2=v2" or "k1=v1, k2=v2" -> value of key, empty if absent.
std::string field(std::string_view params, std::string_view key) {
  while (!params.empty()) {
    std::size_t comma = params.find(',');
    std::string_view part = util::trim(params.substr(0, comma));
    if (part.starts_with(key) && part.size() > key.size() && part[key.size()] == '=')
      return std::string(part.substr(key.size() + 1));
    if (comma == std::string_view::npos) break;
    params.remove_prefix(comma + 1);
  }
  return {};
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    std::size_t p = s.find(sep);
    out.emplace_back(s.substr(0, p));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

VerifyResult fail(VerifyResult r, std::string code, std::string message) {
  r.ok = false;
  r.error_code = std::move(code);
  r.message = std::move(message);
  return r;
}

// Looks up the key and, for STS keys, that the request carries the expected token.
bool lookup(VerifyResult& r, const SecretLookup& secret_for, const std::string& ak, const std::string* token,
            Credentials& creds) {
  r.access_key_id = ak;
  auto found = secret_for(ak);
  if (!found) {
    r = fail(r, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.");
    return false;
  }
  creds = *found;
  if (!creds.security_token.empty() && (!token || *token != creds.security_token)) {
    r = fail(r, "InvalidSecurityToken", "The security token you provided is invalid.");
    return false;
  }
  return true;
}

bool skewed(std::optional<std::time_t> t, std::time_t now, int max_skew) {
  return !t || std::llabs(static_cast<long long>(*t - now)) > max_skew;
}

VerifyResult verify_v1(const Request& req, const std::string& auth, const SecretLookup& secret_for,
                       std::time_t now, int max_skew) {
  VerifyResult r;
  r.scheme = Scheme::v1;
  std::string rest = auth.substr(4);
  std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return fail(r, "InvalidArgument", "malformed OSS Authorization header");
  Credentials creds;
  if (!lookup(r, secret_for, rest.substr(0, colon), req.header("x-oss-security-token"), creds)) return r;
  // Clients that cannot set Date (browsers, ali-oss) sign x-oss-date in its place; when both are
  // sent, x-oss-date is the one signed (the SDK vectors carry the same value in both).
  const std::string* oss_date = req.header("x-oss-date");
  const std::string* date = oss_date ? oss_date : req.header("Date");
  if (!date) return fail(r, "AccessDenied", "missing Date or x-oss-date header");
  if (skewed(util::parse_rfc1123(oss_date ? *oss_date : *date), now, max_skew))
    return fail(r, "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.");
  r.string_to_sign = v1_string_to_sign(req, *date);
  if (!same(v1_signature(creds.access_key_secret, r.string_to_sign), rest.substr(colon + 1)))
    return fail(r, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.");
  r.ok = true;
  return r;
}

VerifyResult verify_v1_query(const Request& req, const SecretLookup& secret_for, std::time_t now) {
  VerifyResult r;
  r.scheme = Scheme::v1;
  const QueryParam* ak = req.query_param("OSSAccessKeyId");
  const QueryParam* expires = req.query_param("Expires");
  const QueryParam* sig = req.query_param("Signature");
  if (!expires || !sig) return fail(r, "InvalidArgument", "presigned URL lacks Expires or Signature");
  const QueryParam* token = req.query_param("security-token");
  Credentials creds;
  if (!lookup(r, secret_for, ak->value, token ? &token->value : nullptr, creds)) return r;
  char* end = nullptr;
  long long exp = std::strtoll(expires->value.c_str(), &end, 10);
  if (end == expires->value.c_str() || *end != '\0')
    return fail(r, "InvalidArgument", "Expires is not a number");
  if (exp < now) return fail(r, "AccessDenied", "Request has expired.");
  Request unsigned_req = req;
  std::erase_if(unsigned_req.query, [](const QueryParam& q) {
    return q.name == "OSSAccessKeyId" || q.name == "Expires" || q.name == "Signature";
  });
  r.string_to_sign = v1_string_to_sign(unsigned_req, expires->value);
  if (!same(v1_signature(creds.access_key_secret, r.string_to_sign), sig->value))
    return fail(r, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.");
  r.ok = true;
  return r;
}

// Common V4 tail for header and query forms.
VerifyResult verify_v4_parts(const Request& req, const std::string& credential, const std::string& additional,
                             const std::string& signature, const std::string& datetime,
                             const std::string* token, const SecretLookup& secret_for,
                             const std::string& region, std::time_t now, int max_skew) {
  VerifyResult r;
  r.scheme = Scheme::v4;
  std::vector<std::string> cred = split(credential, '/');
  if (cred.size() != 5 || cred[4] != "aliyun_v4_request")
    return fail(r, "InvalidArgument", "malformed V4 Credential '" + cred[0] + "/...'");
  Credentials creds;
  if (!lookup(r, secret_for, cred[0], token, creds)) return r;
  auto when = util::parse_iso8601_basic(datetime);
  if (skewed(when, now, max_skew))
    return fail(r, "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.");
  if (datetime.substr(0, 8) != cred[1])
    return fail(r, "SignatureDoesNotMatch",
                "credential date " + cred[1] + " does not match x-oss-date " + datetime);
  if (!region.empty() && cred[2] != region)
    return fail(r, "SignatureDoesNotMatch",
                "credential region '" + cred[2] + "' is not this server's region '" + region + "'");
  V4Scope scope{cred[2], cred[3]};
  std::vector<std::string> extra = additional.empty() ? std::vector<std::string>{} : split(additional, ';');
  std::string scope_str = cred[1] + "/" + cred[2] + "/" + cred[3] + "/aliyun_v4_request";
  r.string_to_sign = v4_string_to_sign(datetime, scope_str, v4_canonical_request(req, extra));
  if (!same(v4_signature(creds.access_key_secret, cred[1], scope, r.string_to_sign), signature))
    return fail(r, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.");
  r.ok = true;
  return r;
}

VerifyResult verify_s3v4(const Request& req, const std::string& params, const SecretLookup& secret_for,
                         std::time_t now, int max_skew) {
  VerifyResult r;
  r.scheme = Scheme::s3v4;
  std::vector<std::string> cred = split(field(params, "Credential"), '/');
  std::string signed_headers = field(params, "SignedHeaders");
  std::string signature = field(params, "Signature");
  if (cred.size() != 5 || signed_headers.empty() || signature.empty())
    return fail(r, "InvalidArgument", "malformed AWS4-HMAC-SHA256 Authorization header");
  Credentials creds;
  if (!lookup(r, secret_for, cred[0], req.header("x-amz-security-token"), creds)) return r;
  const std::string* datetime = req.header("x-amz-date");
  if (!datetime) return fail(r, "AccessDenied", "missing x-amz-date header");
  if (skewed(util::parse_iso8601_basic(*datetime), now, max_skew))
    return fail(r, "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.");
  const std::string* payload = req.header("x-amz-content-sha256");
  std::string payload_hash = payload ? *payload : util::hex_lower(util::sha256(""));
  std::string scope = cred[1] + "/" + cred[2] + "/" + cred[3] + "/" + cred[4];
  r.string_to_sign =
      "AWS4-HMAC-SHA256\n" + *datetime + "\n" + scope + "\n" +
      util::hex_lower(util::sha256(s3v4_canonical_request(req, split(signed_headers, ';'), payload_hash)));
  if (!same(s3v4_signature(creds.access_key_secret, cred[1], cred[2], cred[3], r.string_to_sign), signature))
    return fail(r, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.");
  r.ok = true;
  return r;
}

}  // namespace

VerifyResult verify(const Request& req, const SecretLookup& secret_for, const std::string& region,
                    std::time_t now, int max_skew_seconds) {
  const std::string* auth = req.header("Authorization");
  if (auth && auth->starts_with("OSS ")) return verify_v1(req, *auth, secret_for, now, max_skew_seconds);
  if (auth && auth->starts_with("OSS4-HMAC-SHA256 ")) {
    std::string params = auth->substr(17);
    const std::string* datetime = req.header("x-oss-date");
    if (!datetime) return fail(VerifyResult{}, "AccessDenied", "missing x-oss-date header");
    return verify_v4_parts(req, field(params, "Credential"), field(params, "AdditionalHeaders"),
                           field(params, "Signature"), *datetime, req.header("x-oss-security-token"),
                           secret_for, region, now, max_skew_seconds);
  }
  if (auth && auth->starts_with("AWS4-HMAC-SHA256 "))
    return verify_s3v4(req, auth->substr(17), secret_for, now, max_skew_seconds);
  if (auth) return fail(VerifyResult{}, "InvalidArgument", "unsupported Authorization scheme");

  if (req.query_param("OSSAccessKeyId")) return verify_v1_query(req, secret_for, now);
  if (const QueryParam* version = req.query_param("x-oss-signature-version")) {
    if (version->value != "OSS4-HMAC-SHA256")
      return fail(VerifyResult{}, "InvalidArgument", "unsupported x-oss-signature-version");
    auto get = [&](const char* n) {
      const QueryParam* q = req.query_param(n);
      return q ? q->value : std::string();
    };
    std::string datetime = get("x-oss-date");
    long long expires = std::atoll(get("x-oss-expires").c_str());
    auto when = util::parse_iso8601_basic(datetime);
    if (when && *when + expires < now) return fail(VerifyResult{}, "AccessDenied", "Request has expired.");
    const QueryParam* token = req.query_param("x-oss-security-token");
    if (when && *when > now + max_skew_seconds)
      return fail(VerifyResult{}, "RequestTimeTooSkewed", "presigned URL is signed in the future");
    // Presigned URLs are checked for expiry above, not for skew: verify as of the signing time.
    return verify_v4_parts(req, get("x-oss-credential"), get("x-oss-additional-headers"),
                           get("x-oss-signature"), datetime, token ? &token->value : nullptr, secret_for,
                           region, when ? *when : now, max_skew_seconds);
  }
  VerifyResult r;
  r.anonymous = true;
  r.ok = false;
  r.error_code = "AccessDenied";
  r.message = "Anonymous access is forbidden for this operation.";
  return r;
}

}  // namespace ossshim::auth
