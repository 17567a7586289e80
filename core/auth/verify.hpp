// Server-side verification of a signed request (used by the emulator), by recomputing the
// signature with the same code that signs. Handles header and query forms of V1, V4 and SigV4.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>

#include "auth/signer.hpp"

namespace ossshim::auth {

struct VerifyResult {
  bool ok = false;
  bool anonymous = false;  // no signature of any kind on the request
  Scheme scheme = Scheme::none;
  std::string access_key_id;
  std::string error_code;      // "SignatureDoesNotMatch", "InvalidAccessKeyId", "RequestTimeTooSkewed",
                               // "AccessDenied" (expired presign), "InvalidArgument" (malformed header)
  std::string message;         // human detail, never the secret
  std::string string_to_sign;  // what the server computed, returned to clients in the error body
};

// secret_for(access_key_id) returns the secret (and expected token, if any) or nullopt if unknown.
using SecretLookup = std::function<std::optional<Credentials>(const std::string& access_key_id)>;

// region: the region the server serves (V4 credential scope must match).
VerifyResult verify(const Request& req, const SecretLookup& secret_for, const std::string& region,
                    std::time_t now, int max_skew_seconds = 900);

}  // namespace ossshim::auth
