// Where credentials come from. Static keys from the usual environment variables for now.
#pragma once

#include <optional>
#include <string>

#include "auth/signer.hpp"
#include "util/env.hpp"
#include "util/error.hpp"

namespace ossshim::auth {

struct SourcedCredentials {
  Credentials creds;
  std::string source;  // e.g. "environment (OSS_ACCESS_KEY_ID)" — for messages, never the secret
};

// OSS/V1/V4: OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET/OSS_SESSION_TOKEN, then
// ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/ALIBABA_CLOUD_SECURITY_TOKEN.
// s3v4: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then the OSS ones.
// none: empty credentials. A half-set pair (id without secret) is an error naming the variable.
Result<SourcedCredentials> credentials_from_env(Scheme scheme, const EnvLookup& env);

}  // namespace ossshim::auth
