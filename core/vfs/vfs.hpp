// The virtual file system: knows files and directories, not libc. Metadata (HeadObject, listings)
// with attribute and negative caches; reads through a bounded, process-wide chunk cache filled by
// parallel range GETs pinned to the ETag seen at open. (The cross-process shared cache replaces the
// chunk cache later; reads go through ChunkSource so that swap stays local.)
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "oss/client.hpp"
#include "util/error.hpp"
#include "vfs/path.hpp"

namespace ossshim::vfs {

struct Attr {
  bool dir = false;
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag;  // files only
};

struct DirEntry {
  std::string name;
  bool dir = false;
};

// One open file description: shared by dup'd descriptors, like the kernel's.
struct OpenFile {
  VPath path;
  std::string display;  // "/oss/bucket/key", for messages
  Attr attr;
  std::atomic<std::uint64_t> offset{0};
  std::atomic<int> status_flags{0};  // O_RDONLY | O_NONBLOCK ... as given to open
  // Sequential-read detection for read-ahead.
  std::atomic<std::uint64_t> next_sequential{0};
  std::atomic<std::uint32_t> window{1};
  // Directories: the listing, loaded on first use.
  std::mutex dir_mu;
  bool listed = false;
  std::vector<DirEntry> entries;
};

class Vfs {
 public:
  // Fails only if the client cannot be created (bad endpoint).
  static Result<std::unique_ptr<Vfs>> create(const Config& config, const auth::Credentials& creds);

  const Config& config() const { return config_; }
  std::string display(const VPath& p) const { return to_string(config_.prefix, p); }

  Result<Attr> stat(const VPath& p);
  Result<std::vector<DirEntry>> list(const VPath& p);
  Result<std::shared_ptr<OpenFile>> open(const VPath& p);
  // Loads a directory's entries into the open file (once).
  Status load_entries(OpenFile& dir);

  // Reads up to len bytes at off; short only at end of file.
  Result<std::size_t> read(OpenFile& f, char* buf, std::size_t len, std::uint64_t off);
  // Fills dst with [off, off+len) straight from the store (for mmap): parallel, no cache copy.
  Status fill(OpenFile& f, char* dst, std::size_t len, std::uint64_t off);

  // In a forked child: new connections, empty caches; nothing of the parent's threads is waited on.
  void after_fork_child();

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
  Result<Attr> stat_uncached(const VPath& p);
  void remember(const std::string& path, const CachedAttr& entry);
  std::vector<std::shared_ptr<Chunk>> chunks(OpenFile& f, std::uint64_t first, std::uint64_t last,
                                             std::uint64_t readahead_last);
  void fetch(OpenFile& f, std::uint64_t index, Chunk& chunk);
  void evict_locked();
  Error error_for(const char* op, const VPath& p, int err, const std::string& message) const;

  Config config_;
  auth::Credentials creds_;
  std::unique_ptr<oss::Client> client_;
  std::uint64_t budget_;

  std::mutex attr_mu_;
  std::map<std::string, CachedAttr> attrs_;

  std::mutex chunk_mu_;
  std::map<std::string, std::pair<std::shared_ptr<Chunk>, std::list<std::string>::iterator>> chunk_map_;
  std::list<std::string> lru_;  // front: most recently used
  std::uint64_t cached_bytes_ = 0;
};

}  // namespace ossshim::vfs
