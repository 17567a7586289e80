// Writing objects (knows uploads, not files or libc). A Writer is one file open for writing:
// sequential writes stream into a multipart upload whose parts the process's upload workers send
// while the program goes on writing; anything else (a write behind the end, a read, a truncation
// to a non-zero size, changing an existing object) moves the file to a local staging file that is
// uploaded at commit. Parts already uploaded cannot be read back from OSS, so each is also kept
// in a local spool file (spool_writes), which becomes the staging file if the program turns back. commit()
// returns only when the object is complete in OSS and its CRC64 matches what was written; on any failure the
// multipart upload is aborted, so no partial object ever becomes visible.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "fetch/fetcher.hpp"
#include "oss/client.hpp"
#include "util/error.hpp"
#include "util/forksafe.hpp"

namespace ossshim::upload {

// The process's part uploads: one worker pool and one in-flight budget shared by every file
// being written, so memory stays bounded however many files a program writes at once.
class Uploader {
 public:
  Uploader(const Config& config, oss::Client& client);
  const Config& config() const { return config_; }
  oss::Client& client() { return client_; }
  // Queues `job` once `bytes` fit the in-flight budget: the writer blocks meanwhile, which is
  // the back-pressure that keeps a fast writer from buffering the whole file. The job calls
  // done(bytes) when its buffer is released.
  void submit(std::uint64_t bytes, std::function<void()> job);
  void done(std::uint64_t bytes);
  // In a forked child: the parent's workers and jobs do not exist here.
  void after_fork_child();

 private:
  const Config& config_;
  oss::Client& client_;
  fetch::Fetcher pool_;  // the generic job pool (demand priority only)
  std::mutex mu_;
  forksafe::Guard fork_guard_{forksafe::Rank::uploader, mu_};
  std::condition_variable cv_;
  std::uint64_t in_flight_ = 0;
  std::uint64_t budget_;
};

// Size of multipart part `number` (1-based): part_size for the first 2000 parts, then doubling
// every 2000, so the 10,000-part limit allows ~500 GB at the default 8 MiB.
std::uint64_t part_bytes(std::uint64_t part_size, int number);

// The part holding file offset `off` under that numbering.
struct PartSpan {
  int number;
  std::uint64_t start, size;
};
PartSpan part_at(std::uint64_t part_size, std::uint64_t off);

struct Committed {
  std::uint64_t size = 0;
  std::string etag;
  std::time_t mtime = 0;
};

class Writer {
 public:
  struct Options {
    std::string bucket, key, display;  // display: "/oss/bucket/key" for messages
    bool exclusive = false;            // O_EXCL: the commit fails with EEXIST if the key exists
    bool stage = false;                // stage from the start (stage_writes, O_RDWR)
    // Content to keep (opened without O_TRUNC): the object version `base_etag` of `base_size`
    // bytes, fetched on first need. No base: the file starts empty.
    std::optional<std::uint64_t> base_size;
    std::string base_etag;
    // Reads bytes of a version of the object (the base, or what a commit stored).
    std::function<Status(const std::string& etag, std::uint64_t size, char* dst, std::size_t len,
                         std::uint64_t off)>
        read_object;
  };
  static Result<std::unique_ptr<Writer>> create(Uploader& uploader, Options options);
  // Aborts whatever was not committed (unless abandoned).
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Result<std::size_t> write(const char* data, std::size_t len, std::uint64_t off);
  Result<std::size_t> read(char* out, std::size_t len, std::uint64_t off);
  Status truncate(std::uint64_t size);
  std::uint64_t size();
  // Makes the object in OSS hold what was written; empty when nothing changed since the last
  // commit (or since open). The file stays open for more writes.
  Result<std::optional<Committed>> commit();
  // In a forked child: the upload belongs to the parent; never commit or abort it from here.
  void abandon();
  // Fork hooks (forksafe::Rank::writers): every live writer's lock, taken and released.
  static void lock_all(void*);
  static void unlock_all(void*);

 private:
  struct Parts;  // the parts of one multipart upload, shared with its jobs
  explicit Writer(Uploader& uploader, Options options);
  Error error(int err, const std::string& message) const;
  Status to_stage_locked();
  Status stage_from_spool_locked();
  Status check_staging_dir() const;
  Result<int> make_staging_file();
  Status reserve(int fd, std::uint64_t new_size, std::uint64_t& checked_until);
  Status ship_front_locked(std::uint64_t n);
  Status ship_part_locked(std::string body, std::uint64_t offset, int number);
  Status start_upload_locked();
  void start_spool_locked();
  Status wait_parts_locked();
  Result<std::string> read_staged_locked(std::uint64_t off, std::uint64_t len);
  Status note_staged_write_locked(std::uint64_t off, std::uint64_t len);
  Status load_base_locked(std::uint64_t off, std::uint64_t len, bool writing);
  Status ship_copy_locked(int number, std::uint64_t off, std::uint64_t len);
  void note_staged_truncate_locked(std::uint64_t size);
  Result<Committed> finish_upload_locked(int last);
  Error remove_if_wrong(Error e);
  Result<Committed> put_whole_locked(std::string_view body);
  Result<Committed> commit_stream_locked();
  Result<Committed> commit_staged_locked();
  void abort_upload_locked();

  Uploader& up_;
  Options opt_;
  std::mutex mu_;  // one operation at a time per file
  // Held around fork like every live writer's: a child may still read or size a writer it
  // inherited (never write, commit or abort it: see abandon()).
  forksafe::Set::Member fork_member_;
  bool dirty_;
  bool abandoned_ = false;
  // The first failure of a write or part upload: every later commit fails with it and stores
  // nothing (a partial object must never become visible).
  std::optional<Error> failed_;
  std::uint64_t size_ = 0;
  // Streaming: bytes [size_ - buf_.size(), size_) not yet handed to an upload worker.
  std::string buf_;
  std::string upload_id_;
  int next_part_ = 1;
  std::shared_ptr<Parts> parts_;
  // Staging.
  int fd_ = -1;
  std::string staging_dir_;
  std::uint64_t checked_until_ = 0;        // free space is known to suffice up to here
  std::uint64_t spool_checked_until_ = 0;  // the same for the spool (in parts_)
  // A staged file's parts, by number: each is uploaded once the program has written all of it
  // (a parallel downloader filling segments out of order keeps the link busy), and again at
  // commit if it was written after that.
  struct StagedPart {
    std::map<std::uint64_t, std::uint64_t> written;  // start -> end, disjoint
    bool shipped = false;
    bool dirty = false;  // written after it was shipped
  };
  std::map<int, StagedPart> staged_parts_;
  // The stored version a staged file started from. Its bytes below copy_limit_ (the lowest the
  // file was truncated to) are fetched into the staging file part by part, only when read or
  // partly overwritten (base_loaded_); a part never written is copied server-side at commit
  // (UploadPartCopy), so appending to a big object moves only the new bytes.
  std::optional<Committed> base_;
  std::uint64_t copy_limit_ = 0;
  std::set<int> base_loaded_;
};

}  // namespace ossshim::upload
