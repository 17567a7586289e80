// One error type for every layer: what failed, where, and why, printable as one line.
// It never holds a secret: signers and transports must not put credentials in it.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace ossshim {

struct Error {
  int err = 0;             // errno a local file system would give (ENOENT, EACCES, EIO, ...)
  std::string op;          // "HeadObject", "GetObject", "config", ...
  std::string target;      // "oss://bucket/key", a file path, a config key
  int http_status = 0;     // 0 when no HTTP response was received
  std::string code;        // OSS error code ("NoSuchKey") or a transport reason ("connect timeout")
  std::string message;     // human detail
  std::string request_id;  // x-oss-request-id when known

  // "GetObject oss://b/k: HTTP 404 NoSuchKey (The specified key does not exist.) request-id 5F.. [ENOENT]"
  std::string to_string() const;
};

// Either a value or an Error. Small on purpose: no exceptions cross the shim boundary.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() {
  return Unit{};
}

}  // namespace ossshim
