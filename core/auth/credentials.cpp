#include "auth/credentials.hpp"

#include <cerrno>
#include <vector>

namespace ossshim::auth {

namespace {
struct EnvNames {
  const char* id;
  const char* secret;
  const char* token;
};

// Returns true and fills `out` when `names.id` is set; a half-set pair is an error.
Result<bool> try_names(const EnvLookup& env, const EnvNames& names, SourcedCredentials& out) {
  auto id = env(names.id);
  auto secret = env(names.secret);
  bool has_id = id && !id->empty();
  bool has_secret = secret && !secret->empty();
  if (!has_id && !has_secret) return false;
  if (has_id != has_secret) {
    Error e;
    e.err = EINVAL;
    e.op = "credentials";
    e.target = has_id ? names.secret : names.id;
    e.message = std::string(has_id ? names.id : names.secret) + " is set but " +
                (has_id ? names.secret : names.id) + " is not; set both or neither";
    return e;
  }
  out.creds.access_key_id = *id;
  out.creds.access_key_secret = *secret;
  auto token = env(names.token);
  out.creds.security_token = token ? *token : "";
  out.source = std::string("environment (") + names.id + ")";
  return true;
}
}  // namespace

Result<SourcedCredentials> credentials_from_env(Scheme scheme, const EnvLookup& env) {
  SourcedCredentials out;
  if (scheme == Scheme::none) {
    out.source = "anonymous (signature none)";
    return out;
  }
  static const EnvNames kOss{"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"};
  static const EnvNames kAlibaba{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                 "ALIBABA_CLOUD_SECURITY_TOKEN"};
  static const EnvNames kAws{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"};
  std::vector<const EnvNames*> order;
  if (scheme == Scheme::s3v4) order.push_back(&kAws);
  order.push_back(&kOss);
  order.push_back(&kAlibaba);
  for (const EnvNames* names : order) {
    auto found = try_names(env, *names, out);
    if (!found) return found.error();
    if (*found) return out;
  }
  Error e;
  e.err = EACCES;
  e.op = "credentials";
  e.target = "environment";
  e.message = std::string("no credentials: set ") +
              (scheme == Scheme::s3v4 ? "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or " : "") +
              "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET (or ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET), or "
              "OSSSHIM_SIGNATURE=none for public buckets";
  return e;
}

}  // namespace ossshim::auth
