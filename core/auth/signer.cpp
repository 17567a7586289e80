#include "auth/signer.hpp"

#include <algorithm>
#include <set>

#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossshim::auth {

namespace {

using util::to_lower;

// Query names that are part of the V1 canonical resource: the union of the Go v2 and C++ SDK lists.
// Any name starting with "x-oss-" is signed too.
const std::set<std::string, std::less<>>& v1_subresources() {
  static const std::set<std::string, std::less<>> names = {"acl",
                                                           "bucketInfo",
                                                           "location",
                                                           "stat",
                                                           "delete",
                                                           "append",
                                                           "tagging",
                                                           "objectMeta",
                                                           "uploads",
                                                           "uploadId",
                                                           "partNumber",
                                                           "security-token",
                                                           "position",
                                                           "response-content-type",
                                                           "response-content-language",
                                                           "response-expires",
                                                           "response-cache-control",
                                                           "response-content-disposition",
                                                           "response-content-encoding",
                                                           "restore",
                                                           "callback",
                                                           "callback-var",
                                                           "versions",
                                                           "versioning",
                                                           "versionId",
                                                           "sequential",
                                                           "continuation-token",
                                                           "regionList",
                                                           "cloudboxes",
                                                           "symlink",
                                                           "referer",
                                                           "cors",
                                                           "website",
                                                           "logging",
                                                           "qos",
                                                           "lifecycle",
                                                           "live",
                                                           "status",
                                                           "comp",
                                                           "vod",
                                                           "startTime",
                                                           "endTime",
                                                           "x-oss-process",
                                                           "policy",
                                                           "requestPayment",
                                                           "x-oss-traffic-limit",
                                                           "encryption",
                                                           "qosInfo",
                                                           "x-oss-request-payer",
                                                           "inventory",
                                                           "inventoryId",
                                                           "worm",
                                                           "wormId",
                                                           "wormExtend"};
  return names;
}

std::string header_or_empty(const Request& req, std::string_view name) {
  const std::string* v = req.header(name);
  return v ? std::string(util::trim(*v)) : std::string();
}

// Lower-cased name -> trimmed value, multiple values joined with ','. Sorted by name.
std::vector<std::pair<std::string, std::string>> lowered_headers(const Request& req) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : req.headers) {
    std::string name = to_lower(util::trim(h.name));
    std::string value(util::trim(h.value));
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == name; });
    if (it != out.end())
      it->second += "," + value;
    else
      out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string v4_canonical_uri(const Request& req) {
  std::string uri = "/";
  if (!req.bucket.empty()) uri += req.bucket + "/" + req.key;
  return util::uri_encode(uri, true);
}

// Every parameter encoded, sorted by encoded name; `bare_empty` writes "name" instead of "name=".
std::string canonical_query(const std::vector<QueryParam>& query, bool bare_empty,
                            std::string_view skip = {}) {
  std::vector<std::pair<std::string, std::string>> enc;
  for (const auto& q : query) {
    if (!skip.empty() && q.name == skip) continue;
    enc.emplace_back(util::uri_encode(q.name, false), util::uri_encode(q.value, false));
  }
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [name, value] : enc) {
    if (!out.empty()) out += '&';
    out += name;
    if (!value.empty() || !bare_empty) out += "=" + value;
  }
  return out;
}

bool v4_signed_by_default(std::string_view lower_name) {
  return lower_name.starts_with("x-oss-") || lower_name == "content-type" || lower_name == "content-md5";
}

std::string v4_scope_string(std::string_view yyyymmdd, const V4Scope& scope) {
  return std::string(yyyymmdd) + "/" + scope.region + "/" + scope.product + "/aliyun_v4_request";
}

std::string join(const std::vector<std::string>& parts, char sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- V1

std::string v1_string_to_sign(const Request& req, std::string_view date_line,
                              const std::vector<std::string>& extra_subresources) {
  std::string s = req.method + "\n";
  s += header_or_empty(req, "Content-MD5") + "\n";
  s += header_or_empty(req, "Content-Type") + "\n";
  s += std::string(date_line) + "\n";
  for (const auto& [name, value] : lowered_headers(req))
    if (name.starts_with("x-oss-")) s += name + ":" + value + "\n";

  s += "/";
  if (!req.bucket.empty()) s += req.bucket + "/" + req.key;
  std::vector<std::pair<std::string, std::string>> sub;
  for (const auto& q : req.query) {
    bool extra =
        std::find(extra_subresources.begin(), extra_subresources.end(), q.name) != extra_subresources.end();
    if (v1_subresources().count(q.name) || q.name.starts_with("x-oss-") || extra)
      sub.emplace_back(q.name, q.value);
  }
  std::sort(sub.begin(), sub.end());
  for (std::size_t i = 0; i < sub.size(); ++i) {
    s += (i == 0 ? "?" : "&") + sub[i].first;
    if (!sub[i].second.empty()) s += "=" + sub[i].second;
  }
  return s;
}

std::string v1_signature(std::string_view secret, std::string_view string_to_sign) {
  return util::base64_encode(util::hmac_sha1(secret, string_to_sign));
}

void sign_v1(Request& req, const Credentials& creds, std::time_t now) {
  req.set_header("Date", util::format_rfc1123(now));  // fresh on every (re)sign
  if (!creds.security_token.empty()) req.set_header("x-oss-security-token", creds.security_token);
  std::string sts = v1_string_to_sign(req, *req.header("Date"));
  req.set_header("Authorization",
                 "OSS " + creds.access_key_id + ":" + v1_signature(creds.access_key_secret, sts));
}

void presign_v1(Request& req, const Credentials& creds, std::time_t expires) {
  if (!creds.security_token.empty()) req.query.push_back({"security-token", creds.security_token});
  std::string sts = v1_string_to_sign(req, std::to_string(expires));
  req.query.push_back({"OSSAccessKeyId", creds.access_key_id});
  req.query.push_back({"Expires", std::to_string(expires)});
  req.query.push_back({"Signature", v1_signature(creds.access_key_secret, sts)});
}

// ---------------------------------------------------------------- V4

std::vector<std::string> v4_additional_headers(const Request& req, const std::vector<std::string>& wanted) {
  std::vector<std::string> out;
  for (const auto& w : wanted) {
    std::string name = to_lower(util::trim(w));
    if (name.empty() || v4_signed_by_default(name) || !req.header(name)) continue;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string v4_canonical_request(const Request& req, const std::vector<std::string>& additional_headers) {
  std::string s = req.method + "\n";
  s += v4_canonical_uri(req) + "\n";
  s += canonical_query(req.query, true, "x-oss-signature") + "\n";
  for (const auto& [name, value] : lowered_headers(req)) {
    bool additional =
        std::find(additional_headers.begin(), additional_headers.end(), name) != additional_headers.end();
    if (v4_signed_by_default(name) || additional) s += name + ":" + value + "\n";
  }
  s += "\n";
  s += join(additional_headers, ';') + "\n";
  const std::string* payload = req.header("x-oss-content-sha256");
  s += payload ? std::string(util::trim(*payload)) : std::string("UNSIGNED-PAYLOAD");
  return s;
}

std::string v4_string_to_sign(std::string_view iso_datetime, std::string_view scope,
                              std::string_view canonical_request) {
  return "OSS4-HMAC-SHA256\n" + std::string(iso_datetime) + "\n" + std::string(scope) + "\n" +
         util::hex_lower(util::sha256(canonical_request));
}

std::string v4_signature(std::string_view secret, std::string_view yyyymmdd, const V4Scope& scope,
                         std::string_view string_to_sign) {
  std::string key = util::hmac_sha256("aliyun_v4" + std::string(secret), yyyymmdd);
  key = util::hmac_sha256(key, scope.region);
  key = util::hmac_sha256(key, scope.product);
  key = util::hmac_sha256(key, "aliyun_v4_request");
  return util::hex_lower(util::hmac_sha256(key, string_to_sign));
}

void sign_v4(Request& req, const Credentials& creds, const V4Scope& scope, std::time_t now,
             const std::vector<std::string>& additional_headers) {
  std::string datetime = util::format_iso8601_basic(now);
  std::string date = datetime.substr(0, 8);
  req.set_header("x-oss-date", datetime);
  if (!req.header("x-oss-content-sha256")) req.set_header("x-oss-content-sha256", "UNSIGNED-PAYLOAD");
  if (!creds.security_token.empty()) req.set_header("x-oss-security-token", creds.security_token);
  std::vector<std::string> additional = v4_additional_headers(req, additional_headers);
  std::string scope_str = v4_scope_string(date, scope);
  std::string sts = v4_string_to_sign(datetime, scope_str, v4_canonical_request(req, additional));
  std::string auth = "OSS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope_str;
  if (!additional.empty()) auth += ",AdditionalHeaders=" + join(additional, ';');
  auth += ",Signature=" + v4_signature(creds.access_key_secret, date, scope, sts);
  req.set_header("Authorization", auth);
}

void presign_v4(Request& req, const Credentials& creds, const V4Scope& scope, std::time_t now,
                int expires_seconds, const std::vector<std::string>& additional_headers) {
  std::string datetime = util::format_iso8601_basic(now);
  std::string date = datetime.substr(0, 8);
  std::vector<std::string> additional = v4_additional_headers(req, additional_headers);
  std::string scope_str = v4_scope_string(date, scope);
  req.query.push_back({"x-oss-signature-version", "OSS4-HMAC-SHA256"});
  req.query.push_back({"x-oss-date", datetime});
  req.query.push_back({"x-oss-expires", std::to_string(expires_seconds)});
  req.query.push_back({"x-oss-credential", creds.access_key_id + "/" + scope_str});
  if (!additional.empty()) req.query.push_back({"x-oss-additional-headers", join(additional, ';')});
  if (!creds.security_token.empty()) req.query.push_back({"x-oss-security-token", creds.security_token});
  std::string sts = v4_string_to_sign(datetime, scope_str, v4_canonical_request(req, additional));
  req.query.push_back({"x-oss-signature", v4_signature(creds.access_key_secret, date, scope, sts)});
}

// ---------------------------------------------------------------- AWS SigV4

std::string s3v4_canonical_request(const Request& req, const std::vector<std::string>& signed_headers,
                                   std::string_view payload_hash) {
  std::string s = req.method + "\n";
  s += (req.path.empty() ? std::string("/") : req.path) + "\n";
  s += canonical_query(req.query, false, "X-Amz-Signature") + "\n";
  auto lowered = lowered_headers(req);
  for (const auto& name : signed_headers) {
    std::string value;
    if (name == "host" && !req.header("host")) {
      value = req.host;
    } else {
      for (const auto& [n, v] : lowered)
        if (n == name) value = v;
    }
    // SigV4 collapses runs of spaces inside values.
    std::string collapsed;
    for (char c : value)
      if (!(c == ' ' && !collapsed.empty() && collapsed.back() == ' ')) collapsed += c;
    s += name + ":" + collapsed + "\n";
  }
  // Appended piece by piece: GCC 12 -O3 warns falsely (-Wrestrict) on "\n" + std::string&&.
  s += '\n';
  s += join(signed_headers, ';');
  s += '\n';
  s += payload_hash;
  return s;
}

std::string s3v4_signature(std::string_view secret, std::string_view yyyymmdd, std::string_view region,
                           std::string_view service, std::string_view string_to_sign) {
  std::string key = util::hmac_sha256("AWS4" + std::string(secret), yyyymmdd);
  key = util::hmac_sha256(key, region);
  key = util::hmac_sha256(key, service);
  key = util::hmac_sha256(key, "aws4_request");
  return util::hex_lower(util::hmac_sha256(key, string_to_sign));
}

void sign_s3v4(Request& req, const Credentials& creds, std::string_view region, std::time_t now,
               std::string_view payload_hash) {
  std::string datetime = util::format_iso8601_basic(now);
  std::string date = datetime.substr(0, 8);
  req.set_header("x-amz-date", datetime);
  req.set_header("x-amz-content-sha256", payload_hash);
  if (!creds.security_token.empty()) req.set_header("x-amz-security-token", creds.security_token);
  std::vector<std::string> signed_headers = {"host"};
  for (const auto& h : req.headers) {
    std::string name = to_lower(h.name);
    if ((name.starts_with("x-amz-") || name == "content-type" || name == "content-md5" || name == "range") &&
        std::find(signed_headers.begin(), signed_headers.end(), name) == signed_headers.end())
      signed_headers.push_back(name);
  }
  std::sort(signed_headers.begin(), signed_headers.end());
  std::string scope = date + "/" + std::string(region) + "/s3/aws4_request";
  std::string sts = "AWS4-HMAC-SHA256\n" + datetime + "\n" + scope + "\n" +
                    util::hex_lower(util::sha256(s3v4_canonical_request(req, signed_headers, payload_hash)));
  req.set_header("Authorization", "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                                      ", SignedHeaders=" + join(signed_headers, ';') + ", Signature=" +
                                      s3v4_signature(creds.access_key_secret, date, region, "s3", sts));
}

void sign(Request& req, const Credentials& creds, const SignOptions& opts, std::time_t now) {
  switch (opts.scheme) {
    case Scheme::v1:
      sign_v1(req, creds, now);
      break;
    case Scheme::v4:
      sign_v4(req, creds, V4Scope{opts.region, "oss"}, now);
      break;
    case Scheme::s3v4:
      sign_s3v4(req, creds, opts.region, now);
      break;
    case Scheme::none:
      break;
  }
}

}  // namespace ossshim::auth
