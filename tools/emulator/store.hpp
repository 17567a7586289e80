// The emulator's object store: a directory tree ROOT/<bucket>/<key>, with object metadata (ETag,
// CRC64, content type) cached by file identity (known from the upload, else computed lazily), and
// multipart upload state under ROOT/.oss-emulator/ (not a valid bucket name, so never listed).
//
// Multipart parts of the common shape (parts 1..N of one size S, the last one no larger) are
// written in place into one data file per upload, part n at (n-1)*S, so that completing such an
// upload is a link and a truncate instead of copying every byte; any other part (another size, a
// second version of a part, a part without Content-Length) goes to its own file and completion
// copies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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
  std::string type = "Normal";  // or "Symlink"
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
  std::int64_t offset = -1;  // in the upload's data file; -1: in its own file part-N
};

// Where an UploadPart body is written: at `offset` of the upload's data file, or (offset -1) into
// the temp file temp_path.
struct PartTarget {
  int fd = -1;
  std::string temp_path;
  std::int64_t offset = -1;
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
  // Metadata of an existing object; NoSuchKey/NoSuchBucket otherwise. A symlink object is
  // followed (one level, as OSS): the target's metadata with object_type "Symlink", or 404
  // SymlinkTargetNotExist, or 400 InvalidTargetType when the target is a symlink too.
  std::optional<Failure> head(const std::string& bucket, const std::string& key, ObjectMeta& meta);

  // Symlink objects are symbolic links on disk whose text is the target key relative to the
  // link's directory, so that the tree on disk is the POSIX view of the bucket.
  std::optional<Failure> put_symlink(const std::string& bucket, const std::string& key,
                                     const std::string& target, bool forbid_overwrite, ObjectMeta& meta);
  // The target key of a symlink object and the link's own ETag and time (meta.size 0);
  // NoSuchKey if absent, 400 NotSymlink if it is another kind of object.
  std::optional<Failure> get_symlink(const std::string& bucket, const std::string& key, std::string& target,
                                     ObjectMeta& meta);

  // Moves a fully written temp file into place atomically; remembers its MD5-based ETag, CRC64
  // (of the bytes written, so that nothing is read back) and type.
  // With forbid_overwrite, an existing object is kept (409 FileAlreadyExists), atomically: of two
  // such commits racing for one key, one wins.
  std::optional<Failure> commit(const std::string& bucket, const std::string& key,
                                const std::string& temp_path, const std::string& etag, std::uint64_t crc64,
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
  // A target for an UploadPart body of `length` bytes (-1: unknown): in place when it fits the
  // upload's layout, else part_temp. release_part gives up an in-place target that is not committed.
  std::optional<Failure> part_target(const std::string& dir, int part, std::int64_t length, PartTarget& t);
  void release_part(const std::string& dir, int part, const PartTarget& t);
  // Records a fully written part of `size` bytes (its fd closed) with the ETag and CRC64 of its bytes.
  std::optional<Failure> commit_part(const std::string& dir, int part, const PartTarget& t,
                                     std::uint64_t size, const std::string& etag, std::uint64_t crc64,
                                     PartInfo& info);
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
  std::optional<Failure> head_object(const std::string& bucket, const std::string& key, ObjectMeta& meta,
                                     bool follow);
  std::optional<Failure> temp_name_for(const std::string& bucket, const std::string& key,
                                       std::string& temp_path);
  std::vector<PartInfo> parts_locked(const std::string& dir);
  std::optional<Failure> assemble(const std::string& bucket, const std::string& key, const std::string& dir,
                                  const std::vector<const PartInfo*>& use, std::string& temp);

  // In-place layout of an upload being received, by upload dir (lost on restart: then parts go to
  // their own files).
  struct Layout {
    std::uint64_t part_size = 0;  // S, set by the first part with a body
    std::set<int> writing;        // parts being written in place
    bool completing = false;      // CompleteMultipartUpload is using the data file
  };
  std::mutex uploads_mu_;  // layouts_ and the part files and .meta files of every upload
  std::map<std::string, Layout> layouts_;

  std::string root_;
  std::string state_;  // ROOT/.oss-emulator
  std::mutex mu_;
  std::map<Identity, std::shared_ptr<Cached>> meta_;
};

bool valid_bucket_name(const std::string& bucket);
std::uint64_t crc64_of_file(int fd, std::uint64_t size);

}  // namespace ossemu
