// The emulator's object store: a directory tree ROOT/<bucket>/<key>, with object metadata (ETag,
// CRC64, content type) computed lazily and cached by file identity, and multipart upload state under
// ROOT/.oss-emulator/ (not a valid bucket name, so never listed).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ossemu {

// An OSS-style failure: HTTP status + code + message.
struct Failure {
  int status = 0;
  std::string code;
  std::string message;
};

struct ObjectMeta {
  std::string path;  // file on disk
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag;  // quoted, uppercase hex
  std::uint64_t crc64 = 0;
  std::string content_type = "application/octet-stream";
  std::string object_type = "Normal";
};

struct ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag;
};

struct ListResult {
  std::vector<ListedObject> objects;
  std::vector<std::string> prefixes;
  bool truncated = false;
  std::string next_marker;  // last key or prefix returned, when truncated
};

struct PartInfo {
  int number = 0;
  std::string etag;
  std::uint64_t size = 0;
  std::uint64_t crc64 = 0;
  std::time_t mtime = 0;
};

struct UploadInfo {
  std::string bucket, key, upload_id;
  std::time_t initiated = 0;
};

class Store {
 public:
  explicit Store(std::string root);

  const std::string& root() const { return root_; }
  bool bucket_exists(const std::string& bucket) const;
  std::vector<std::string> buckets() const;
  std::optional<Failure> create_bucket(const std::string& bucket);
  std::optional<Failure> delete_bucket(const std::string& bucket);

  // Validates bucket and key and returns the file path (or a Failure).
  std::optional<Failure> object_path(const std::string& bucket, const std::string& key,
                                     std::string& path) const;
  // Metadata of an existing object; NoSuchKey/NoSuchBucket otherwise.
  std::optional<Failure> head(const std::string& bucket, const std::string& key, ObjectMeta& meta);

  // Moves a fully written temp file into place atomically; remembers its MD5-based ETag and type.
  // With forbid_overwrite, an existing object is kept (409 FileAlreadyExists), atomically: of two
  // such commits racing for one key, one wins.
  std::optional<Failure> commit(const std::string& bucket, const std::string& key,
                                const std::string& temp_path, const std::string& etag,
                                const std::string& content_type, bool forbid_overwrite, ObjectMeta& meta);
  // A temp file in the object's directory (so rename is atomic). Creates parent directories.
  std::optional<Failure> temp_file_for(const std::string& bucket, const std::string& key,
                                       std::string& temp_path, int& fd);
  std::optional<Failure> remove(const std::string& bucket, const std::string& key);
  // Rewrites an object with different bytes (fault injection: "object replaced mid-read").
  void replace_content(const std::string& path);

  ListResult list(const std::string& bucket, const std::string& prefix, const std::string& delimiter,
                  const std::string& marker, int max_keys);

  // Multipart
  std::string initiate(const std::string& bucket, const std::string& key, const std::string& content_type);
  std::optional<Failure> upload_dir(const std::string& bucket, const std::string& key,
                                    const std::string& upload_id, std::string& dir);
  std::optional<Failure> part_temp(const std::string& dir, int part, std::string& temp_path, int& fd);
  std::optional<Failure> commit_part(const std::string& dir, int part, const std::string& temp_path,
                                     const std::string& etag, PartInfo& info);
  std::vector<PartInfo> parts(const std::string& dir);
  std::optional<Failure> complete(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id,
                                  const std::vector<std::pair<int, std::string>>& wanted,
                                  bool forbid_overwrite, ObjectMeta& meta);
  std::optional<Failure> abort(const std::string& bucket, const std::string& key,
                               const std::string& upload_id);
  // The bucket's incomplete uploads whose key starts with prefix, in (key, upload id) order.
  std::vector<UploadInfo> uploads(const std::string& bucket, const std::string& prefix = "");

 private:
  struct Identity {
    dev_t dev;
    ino_t ino;
    std::uint64_t size;
    std::int64_t mtime_ns;
    auto operator<=>(const Identity&) const = default;
  };
  struct Cached {
    std::once_flag crc_once;
    std::uint64_t crc64 = 0;
    std::string etag;
    std::string content_type;
  };
  std::shared_ptr<Cached> cached(const Identity& id);

  std::string root_;
  std::string state_;  // ROOT/.oss-emulator
  std::mutex mu_;
  std::map<Identity, std::shared_ptr<Cached>> meta_;
};

bool valid_bucket_name(const std::string& bucket);
std::uint64_t crc64_of_file(int fd, std::uint64_t size);

}  // namespace ossemu
