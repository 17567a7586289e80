// Request signers: OSS V1 (HMAC-SHA1), OSS V4 (OSS4-HMAC-SHA256), AWS SigV4 (S3-compatible).
// The same functions compute a signature for the client and recompute it in the emulator,
// so both sides share one implementation, checked against the official vectors.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "util/request.hpp"

namespace ossshim::auth {

struct Credentials {
  std::string access_key_id;
  std::string access_key_secret;
  std::string security_token;  // STS; empty for long-term keys
  bool empty() const { return access_key_id.empty() || access_key_secret.empty(); }
};

enum class Scheme { v1, v4, s3v4, none };

// ---- OSS V1 ----
// extra_subresources: query names the caller declares signed beyond the built-in list.
std::string v1_string_to_sign(const Request& req, std::string_view date_line,
                              const std::vector<std::string>& extra_subresources = {});
std::string v1_signature(std::string_view secret, std::string_view string_to_sign);  // base64
// Sets Date (RFC 1123 of now, unless present), x-oss-security-token, Authorization.
void sign_v1(Request& req, const Credentials& creds, std::time_t now);
// Query form: adds OSSAccessKeyId, Expires, Signature (and security-token).
void presign_v1(Request& req, const Credentials& creds, std::time_t expires);

// ---- OSS V4 ----
struct V4Scope {
  std::string region;           // bare region id, "cn-hangzhou"
  std::string product = "oss";  // "oss-cloudbox" for CloudBox
};
// additional_headers: lower-cased, sorted, present-in-request, not already signed by default.
std::string v4_canonical_request(const Request& req, const std::vector<std::string>& additional_headers);
std::string v4_string_to_sign(std::string_view iso_datetime, std::string_view scope,
                              std::string_view canonical_request);
std::string v4_signature(std::string_view secret, std::string_view yyyymmdd, const V4Scope& scope,
                         std::string_view string_to_sign);  // lowercase hex
// Filters and normalises a caller's list of additional headers as the V4 rules say.
std::vector<std::string> v4_additional_headers(const Request& req, const std::vector<std::string>& wanted);
// Sets x-oss-date, x-oss-content-sha256 (UNSIGNED-PAYLOAD unless present), token, Authorization.
void sign_v4(Request& req, const Credentials& creds, const V4Scope& scope, std::time_t now,
             const std::vector<std::string>& additional_headers = {});
void presign_v4(Request& req, const Credentials& creds, const V4Scope& scope, std::time_t now,
                int expires_seconds, const std::vector<std::string>& additional_headers = {});

// ---- AWS SigV4 (service "s3") ----
// Uses req.path (the escaped request path as sent) and req.host. Signs host, x-amz-* and,
// when present, content-type, content-md5 and range.
std::string s3v4_canonical_request(const Request& req, const std::vector<std::string>& signed_headers,
                                   std::string_view payload_hash);
std::string s3v4_signature(std::string_view secret, std::string_view yyyymmdd, std::string_view region,
                           std::string_view service, std::string_view string_to_sign);
// Sets x-amz-date, x-amz-content-sha256 (payload_hash), x-amz-security-token, Authorization.
void sign_s3v4(Request& req, const Credentials& creds, std::string_view region, std::time_t now,
               std::string_view payload_hash = "UNSIGNED-PAYLOAD");

// One entry point for the client.
struct SignOptions {
  Scheme scheme = Scheme::v4;
  std::string region;
};
void sign(Request& req, const Credentials& creds, const SignOptions& opts, std::time_t now);

}  // namespace ossshim::auth
