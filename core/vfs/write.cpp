// The write side of the virtual file system: files open for writing, and namespace changes.
// What OSS cannot do atomically is said where it happens (directory rename).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "vfs/vfs.hpp"

namespace ossshim::vfs {

namespace {
constexpr std::uint64_t kCopyLimit = 1ull << 30;  // CopyObject's limit; larger sources copy in parts
}  // namespace

namespace {
constinit forksafe::Set g_open_files;

void lock_files(void*) {
  g_open_files.mu.lock();  // until unlock_files: the set cannot change meanwhile
  g_open_files.each([](void* p) {
    auto* f = static_cast<OpenFile*>(p);
    f->offset_mu.lock();
    f->dir_mu.lock();
  });
}
void unlock_files(void*) {
  g_open_files.each([](void* p) {
    auto* f = static_cast<OpenFile*>(p);
    f->dir_mu.unlock();
    f->offset_mu.unlock();
  });
  g_open_files.mu.unlock();
}
void lock_file_state(void*) {
  g_open_files.each([](void* p) {
    auto* f = static_cast<OpenFile*>(p);
    f->cache_mu.lock();
    f->lock_mu.lock();
  });
}
void unlock_file_state(void*) {
  g_open_files.each([](void* p) {
    auto* f = static_cast<OpenFile*>(p);
    f->lock_mu.unlock();
    f->cache_mu.unlock();
  });
}
}  // namespace

const bool g_open_files_fork_safe =
    (forksafe::add(forksafe::Rank::open_files, forksafe::Hooks{lock_files, unlock_files, unlock_files},
                   nullptr),
     forksafe::add(forksafe::Rank::open_file_state,
                   forksafe::Hooks{lock_file_state, unlock_file_state, unlock_file_state}, nullptr),
     true);

OpenFile::OpenFile() {
  g_open_files.insert(fork_member, this);
}

OpenFile::~OpenFile() {
  g_open_files.erase(fork_member);
  if (lock_fd >= 0) ::close(lock_fd);
  if (record_fd >= 0) ::close(record_fd);
}

namespace {
// Whether another process took the file over: it sealed the shim's memfd record with
// F_SEAL_SEAL (see OpenFile::record_fd).
bool taken_over(const OpenFile& f) {
  if (f.record_fd < 0) return false;
  int seals = ::fcntl(f.record_fd, F_GET_SEALS);
  return seals > 0 && (seals & F_SEAL_SEAL);
}
}  // namespace

void Vfs::drop_stale_attrs() {
  if (!node_) return;
  std::uint64_t now = node_->epoch();
  std::lock_guard lock(attr_mu_);
  if (now != seen_epoch_) {
    attrs_.clear();
    seen_epoch_ = now;
  }
}

void Vfs::changed() {
  if (node_) node_->bump();
  std::lock_guard lock(attr_mu_);
  attrs_.clear();
  if (node_) seen_epoch_ = node_->epoch();
}

std::shared_ptr<OpenFile> Vfs::writing(const std::string& display) {
  std::lock_guard lock(writing_mu_);
  if (writing_.empty()) return nullptr;
  auto [first, last] = writing_.equal_range(display);
  for (auto it = first; it != last;) {
    if (auto f = it->second.lock()) return f;
    it = writing_.erase(it);
  }
  return nullptr;
}

void Vfs::commit_all() {
  std::vector<std::shared_ptr<OpenFile>> open;
  {
    std::lock_guard lock(writing_mu_);
    for (auto& [name, weak] : writing_)
      if (auto f = weak.lock()) open.push_back(std::move(f));
  }
  for (auto& f : open)
    if (f->writer_pid == ::getpid()) (void)close_file(*f);  // failures are logged by close_file
}

std::uint64_t Vfs::size_of(OpenFile& f) {
  auto* w = writer_of(f);
  return w ? w->size() : f.attr.size;
}

upload::Writer* Vfs::writer_of(OpenFile& f) {
  if (f.writer) return f.writer.get();
  return f.written_by ? f.written_by->writer.get() : nullptr;
}

// The directory a new name goes into must exist, as on a local file system.
Result<Attr> Vfs::parent_dir(const VPath& p, const char* op) {
  auto up = stat(parent_of(p));
  if (!up) {
    if (up.error().err == ENOENT) return error_for(op, p, ENOENT, "the parent directory does not exist");
    return up.error();
  }
  if (!up->dir) return error_for(op, p, ENOTDIR, "the parent is a file, not a directory");
  return up;
}

// O_EXCL across the node: a claim file made with O_EXCL. A claim left by a dead process is
// taken over. (Across nodes, the commit's x-oss-forbid-overwrite has the last word.)
Status Vfs::claim_create(OpenFile& f) {
  if (!node_) return ok_status();
  std::string claim = node_->lock_path(f.display, "create");
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(claim.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string pid = std::to_string(::getpid());
      (void)!::write(fd, pid.data(), pid.size());
      ::close(fd);
      // A creator that finished between our stat and our claim has released its claim by now:
      // only a fresh look at the store tells.
      if (stat_uncached(f.path).ok()) {
        ::unlink(claim.c_str());
        break;
      }
      f.create_claim = claim;
      return ok_status();
    }
    if (errno != EEXIST) return ok_status();  // no claim possible: the commit still checks
    char buf[32] = {};
    int rd = ::open(claim.c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t n = rd >= 0 ? ::read(rd, buf, sizeof buf - 1) : -1;
    if (rd >= 0) ::close(rd);
    pid_t owner = n > 0 ? static_cast<pid_t>(std::atol(buf)) : 0;
    if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
      ::unlink(claim.c_str());  // its creator died: take it over
      continue;
    }
    break;
  }
  return error_for("open", f.path, EEXIST, "being created by another process (O_EXCL)");
}

Result<std::shared_ptr<OpenFile>> Vfs::open_write(const VPath& given, int flags) {
  if (auto ro = refuse_if_read_only("open", given); !ro) return ro.error();
  if (given.is_prefix_root() || given.is_bucket_root())
    return error_for("open", given, EISDIR, "is a directory");
  // Through a symlink: its target is written (and created, for a dangling link with O_CREAT).
  VPath p;
  int hops = 0;
  bool excl = (flags & O_CREAT) && (flags & O_EXCL);  // a link is never followed: EEXIST
  auto st = lookup(given, !(flags & O_NOFOLLOW) && !excl, &p, hops);
  if (st && st->link && !excl) return error_for("open", given, ELOOP, "is a symbolic link (O_NOFOLLOW)");
  bool exists = st.ok();
  if (!exists && st.error().err != ENOENT) return st.error();
  if (exists && st->dir) return error_for("open", p, EISDIR, "is a directory");
  if (exists && (flags & O_CREAT) && (flags & O_EXCL)) return error_for("open", p, EEXIST, "exists (O_EXCL)");
  if (!exists && !(flags & O_CREAT)) return st.error();
  if (!exists) {
    if (auto up = parent_dir(p, "open"); !up) return up.error();
  }
  auto f = std::make_shared<OpenFile>();
  f->path = p;
  f->display = display(p);
  f->attr.mtime = std::time(nullptr);
  if ((flags & O_CREAT) && (flags & O_EXCL))
    if (auto claim = claim_create(*f); !claim) return claim.error();

  upload::Writer::Options o;
  o.bucket = p.bucket;
  o.key = p.key;
  o.display = f->display;
  o.exclusive = (flags & O_CREAT) && (flags & O_EXCL);
  // Read-write opens (sqlite, h5py) seek and rewrite: stage them. So does stage_writes.
  o.stage = config_.stage_writes || (flags & O_ACCMODE) == O_RDWR;
  if (exists && !(flags & O_TRUNC)) {
    f->attr = st.value();
    o.base_size = st->size;
    o.base_etag = st->etag;
  }
  // Old bytes are read through the read path (shared cache, pinned to the version's ETag): the
  // object's content when kept at open, or what an fsync stored before more changes.
  auto version = std::make_shared<OpenFile>();
  version->path = p;
  version->display = f->display;
  o.read_object = [this, version](const std::string& etag, std::uint64_t size, char* dst, std::size_t len,
                                  std::uint64_t off) -> Status {
    if (version->attr.etag != etag || version->attr.size != size) {
      version->attr = Attr{false, size, 0, etag, false, ""};
      std::lock_guard lock(version->cache_mu);
      version->cache_looked = false;
      version->cached.reset();
    }
    for (std::size_t done = 0; done < len;) {
      auto n = read(*version, dst + done, len - done, off + done);
      if (!n) return n.error();
      if (*n == 0) return error_for("open", version->path, EIO, "the object shrank while being read");
      done += *n;
    }
    return ok_status();
  };
  auto w = upload::Writer::create(uploader_, std::move(o));
  if (!w) {
    if (!f->create_claim.empty()) ::unlink(f->create_claim.c_str());
    return w.error();
  }
  f->writer = std::move(w.value());
  f->writer_pid = ::getpid();
  std::lock_guard lock(writing_mu_);
  writing_.emplace(f->display, f);
  return f;
}

Result<std::size_t> Vfs::write(OpenFile& f, const char* buf, std::size_t len, std::uint64_t off) {
  if (!f.writer) return error_for("write", f.path, EBADF, "not open for writing");
  if (f.writer_pid != ::getpid())
    return error_for("write", f.path, EBADF,
                     "opened for writing by process " + std::to_string(f.writer_pid) +
                         "; a forked child cannot add to the parent's upload");
  return f.writer->write(buf, len, off);
}

Status Vfs::sync(OpenFile& f) {
  if (!f.writer || f.writer_pid != ::getpid()) return ok_status();
  auto r = f.writer->commit();
  if (!r) return r.error();
  if (*r) {
    f.attr.etag = (*r)->etag;
    changed();
  }
  return ok_status();
}

Status Vfs::close_file(OpenFile& f) {
  if (!f.writer || f.writer_pid != ::getpid()) return ok_status();
  bool handed = taken_over(f);
  if (handed) {
    // The process that took it over writes and commits it; what this one holds is not the file.
    log::info(f.display + ": written by the process that inherited it; not committed here");
    (void)f.writer->truncate(0);  // drops anything this process streamed (aborts its upload)
    f.writer->abandon();
    f.writer_pid = 0;
  }
  Status st = handed ? ok_status() : sync(f);
  if (!f.create_claim.empty()) ::unlink(f.create_claim.c_str());
  {
    std::lock_guard lock(writing_mu_);
    auto [first, last] = writing_.equal_range(f.display);
    for (auto it = first; it != last; ++it)
      if (it->second.lock().get() == &f) {
        writing_.erase(it);
        break;
      }
  }
  if (!st) log::error(st.error().to_string() + " -- nothing was stored; the program sees the error on close");
  return st;
}

Status Vfs::truncate(OpenFile& f, std::uint64_t size) {
  if (!f.writer) return error_for("truncate", f.path, EINVAL, "not open for writing");
  if (f.writer_pid != ::getpid()) return error_for("truncate", f.path, EBADF, "opened by the parent process");
  return f.writer->truncate(size);
}

Status Vfs::truncate(const VPath& p, std::uint64_t size) {
  auto f = open_write(p, O_WRONLY);
  if (!f) return f.error();
  Status st = truncate(**f, size);
  Status done = close_file(**f);
  return st ? done : st;
}

Status Vfs::unlink(const VPath& given) {
  if (auto ro = refuse_if_read_only("unlink", given); !ro) return ro;
  if (given.is_prefix_root() || given.is_bucket_root())
    return error_for("unlink", given, EISDIR, "is a directory");
  VPath p;  // a symlink is removed itself, not its target
  auto st = lstat(given, &p);
  if (!st) return st.error();
  if (st->dir) return error_for("unlink", p, EISDIR, "is a directory (use rmdir)");
  Status r = client_->delete_object(p.bucket, p.key);
  changed();
  return r;
}

Status Vfs::mkdir(const VPath& p) {
  if (auto ro = refuse_if_read_only("mkdir", p); !ro) return ro;
  if (p.is_prefix_root() || p.is_bucket_root()) return error_for("mkdir", p, EEXIST, "exists");
  auto st = lstat(p);
  if (st) return error_for("mkdir", p, EEXIST, "exists");
  if (st.error().err != ENOENT) return st.error();
  if (auto up = parent_dir(p, "mkdir"); !up) return up.error();
  // OSS has no directories: a zero-byte "key/" marker makes an empty one visible to listings.
  auto r = client_->put_object(p.bucket, p.key + "/", "");
  changed();
  if (!r) return r.error();
  return ok_status();
}

Status Vfs::rmdir(const VPath& p) {
  if (auto ro = refuse_if_read_only("rmdir", p); !ro) return ro;
  if (p.is_prefix_root() || p.is_bucket_root())
    return error_for("rmdir", p, EBUSY, "a bucket is not removed through the prefix");
  auto st = lstat(p);
  if (!st) return st.error();
  if (!st->dir) return error_for("rmdir", p, ENOTDIR, "not a directory");
  oss::ListRequest req;
  req.prefix = p.key + "/";
  req.max_keys = 2;
  auto page = client_->list_objects(p.bucket, req);
  if (!page) return page.error();
  bool marker = false;
  for (const auto& o : page->objects) {
    if (o.key == req.prefix)
      marker = true;
    else
      return error_for("rmdir", p, ENOTEMPTY, "directory not empty");
  }
  if (!page->common_prefixes.empty()) return error_for("rmdir", p, ENOTEMPTY, "directory not empty");
  Status r = marker ? client_->delete_object(p.bucket, req.prefix) : ok_status();
  changed();
  return r;
}

// Server-side copy: CopyObject up to 1 GiB, else a multipart upload of UploadPartCopy ranges.
Status Vfs::copy_object(const VPath& from, const VPath& to, std::uint64_t size) {
  if (size <= kCopyLimit) {
    auto r = client_->copy_object(from.bucket, from.key, to.bucket, to.key);
    return r ? ok_status() : Status(r.error());
  }
  auto id = client_->initiate_multipart(to.bucket, to.key);
  if (!id) return id.error();
  std::vector<oss::UploadedPart> parts;
  int number = 1;
  for (std::uint64_t off = 0; off < size; off += kCopyLimit, ++number) {
    std::uint64_t last = std::min(size, off + kCopyLimit) - 1;
    auto part = client_->upload_part_copy(to.bucket, to.key, *id, number, from.bucket, from.key, off, last);
    if (!part) {
      (void)client_->abort_multipart(to.bucket, to.key, *id);
      return part.error();
    }
    part->part_number = number;
    parts.push_back(part.value());
  }
  auto done = client_->complete_multipart(to.bucket, to.key, *id, parts);
  if (!done) {
    (void)client_->abort_multipart(to.bucket, to.key, *id);
    return done.error();
  }
  return ok_status();
}

// A symlink moves with its text (as rename(2) keeps it): a relative one may name another key
// from its new place. Only the new link is made here; the caller deletes the old one.
Status Vfs::move_link(const VPath& from, const VPath& to, const std::string& target) {
  std::string text = link_text(from.key, target), key;
  if (!link_target_key(to.key, text, key))
    return error_for("rename", to, EPERM,
                     "the symlink's target '" + text + "' would leave the bucket from there");
  auto r = client_->put_symlink(to.bucket, to.key, key);
  return r ? ok_status() : Status(r.error());
}

Status Vfs::rename(const VPath& from, const VPath& to) {
  if (auto ro = refuse_if_read_only("rename", from); !ro) return ro;
  if (from.is_prefix_root() || from.is_bucket_root() || to.is_prefix_root() || to.is_bucket_root())
    return error_for("rename", from, EBUSY, "buckets are not renamed through the prefix");
  if (from.bucket == to.bucket && from.key == to.key) return ok_status();
  if (from.bucket == to.bucket && to.key.rfind(from.key + "/", 0) == 0)
    return error_for("rename", from, EINVAL, "cannot move a directory into itself");
  auto src = lstat(from);
  if (!src) return src.error();
  auto dst = lstat(to);
  if (!dst && dst.error().err != ENOENT) return dst.error();
  if (!dst)
    if (auto up = parent_dir(to, "rename"); !up) return up.error();
  if (!src->dir) {
    if (dst && dst->dir) return error_for("rename", to, EISDIR, "the target is a directory");
    Status st = src->link ? move_link(from, to, src->target) : copy_object(from, to, src->size);
    if (st) st = client_->delete_object(from.bucket, from.key);
    changed();
    return st;
  }
  if (dst && !dst->dir) return error_for("rename", to, ENOTDIR, "the target is a file");
  if (dst) {
    if (auto st = rmdir(to); !st) return st;  // POSIX: an empty target directory is replaced
  }
  // A directory: every object under it, one by one. Not atomic: a failure midway leaves some
  // objects moved (each one is whole at either name, never both missing).
  oss::ListRequest req;
  req.prefix = from.key + "/";
  req.delimiter.clear();
  Status result = ok_status();
  for (;;) {
    auto page = client_->list_objects(from.bucket, req);
    if (!page) {
      result = page.error();
      break;
    }
    for (const auto& o : page->objects) {
      VPath a{from.bucket, o.key}, b{to.bucket, to.key + "/" + o.key.substr(req.prefix.size())};
      Status st = ok_status();
      if (o.type == "Symlink") {
        auto l = client_->get_symlink(a.bucket, a.key);
        st = l ? move_link(a, b, l->target) : Status(l.error());
      } else {
        st = copy_object(a, b, o.size);
      }
      if (st) st = client_->delete_object(a.bucket, a.key);
      if (!st) {
        result = st;
        break;
      }
    }
    if (!result || !page->truncated) break;
    req.continuation_token = page->next_continuation_token;
  }
  changed();
  return result;
}

Result<int> Vfs::lock_fd(OpenFile& f) {
  std::lock_guard lock(f.lock_mu);
  if (f.lock_fd >= 0) return f.lock_fd;
  if (!node_) return error_for("lock", f.path, ENOLCK, "no node state directory for lock files");
  std::string path = node_->lock_path(f.display, "lock");
  f.lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (f.lock_fd < 0)
    return error_for("lock", f.path, ENOLCK, "cannot open lock file " + path + ": " + std::strerror(errno));
  return f.lock_fd;
}

}  // namespace ossshim::vfs
