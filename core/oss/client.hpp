// Object operations on OSS (or an S3-compatible store). Knows the API, not files.
// Every method is safe to call from many threads at once; connections are pooled below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
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
  std::string type;  // "Normal", "Multipart", "Appendable", "Symlink" (OSS); empty from S3
};

// A symlink object (GetSymlink): the key it points at, in the same bucket.
struct SymlinkInfo {
  std::string target;  // decoded
  std::string etag;
  std::time_t mtime = 0;
};

// Error::code a HEAD/GET of a symlink object gets when its target is missing (404) or is not a
// plain object (400): the key exists, as a link.
inline constexpr char kSymlinkTargetMissing[] = "SymlinkTargetNotExist";
inline constexpr char kSymlinkTargetInvalid[] = "InvalidTargetType";

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

// Options of the calls that create an object.
// Error::code of an upload whose stored CRC64 (x-oss-hash-crc64ecma) differs from the bytes
// sent (PutObject, UploadPart, CompleteMultipartUpload): the object may be stored, wrong.
inline constexpr char kCrcMismatch[] = "CRC64Mismatch";

struct WriteOptions {
  // Fail with EEXIST instead of replacing an existing object: x-oss-forbid-overwrite: true (OSS,
  // 409 FileAlreadyExists), or If-None-Match: * with signature s3v4 (412 PreconditionFailed).
  bool forbid_overwrite = false;
};

// An incomplete multipart upload, as ListMultipartUploads reports it.
struct MultipartUpload {
  std::string key;  // decoded
  std::string upload_id;
  std::time_t initiated = 0;
};

struct RangeRead {
  std::uint64_t offset = 0;
  std::size_t length = 0;  // bytes wanted; the body lands in `buffer` with no extra copy
  char* buffer = nullptr;
  std::string if_match;  // ETag recorded at open; empty: unconditional
  // Instead of `buffer`: each piece of the body at its offset within the range (restarting at 0
  // when a retry starts over); false aborts with errno (for writing straight into a file).
  std::function<bool(const char* data, std::size_t len, std::size_t at)> write = nullptr;
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
  // Sends Content-MD5 (the server verifies the body) and checks the x-oss-hash-crc64ecma the
  // server returns against the body's CRC64 (mismatch: EIO "upload integrity: CRC64 mismatch").
  virtual Result<PutResult> put_object(const std::string& bucket, const std::string& key,
                                       std::string_view body, const WriteOptions& options = {}) = 0;
  virtual Status delete_object(const std::string& bucket, const std::string& key) = 0;
  // PutSymlink: `key` becomes a link to `target` (a key of the same bucket). OSS only: with
  // signature s3v4 it fails with EPERM (S3 has no symlink objects).
  virtual Result<PutResult> put_symlink(const std::string& bucket, const std::string& key,
                                        const std::string& target, const WriteOptions& options = {}) = 0;
  // GetSymlink: what `key` points at; EINVAL (400 NotSymlink) when it is not a link.
  virtual Result<SymlinkInfo> get_symlink(const std::string& bucket, const std::string& key) = 0;
  virtual Result<PutResult> copy_object(const std::string& src_bucket, const std::string& src_key,
                                        const std::string& dst_bucket, const std::string& dst_key,
                                        const WriteOptions& options = {}) = 0;

  // Multipart
  // forbid_overwrite is checked here already on OSS (S3 checks it only at completion).
  virtual Result<std::string> initiate_multipart(const std::string& bucket, const std::string& key,
                                                 const WriteOptions& options = {}) = 0;
  // Content-MD5 and the part's CRC64 are checked as for put_object; the result carries the CRC64.
  virtual Result<UploadedPart> upload_part(const std::string& bucket, const std::string& key,
                                           const std::string& upload_id, int part_number,
                                           std::string_view body) = 0;
  // Part `part_number` = bytes [first, last] (inclusive) of src_bucket/src_key, copied by the server.
  // src_if_match: the source's ETag; a changed source fails with ESTALE (412 PreconditionFailed).
  // The part's crc64 is the server's when it sends one.
  virtual Result<UploadedPart> upload_part_copy(const std::string& bucket, const std::string& key,
                                                const std::string& upload_id, int part_number,
                                                const std::string& src_bucket, const std::string& src_key,
                                                std::uint64_t first, std::uint64_t last,
                                                const std::string& src_if_match = "") = 0;
  // When every part's crc64 is known, the object's CRC64 must be their combination.
  virtual Result<PutResult> complete_multipart(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id,
                                               const std::vector<UploadedPart>& parts,
                                               const WriteOptions& options = {}) = 0;
  virtual Status abort_multipart(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id) = 0;
  virtual Result<std::vector<UploadedPart>> list_parts(const std::string& bucket, const std::string& key,
                                                       const std::string& upload_id) = 0;
  // Every incomplete upload whose key starts with `prefix`, in key order, all pages
  // (page_size uploads per request, 1..1000).
  virtual Result<std::vector<MultipartUpload>> list_multipart_uploads(const std::string& bucket,
                                                                      const std::string& prefix,
                                                                      int page_size = 1000) = 0;
};

}  // namespace ossshim::oss
