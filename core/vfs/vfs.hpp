// The virtual file system: knows files and directories, not libc. Writes go through core/upload
// (streamed multipart or staged, committed on close/fsync); namespace changes (create, rename,
// unlink, mkdir, rmdir) bump the node's epoch so every process drops its metadata caches. Metadata
// (HeadObject, listings) with attribute and negative caches; reads through the node's shared chunk cache
// (core/cache), filled by the process's range-GET workers (core/fetch) with every GET pinned to the ETag seen
// at open. When the shared cache cannot be used (disabled, no space) a bounded private cache serves.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache.hpp"
#include "cache/node.hpp"
#include "config/config.hpp"
#include "fetch/fetcher.hpp"
#include "oss/client.hpp"
#include "upload/writer.hpp"
#include "util/error.hpp"
#include "util/forksafe.hpp"
#include "vfs/path.hpp"
#include "vfs/whole_crc.hpp"

namespace ossshim::vfs {

struct Attr {
  bool dir = false;
  std::uint64_t size = 0;  // a symlink's: the length of its text, as readlink shows it
  std::time_t mtime = 0;
  std::string etag;    // files only
  bool link = false;   // a symlink object (only lstat-like lookups return one)
  std::string target;  // a symlink's target key, in the same bucket
};

struct DirEntry {
  std::string name;
  bool dir = false;
  bool link = false;
};

// One open file description: shared by dup'd descriptors, like the kernel's. Its locks are taken
// around fork (every live OpenFile is in one set): offset_mu and dir_mu at Rank::open_files,
// cache_mu and lock_mu at Rank::open_file_state, its writer's at Rank::writers in between.
struct OpenFile {
  OpenFile();
  VPath path;
  std::string display;  // "/oss/bucket/key", for messages
  Attr attr;
  std::atomic<std::uint64_t> offset{0};
  std::mutex offset_mu;              // writes through the file offset, one at a time
  std::atomic<int> status_flags{0};  // O_RDONLY | O_NONBLOCK ... as given to open
  // Sequential-read detection for read-ahead: the window (in chunks) doubles while the reader
  // continues where it stopped and drops to nothing on a jump.
  std::atomic<std::uint64_t> next_sequential{0};
  std::atomic<std::uint32_t> window{0};
  // The object's entry in the shared cache, found on first read (null: private cache).
  std::mutex cache_mu;
  bool cache_looked = false;
  std::shared_ptr<cache::Object> cached;
  // This version's CRC64 check for bytes that come past the shared cache (found with `cached`).
  std::shared_ptr<WholeCrc> whole_crc;
  // Directories: the listing, loaded on first use.
  std::mutex dir_mu;
  bool listed = false;
  std::vector<DirEntry> entries;
  // Files open for writing: the writer (null when read-only) and the process that owns it (a
  // forked child inherits the descriptor but never commits or aborts the parent's upload).
  std::unique_ptr<upload::Writer> writer;
  pid_t writer_pid = 0;
  // Opened for reading while this process writes the same path: reads see what that file holds
  // (as on a local file system), not the object stored before.
  std::shared_ptr<OpenFile> written_by;
  std::string create_claim;  // the node-wide O_EXCL claim, removed when the file is closed
  // The shim's record of this file (the memfd behind its placeholder, shared with processes that
  // inherit it): a process that took the file over (exec'd with it) seals it with F_SEAL_SEAL;
  // then this one does not commit.
  int record_fd = -1;
  // The shim's descriptors for this open file; the last one's close commits a writer.
  std::atomic<int> descriptors{0};
  // A real file standing for this path, for flock/fcntl locks between processes of the node.
  std::mutex lock_mu;
  int lock_fd = -1;
  forksafe::Set::Member fork_member;
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
};

class Vfs {
 public:
  // Fails only if the client cannot be created (bad endpoint).
  static Result<std::unique_ptr<Vfs>> create(const Config& config, const auth::Credentials& creds);

  const Config& config() const { return config_; }
  std::string display(const VPath& p) const { return to_string(config_.prefix, p); }

  // Symlink objects are followed, in every component, at most kMaxLinks times (then ELOOP);
  // `resolved` (if given) receives the path reached, also when that does not exist.
  static constexpr int kMaxLinks = 40;
  Result<Attr> stat(const VPath& p, VPath* resolved = nullptr);
  // As stat, but a symlink in the last component is described, not followed (attr.link).
  Result<Attr> lstat(const VPath& p, VPath* resolved = nullptr);
  // The text of symlink `p`, relative to its directory; EINVAL when `p` is not a symlink.
  Result<std::string> readlink(const VPath& p);
  // Creates symlink `link` -> `text`: a relative text (from the link's directory) or an absolute
  // one under this bucket's directory. Stored as an OSS symlink object whose target is the key
  // named; readlink shows it relative again. EPERM for a target outside the bucket.
  Status symlink(std::string_view text, const VPath& link);
  // With read_only set, EROFS for `op` on `p` (one warn line per process, naming the setting);
  // otherwise ok. Every mutating entry point below calls it first.
  Status refuse_if_read_only(const char* op, const VPath& p);
  Result<std::vector<DirEntry>> list(const VPath& p);
  // follow false: a symlink is not opened (ELOOP), as with O_NOFOLLOW.
  Result<std::shared_ptr<OpenFile>> open(const VPath& p, bool follow = true);
  // Opens for writing with open(2) flags (O_WRONLY or O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND).
  Result<std::shared_ptr<OpenFile>> open_write(const VPath& p, int flags);
  // Writes at `off`; the file must have a writer owned by this process.
  Result<std::size_t> write(OpenFile& f, const char* buf, std::size_t len, std::uint64_t off);
  // The current size (a writer's, or the object's).
  std::uint64_t size_of(OpenFile& f);
  // The writer whose bytes `f` holds: its own, or the one writing its path (null: an object).
  upload::Writer* writer_of(OpenFile& f);
  // fsync: the object in OSS holds what was written when this returns.
  Status sync(OpenFile& f);
  // The last descriptor of `f` is being closed: commits a writer, releases claims.
  Status close_file(OpenFile& f);
  Status truncate(OpenFile& f, std::uint64_t size);
  Status truncate(const VPath& p, std::uint64_t size);
  Status unlink(const VPath& p);
  Status mkdir(const VPath& p);
  Status rmdir(const VPath& p);
  // POSIX rename: a file replaces a file; a directory moves object by object (not atomic).
  Status rename(const VPath& from, const VPath& to);
  // A real descriptor to lock in place of `f` (flock, fcntl record locks): node-wide locks.
  Result<int> lock_fd(OpenFile& f);

  // Loads a directory's entries into the open file (once).
  Status load_entries(OpenFile& dir);

  // Reads up to len bytes at off; short only at end of file.
  Result<std::size_t> read(OpenFile& f, char* buf, std::size_t len, std::uint64_t off);
  // Fills dst with [off, off+len) straight from the store (for mmap): parallel, no cache copy.
  Status fill(OpenFile& f, char* dst, std::size_t len, std::uint64_t off);

  // For mmap: the object's bytes [off, off+len) made resident in the shared cache and pinned.
  // Map `fd` at `off` to share the pages; unmap() drops the pin. Empty when the cache cannot hold
  // them (then fill a private mapping instead).
  struct MapSource {
    int fd = -1;
    std::uint32_t pin = 0;
  };
  Result<std::optional<MapSource>> map(OpenFile& f, std::uint64_t off, std::size_t len);
  void unmap(std::uint32_t pin);

  // Fetches a whole file into the shared cache; progress(bytes) after each batch of chunks.
  Status warm(OpenFile& f, const std::function<void(std::uint64_t)>& progress);

  // The shared cache (null when unavailable) and why it is not used.
  cache::Cache* shared_cache() { return shared_.get(); }

  // In a forked child: new connections, empty caches; nothing of the parent's threads is waited on.
  // `pins` are the pins of mappings the child inherited; they are re-pinned in its name.
  // Called after the fork hooks (forksafe) released every lock; runs in the child's only thread.
  void after_fork_child(std::vector<std::uint32_t>& pins);
  // At exit: commit files still open for writing (as a local file system keeps what was written
  // to descriptors never closed), then leave the shared cache (a process slot, claims, pins).
  void detach();

 private:
  struct Chunk {
    std::mutex mu;
    std::condition_variable cv;
    enum State { fetching, ready, failed };
    std::atomic<State> state{fetching};  // read without `mu` by eviction
    std::uint64_t bytes = 0;             // the chunk's length, fixed at creation
    std::vector<char> data;
    Error error;
  };
  struct CachedAttr {
    bool exists = false;
    Attr attr;
    Error error;
    std::chrono::steady_clock::time_point expires;
  };

  Vfs(Config config, auth::Credentials creds, std::unique_ptr<oss::Client> client);
  // After a namespace change: every process of the node (this one now) drops cached metadata.
  void changed();
  void drop_stale_attrs();
  Result<Attr> parent_dir(const VPath& p, const char* op);
  Status claim_create(OpenFile& f);
  Status copy_object(const VPath& from, const VPath& to, std::uint64_t size);
  Status move_link(const VPath& from, const VPath& to, const std::string& target);
  std::shared_ptr<OpenFile> writing(const std::string& display);
  void commit_all();
  Result<Attr> stat_uncached(const VPath& p);
  // One path's attributes (cached), no symlink followed; lookup walks links and ancestors.
  Result<Attr> attr_of(const VPath& p);
  Result<Attr> lookup(VPath p, bool follow, VPath* resolved, int& hops);
  Result<Attr> link_attr(const VPath& p);
  std::shared_ptr<cache::Object> cached_object(OpenFile& f);
  std::uint32_t advance_window(OpenFile& f, std::uint64_t off);
  // Shared-cache reads: chunks [first, last] made ready (fetched by this process's workers or
  // waited for); `copy(i, ref)` runs on each ready chunk and returns false if it was evicted
  // meanwhile (then the chunk is fetched again).
  struct Job;
  Status fetch_chunk(cache::Object& o, std::uint64_t index, const cache::ChunkRef& claim);
  Result<std::size_t> read_shared(OpenFile& f, const std::shared_ptr<cache::Object>& o, char* buf,
                                  std::size_t len, std::uint64_t off);
  Status ensure(const std::shared_ptr<cache::Object>& o, std::uint64_t first, std::uint64_t last,
                const std::function<bool(std::uint64_t, const cache::ChunkRef&, bool waited)>& use,
                const std::function<Status(std::uint64_t)>& uncached);
  void prefetch(const std::shared_ptr<cache::Object>& o, std::uint64_t first, std::uint64_t last);
  Result<std::size_t> read_private(OpenFile& f, char* buf, std::size_t len, std::uint64_t off);
  void remember(const std::string& path, const CachedAttr& entry);
  std::vector<std::shared_ptr<Chunk>> chunks(OpenFile& f, std::uint64_t first, std::uint64_t last,
                                             std::uint64_t readahead_last);
  void fetch(OpenFile& f, std::uint64_t index, Chunk& chunk);
  void evict_locked();
  // The CRC64 check of the version `f` reads, shared by every open of it in this process.
  WholeCrc& whole_crc(OpenFile& f);
  // Folds bytes received past the shared cache into that check: an error (EIO) when they complete
  // an object whose CRC64 differs from the server's, or when the version already failed.
  Status check_received(OpenFile& f, std::uint64_t off, const char* data, std::size_t len,
                        const std::optional<std::uint64_t>& server_crc);
  Status damaged_unless_ok(OpenFile& f);
  Error error_for(const char* op, const VPath& p, int err, const std::string& message) const;

  Config config_;
  auth::Credentials creds_;
  std::unique_ptr<oss::Client> client_;
  std::uint64_t budget_;
  std::unique_ptr<cache::Cache> shared_;
  fetch::Fetcher fetcher_;

  std::unique_ptr<cache::Node> node_;  // null: changes are seen by this process only
  upload::Uploader uploader_;

  std::mutex attr_mu_;
  forksafe::Guard attr_guard_{forksafe::Rank::vfs_tables, attr_mu_};
  std::map<std::string, CachedAttr> attrs_;
  std::uint64_t seen_epoch_ = 0;  // guarded by attr_mu_

  // Files this process has open for writing, so stat sees them before their first commit.
  std::mutex writing_mu_;
  forksafe::Guard writing_guard_{forksafe::Rank::vfs_tables, writing_mu_};
  std::multimap<std::string, std::weak_ptr<OpenFile>> writing_;

  std::mutex chunk_mu_;
  forksafe::Guard chunk_guard_{forksafe::Rank::vfs_tables, chunk_mu_};
  std::map<std::string, std::pair<std::shared_ptr<Chunk>, std::list<std::string>::iterator>> chunk_map_;
  std::list<std::string> lru_;  // front: most recently used
  std::uint64_t cached_bytes_ = 0;

  // Versions read past the shared cache: bounded, but a failed version stays failed.
  std::mutex crc_mu_;
  forksafe::Guard crc_guard_{forksafe::Rank::vfs_tables, crc_mu_};
  std::map<std::string, std::shared_ptr<WholeCrc>> crc_checks_;
  std::list<std::string> crc_order_;  // oldest first
};

}  // namespace ossshim::vfs
