// A protocol-level HTTP request as signers, the client and the emulator all see it.
// Keys and query values are kept decoded; encoding happens where the wire form is made.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ossshim {

struct Header {
  std::string name;
  std::string value;
};

struct QueryParam {
  std::string name;   // decoded
  std::string value;  // decoded; empty means a bare "name" (e.g. "?uploads")
};

struct Request {
  std::string method;  // "GET", "PUT", ...
  std::string bucket;  // empty for service-level requests
  std::string key;     // raw object key, unescaped; empty for bucket-level requests
  std::vector<QueryParam> query;
  std::vector<Header> headers;
  // Wire addressing, filled by whoever chooses virtual-hosted or path style.
  std::string host;  // Host header value, e.g. "bucket.oss-cn-hangzhou.aliyuncs.com" or "127.0.0.1:9000"
  std::string path;  // escaped request path as sent, e.g. "/bucket/a%20b"

  // Case-insensitive header lookup; nullptr when absent.
  const std::string* header(std::string_view name) const;
  // Replace (case-insensitively) or add a header.
  void set_header(std::string_view name, std::string_view value);
  void remove_header(std::string_view name);
  // First query parameter with this exact name; nullptr when absent.
  const QueryParam* query_param(std::string_view name) const;
};

}  // namespace ossshim
