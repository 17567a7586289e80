// Object operations on OSS (or an S3-compatible store). Knows the API, not files.
// Every method is safe to call from many threads at once; connections are pooled below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/signer.hpp"
#include "config/config.hpp"
#include "util/error.hpp"

namespace ossshim::oss {

struct ObjectInfo {
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag;                    // as sent, with quotes
  std::optional<std::uint64_t> crc64;  // x-oss-hash-crc64ecma, when sent
  std::string object_type;             // "Normal", "Multipart", "Appendable", "Symlink" (empty if unknown)
  std::string content_type;
};

struct ObjectSummary {
  std::string key;  // decoded
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag;
};

struct ListPage {
  std::vector<ObjectSummary> objects;
  std::vector<std::string> common_prefixes;  // decoded, ending with the delimiter
  std::string next_continuation_token;       // empty when not truncated
  bool truncated = false;
};

struct ListRequest {
  std::string prefix;
  std::string delimiter = "/";
  std::string continuation_token;
  std::string start_after;
  int max_keys = 1000;
};

struct PutResult {
  std::string etag;
  std::optional<std::uint64_t> crc64;
};

struct UploadedPart {
  int part_number = 0;
  std::string etag;
  std::uint64_t size = 0;
  std::optional<std::uint64_t> crc64;
};

struct RangeRead {
  std::uint64_t offset = 0;
  std::size_t length = 0;  // bytes wanted; the body lands in `buffer` with no extra copy
  char* buffer = nullptr;
  std::string if_match;  // ETag recorded at open; empty: unconditional
};

class Client {
 public:
  // Creates a client for the configured endpoint. Credentials are taken as given.
  static Result<std::unique_ptr<Client>> create(const Config& config, auth::Credentials creds);
  virtual ~Client() = default;

  virtual Result<ObjectInfo> head_object(const std::string& bucket, const std::string& key) = 0;
  // Reads [offset, offset+length) into buffer; returns bytes stored (short only at end of object).
  // Sends Range and x-oss-range-behavior: standard; a 200 to a range request is an error.
  // If-Match mismatch -> Error{err=ESTALE, code="PreconditionFailed"}.
  virtual Result<std::size_t> get_range(const std::string& bucket, const std::string& key,
                                        const RangeRead& read, ObjectInfo* info = nullptr) = 0;
  virtual Result<ListPage> list_objects(const std::string& bucket, const ListRequest& req) = 0;
  virtual Result<PutResult> put_object(const std::string& bucket, const std::string& key,
                                       std::string_view body) = 0;
  virtual Status delete_object(const std::string& bucket, const std::string& key) = 0;
  virtual Result<PutResult> copy_object(const std::string& src_bucket, const std::string& src_key,
                                        const std::string& dst_bucket, const std::string& dst_key) = 0;

  // Multipart
  virtual Result<std::string> initiate_multipart(const std::string& bucket, const std::string& key) = 0;
  virtual Result<UploadedPart> upload_part(const std::string& bucket, const std::string& key,
                                           const std::string& upload_id, int part_number,
                                           std::string_view body) = 0;
  virtual Result<PutResult> complete_multipart(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id,
                                               const std::vector<UploadedPart>& parts) = 0;
  virtual Status abort_multipart(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id) = 0;
  virtual Result<std::vector<UploadedPart>> list_parts(const std::string& bucket, const std::string& key,
                                                       const std::string& upload_id) = 0;
};

}  // namespace ossshim::oss
