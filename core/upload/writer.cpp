#include "upload/writer.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "log/log.hpp"
#include "util/crc64.hpp"
#include "util/size.hpp"

namespace ossshim::upload {

namespace {
constexpr int kMaxParts = 10000;
constexpr std::uint64_t kMaxPart = 5ull << 30;
constexpr std::uint64_t kReserveStep = 64ull << 20;  // free space is re-checked every 64 MiB of growth

std::string errno_text(int err) {
  return std::strerror(err);
}

bool write_all(int fd, const char* data, std::size_t len, std::uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n, len -= static_cast<std::size_t>(n), off += static_cast<std::uint64_t>(n);
  }
  return true;
}
}  // namespace

// Every live writer, so that fork waits for any writer operation in progress (see forksafe.hpp).
namespace {
constinit forksafe::Set g_writers;
}  // namespace

// --- Uploader ---------------------------------------------------------------------------------

Uploader::Uploader(const Config& config, oss::Client& client)
    : config_(config),
      client_(client),
      pool_(config.upload_concurrency),
      // Twice the workers' worth of parts: one set uploading, one queued behind them.
      budget_(2ull * config.upload_concurrency * config.part_size) {}

void Uploader::submit(std::uint64_t bytes, std::function<void()> job) {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0 || in_flight_ + bytes <= budget_; });
    in_flight_ += bytes;
  }
  pool_.submit(std::move(job), fetch::Fetcher::Priority::demand);
}

void Uploader::done(std::uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    in_flight_ -= std::min(bytes, in_flight_);
  }
  cv_.notify_all();
}

void Uploader::after_fork_child() {
  pool_.after_fork_child();
  new (&mu_) std::mutex;
  new (&cv_) std::condition_variable;
  in_flight_ = 0;
}

std::uint64_t part_bytes(std::uint64_t part_size, int number) {
  int doublings = std::min((number - 1) / 2000, 10);
  return std::min(part_size << doublings, kMaxPart);
}

PartSpan part_at(std::uint64_t part_size, std::uint64_t off) {
  PartSpan span{1, 0, part_bytes(part_size, 1)};
  // Whole groups of 2000 equal parts at a time, then the part inside the group.
  while (span.number + 2000 <= kMaxParts + 1 && off >= span.start + 2000 * span.size) {
    span.start += 2000 * span.size;
    span.number += 2000;
    span.size = part_bytes(part_size, span.number);
  }
  std::uint64_t index = (off - span.start) / span.size;
  span.number += static_cast<int>(index);
  span.start += index * span.size;
  return span;
}

// --- Writer -----------------------------------------------------------------------------------

struct Writer::Parts {
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  std::map<int, oss::UploadedPart> done;  // by number: a part uploaded again replaces the first
  std::optional<Error> failure;           // the first failure
  // The spool: every part's bytes at their offsets, written by its job before the upload, so the
  // file can still switch to staging. Dropped (and spool_lost says why) when it cannot be kept.
  std::mutex spool_mu;
  int spool_fd = -1;
  std::string spool_lost;

  ~Parts() {
    if (spool_fd >= 0) ::close(spool_fd);
  }
  // Waits until no job is running; then the first failure, if a part failed.
  std::optional<Error> wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return pending == 0; });
    return failure;
  }
  // Before a part's job is queued: the first failure, once a part has failed.
  std::optional<Error> begin() {
    std::lock_guard lock(mu);
    if (!failure) ++pending;
    return failure;
  }
  // A job's outcome for part `number` of `size` bytes (`crc`: of the bytes the job sent).
  void finish(int number, Result<oss::UploadedPart> r, std::uint64_t size, std::optional<std::uint64_t> crc) {
    std::lock_guard lock(mu);
    if (r) {
      oss::UploadedPart p = r.value();
      p.part_number = number;
      p.size = size;
      if (crc) p.crc64 = crc;
      done[number] = std::move(p);
    } else if (!failure) {
      failure = r.error();
    }
    if (--pending == 0) cv.notify_all();
  }
  void drop_spool_locked(const std::string& display, std::string why) {
    if (spool_fd < 0) return;
    ::close(spool_fd);
    spool_fd = -1;
    log::info(display + ": no local copy of its uploaded parts from here on (" + why +
              "); a later write behind them will fail");
    spool_lost = std::move(why);
  }
};

Writer::Writer(Uploader& uploader, Options options)
    : up_(uploader), opt_(std::move(options)), dirty_(!opt_.base_size) {
  g_writers.insert(fork_member_, this);
  if (opt_.base_size) size_ = *opt_.base_size;
  const char* tmp = std::getenv("TMPDIR");
  std::string base = !up_.config().staging_dir.empty() ? up_.config().staging_dir
                     : tmp && *tmp                     ? tmp
                                                       : "/tmp";
  staging_dir_ = base + "/ossshim-staging-" + std::to_string(::geteuid());
}

Result<std::unique_ptr<Writer>> Writer::create(Uploader& uploader, Options options) {
  bool stage = options.stage;
  std::unique_ptr<Writer> w(new Writer(uploader, std::move(options)));
  if (stage) {
    std::lock_guard lock(w->mu_);
    if (auto st = w->to_stage_locked(); !st) return st.error();
  }
  return w;
}

Writer::~Writer() {
  g_writers.erase(fork_member_);  // unreachable now: no fork needs to wait for what follows
  if (!abandoned_) {
    std::lock_guard lock(mu_);
    abort_upload_locked();
  }
  if (fd_ >= 0) ::close(fd_);
}

void Writer::lock_all(void*) {
  g_writers.mu.lock();
  g_writers.each([](void* w) { static_cast<Writer*>(w)->mu_.lock(); });
}

void Writer::unlock_all(void*) {
  g_writers.each([](void* w) { static_cast<Writer*>(w)->mu_.unlock(); });
  g_writers.mu.unlock();
}

namespace {
const bool g_writers_fork_safe =
    (forksafe::add(forksafe::Rank::writers,
                   forksafe::Hooks{Writer::lock_all, Writer::unlock_all, Writer::unlock_all}, nullptr),
     true);
}  // namespace

void Writer::abandon() {
  abandoned_ = true;
}

Error Writer::error(int err, const std::string& message) const {
  Error e;
  e.err = err;
  e.op = "write";
  e.target = opt_.display;
  e.message = message;
  return e;
}

std::uint64_t Writer::size() {
  std::lock_guard lock(mu_);
  return size_;
}

// Staged bytes are the user's data: the directory must be this user's, private and real. One that
// another user created first (a world-writable /tmp) or made a symbolic link is refused.
Status Writer::check_staging_dir() const {
  struct stat st;
  if (::lstat(staging_dir_.c_str(), &st) != 0)
    return error(errno, "cannot inspect the staging directory " + staging_dir_ + ": " + errno_text(errno));
  std::string why;
  if (S_ISLNK(st.st_mode))
    why = "is a symbolic link";
  else if (!S_ISDIR(st.st_mode))
    why = "is not a directory";
  else if (st.st_uid != ::geteuid())
    why = "is owned by uid " + std::to_string(st.st_uid);
  else if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = std::string("has mode ") + mode;
  }
  if (why.empty()) return ok_status();
  return error(EACCES, "the staging directory " + staging_dir_ + " " + why +
                           ", not a private directory (0700) of uid " + std::to_string(::geteuid()) +
                           "; refused, others could read or replace staged data: remove it, or set "
                           "OSSSHIM_STAGING_DIR to a directory of your own");
}

// An unlinked file in the staging directory: where every non-streaming pattern goes, and the spool.
Result<int> Writer::make_staging_file() {
  if (::mkdir(staging_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    // A configured directory's parent may be missing: create it too (once).
    auto slash = staging_dir_.rfind('/');
    if (errno != ENOENT || slash == 0 || slash == std::string::npos ||
        (::mkdir(staging_dir_.substr(0, slash).c_str(), 0700) != 0 && errno != EEXIST) ||
        (::mkdir(staging_dir_.c_str(), 0700) != 0 && errno != EEXIST))
      return error(errno, "cannot create the staging directory " + staging_dir_ + ": " + errno_text(errno) +
                              " (set OSSSHIM_STAGING_DIR)");
  }
  if (auto st = check_staging_dir(); !st) return st.error();
  std::string name = staging_dir_ + "/write-XXXXXX";
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    return error(errno, "cannot create a staging file in " + staging_dir_ + ": " + errno_text(errno) +
                            " (set OSSSHIM_STAGING_DIR)");
  ::unlink(name.c_str());  // nothing else needs its name; it vanishes with the descriptor
  return fd;
}

// Keeps `staging_reserve` bytes free on the file system of `fd`, a staging file growing to
// `new_size` (checked every 64 MiB of growth).
Status Writer::reserve(int fd, std::uint64_t new_size, std::uint64_t& checked_until) {
  if (new_size <= checked_until) return ok_status();
  struct statvfs vs;
  if (::fstatvfs(fd, &vs) != 0) return ok_status();  // no answer: let the write itself fail
  std::uint64_t avail = static_cast<std::uint64_t>(vs.f_bavail) * vs.f_frsize;
  struct stat st;
  std::uint64_t have = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
  std::uint64_t need = new_size > have ? new_size - have : 0;
  std::uint64_t reserve = up_.config().staging_reserve;
  if (avail < need + reserve)
    return error(ENOSPC, "staging needs " + util::format_size(need) + " more in " + staging_dir_ +
                             ", which has " + util::format_size(avail) + " free and must keep " +
                             util::format_size(reserve) +
                             " (OSSSHIM_STAGING_RESERVE); point OSSSHIM_STAGING_DIR at a larger disk");
  checked_until = new_size + kReserveStep;
  return ok_status();
}

// A streamed file whose program turns back (a write behind the uploaded parts, a read, a
// truncation): the spool already holds every uploaded byte, so it becomes the staging file and
// the multipart upload is dropped; commit uploads the file again from staging.
Status Writer::stage_from_spool_locked() {
  if (auto st = wait_parts_locked(); !st) return st;  // then every spool write is done, too
  int spool;
  std::string lost;
  {
    std::lock_guard lock(parts_->spool_mu);
    spool = std::exchange(parts_->spool_fd, -1);
    lost = parts_->spool_lost;
  }
  std::uint64_t uploaded = size_ - buf_.size();
  if (spool < 0)
    return error(EIO, "this file is being streamed to OSS and its first " + util::format_size(uploaded) +
                          " are already uploaded with no local copy (" + lost +
                          "); a write behind them, a read or a truncation needs staging from the start: "
                          "set OSSSHIM_STAGE_WRITES=true for this program");
  fd_ = spool;
  checked_until_ = spool_checked_until_;
  abort_upload_locked();
  log::info(opt_.display + ": turned back after " + util::format_size(uploaded) +
            " were uploaded; continuing from its local copy, the whole file is uploaded again at close");
  return ok_status();
}

Status Writer::to_stage_locked() {
  if (fd_ >= 0) return ok_status();
  std::uint64_t start = size_ - buf_.size();
  if (!upload_id_.empty()) {
    if (auto st = stage_from_spool_locked(); !st) return st;
  } else {
    auto fd = make_staging_file();
    if (!fd) return fd.error();
    fd_ = fd.value();
    checked_until_ = 0;
  }
  if (opt_.base_size) {
    // The existing content: fetched lazily (load_base_locked), copied server-side at commit.
    base_ = Committed{*opt_.base_size, opt_.base_etag, 0};
    copy_limit_ = *opt_.base_size;
    base_loaded_.clear();
    if (auto st = reserve(fd_, *opt_.base_size, checked_until_); !st) return st;
  }
  opt_.base_size.reset();
  if (!buf_.empty()) {
    if (auto st = reserve(fd_, size_, checked_until_); !st) return st;
    if (!write_all(fd_, buf_.data(), buf_.size(), start))
      return error(errno ? errno : EIO, "staging file: " + errno_text(errno));
    std::string().swap(buf_);
  }
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0)
    return error(errno, "staging file: " + errno_text(errno));
  return ok_status();
}

Result<std::size_t> Writer::write(const char* data, std::size_t len, std::uint64_t off) {
  std::lock_guard lock(mu_);
  if (failed_) return *failed_;
  if (len == 0) return std::size_t{0};
  // A failed write poisons the file: no later commit may store it without those bytes.
  auto fail = [&](Error e) {
    failed_ = e;
    abort_upload_locked();
    return e;
  };
  bool streaming = fd_ < 0;
  std::uint64_t unshipped = size_ - buf_.size();  // where the bytes still in memory start
  // A rewrite of bytes not yet handed to an upload (zipfile fixing a member's header) is patched
  // in memory; anything further back needs staging.
  if (streaming && !opt_.base_size && off >= unshipped && off < size_) {
    std::size_t over = static_cast<std::size_t>(std::min<std::uint64_t>(len, size_ - off));
    buf_.replace(static_cast<std::size_t>(off - unshipped), over, data, over);
    dirty_ = true;
    if (over == len) return len;
    data += over, len -= over, off += over;  // the rest extends the file
  }
  if (streaming && (off != size_ || opt_.base_size)) {
    if (auto st = to_stage_locked(); !st) return fail(st.error());
    streaming = false;
  }
  dirty_ = true;
  if (streaming) {
    buf_.append(data, len);
    size_ += len;
    // A part leaves memory only once another part's worth follows it: a rewrite up to a part
    // size back (a header fixed after its member is written) is then still patched in memory.
    std::uint64_t want = part_bytes(up_.config().part_size, next_part_);
    while (buf_.size() >= 2 * want) {
      if (auto st = ship_front_locked(want); !st) return fail(st.error());
      want = part_bytes(up_.config().part_size, next_part_);
    }
    return len;
  }
  if (auto st = reserve(fd_, std::max(size_, off + len), checked_until_); !st) return fail(st.error());
  if (auto st = load_base_locked(off, len, true); !st) return fail(st.error());
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, data + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done) break;
      return fail(error(errno, "staging file: " + errno_text(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
  size_ = std::max(size_, off + done);
  if (auto st = note_staged_write_locked(off, done); !st) return fail(st.error());
  return done;
}

// Records [off, off+len) as written to the staging file and uploads every part it completes.
Status Writer::note_staged_write_locked(std::uint64_t off, std::uint64_t len) {
  std::uint64_t end = off + len;
  while (off < end) {
    PartSpan span = part_at(up_.config().part_size, off);
    std::uint64_t stop = std::min(end, span.start + span.size);
    StagedPart& part = staged_parts_[span.number];
    if (part.shipped) {
      part.dirty = true;
    } else {
      // Merge [off, stop) into the disjoint intervals.
      std::uint64_t from = off, to = stop;
      auto it = part.written.upper_bound(from);
      if (it != part.written.begin() && std::prev(it)->second >= from) --it;
      while (it != part.written.end() && it->first <= to) {
        from = std::min(from, it->first);
        to = std::max(to, it->second);
        it = part.written.erase(it);
      }
      part.written.emplace(from, to);
      if (from == span.start && to == span.start + span.size) {
        auto body = read_staged_locked(span.start, span.size);
        if (!body) return body.error();
        part.shipped = true;
        part.written.clear();
        if (auto st = ship_part_locked(std::move(body.value()), span.start, span.number); !st) return st;
      }
    }
    off = stop;
  }
  return ok_status();
}

// Makes the base's bytes present in the staging file for the parts [off, off+len) touches,
// except (when `writing`) parts that write covers whole: those need nothing of the base.
Status Writer::load_base_locked(std::uint64_t off, std::uint64_t len, bool writing) {
  std::uint64_t first = off, last = off + len;  // the bytes being read or written
  for (std::uint64_t at = off; base_ && at < std::min(last, copy_limit_);) {
    PartSpan span = part_at(up_.config().part_size, at);
    std::uint64_t from = span.start, to = std::min(span.start + span.size, copy_limit_);
    at = span.start + span.size;
    if (base_loaded_.count(span.number)) continue;
    if (writing && first <= from && last >= to) {  // overwritten whole: nothing to keep
      base_loaded_.insert(span.number);
      continue;
    }
    std::vector<char> block(static_cast<std::size_t>(std::min<std::uint64_t>(to - from, 8ull << 20)));
    for (std::uint64_t pos = from; pos < to; pos += block.size()) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), to - pos));
      if (auto st = opt_.read_object(base_->etag, base_->size, block.data(), n, pos); !st) return st;
      if (!write_all(fd_, block.data(), n, pos))
        return error(errno ? errno : EIO, "staging file: " + errno_text(errno));
    }
    base_loaded_.insert(span.number);
  }
  return ok_status();
}

// Queues an UploadPartCopy of the base's bytes [off, off+len) as part `number`.
Status Writer::ship_copy_locked(int number, std::uint64_t off, std::uint64_t len) {
  if (auto failure = parts_->begin()) return *failure;
  auto job = [parts = parts_, &up = up_, bucket = opt_.bucket, key = opt_.key, id = upload_id_, number, off,
              len, etag = base_->etag]() {
    auto r = up.client().upload_part_copy(bucket, key, id, number, bucket, key, off, off + len - 1, etag);
    parts->finish(number, std::move(r), len, std::nullopt);  // its CRC64 is the server's to say
  };
  up_.submit(0, std::move(job));  // no buffer: the server copies
  return ok_status();
}

// After a staged truncation to `size`: parts past it are forgotten (left out at completion); the
// part it now ends in changed if it was shipped, and its written intervals end at `size`.
void Writer::note_staged_truncate_locked(std::uint64_t size) {
  PartSpan span = part_at(up_.config().part_size, size);
  staged_parts_.erase(staged_parts_.upper_bound(span.number), staged_parts_.end());
  auto it = staged_parts_.find(span.number);
  if (it == staged_parts_.end()) return;
  if (it->second.shipped) {
    it->second.dirty = true;
    return;
  }
  auto& written = it->second.written;
  for (auto w = written.begin(); w != written.end();) {
    if (w->first >= size) {
      w = written.erase(w);
    } else {
      w->second = std::min(w->second, size);
      ++w;
    }
  }
}

Result<std::size_t> Writer::read(char* out, std::size_t len, std::uint64_t off) {
  std::lock_guard lock(mu_);
  if (fd_ < 0) {
    // A forked child has the parent's buffers but none of its uploads: nothing it could stage.
    if (abandoned_) return error(EBADF, "being written by the parent process; read it after its close");
    if (auto st = to_stage_locked(); !st) return st.error();
  }
  if (off >= size_) return std::size_t{0};
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, size_ - off));
  if (auto st = load_base_locked(off, len, false); !st) return st.error();
  ssize_t n = ::pread(fd_, out, len, static_cast<off_t>(off));
  if (n < 0) return error(errno, "staging file: " + errno_text(errno));
  return static_cast<std::size_t>(n);
}

Status Writer::truncate(std::uint64_t size) {
  std::lock_guard lock(mu_);
  if (size == size_ && !opt_.base_size) return ok_status();
  dirty_ = true;
  if (size == 0 && fd_ < 0) {
    // Start over: nothing of the old content or of what was streamed survives.
    abort_upload_locked();
    failed_.reset();
    opt_.base_size.reset();
    std::string().swap(buf_);
    size_ = 0;
    return ok_status();
  }
  if (fd_ < 0)
    if (auto st = to_stage_locked(); !st) return st;
  if (size > size_)
    if (auto st = reserve(fd_, size, checked_until_); !st) return st;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
    return error(errno, "staging file: " + errno_text(errno));
  copy_limit_ = std::min(copy_limit_, size);  // the base's bytes beyond are gone for good
  if (size < size_) note_staged_truncate_locked(size);
  size_ = size;
  return ok_status();
}

// --- multipart --------------------------------------------------------------------------------

Status Writer::start_upload_locked() {
  oss::WriteOptions wo;
  wo.forbid_overwrite = opt_.exclusive;
  auto id = up_.client().initiate_multipart(opt_.bucket, opt_.key, wo);
  if (!id) return id.error();
  upload_id_ = id.value();
  next_part_ = 1;
  parts_ = std::make_shared<Parts>();
  if (fd_ < 0) start_spool_locked();
  return ok_status();
}

void Writer::start_spool_locked() {
  if (!up_.config().spool_writes) {
    parts_->spool_lost = "spool_writes is off";
    return;
  }
  auto fd = make_staging_file();
  if (!fd) {
    parts_->spool_lost = fd.error().message;
    return;
  }
  // In memory (tmpfs), a copy of every file being written would cost RAM: not kept there.
  struct statfs fs;
  if (::fstatfs(fd.value(), &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) {
    ::close(fd.value());
    parts_->spool_lost = "the staging directory " + staging_dir_ + " is in memory";
    return;
  }
  parts_->spool_fd = fd.value();
  spool_checked_until_ = 0;
}

// Hands the first `n` buffered bytes to an upload worker as the next part.
Status Writer::ship_front_locked(std::uint64_t n) {
  if (upload_id_.empty())  // first, as it numbers parts from 1
    if (auto st = start_upload_locked(); !st) return st;
  std::uint64_t offset = size_ - buf_.size();
  std::string body = buf_.substr(0, static_cast<std::size_t>(n));
  buf_.erase(0, static_cast<std::size_t>(n));
  return ship_part_locked(std::move(body), offset, next_part_++);
}

// Queues `body`, the file's bytes from `offset`, as part `number`.
Status Writer::ship_part_locked(std::string body, std::uint64_t offset, int number) {
  if (upload_id_.empty())
    if (auto st = start_upload_locked(); !st) return st;
  if (number > kMaxParts)
    return error(EFBIG, "more than 10,000 parts: raise OSSSHIM_PART_SIZE (now " +
                            util::format_size(up_.config().part_size) + ")");
  if (auto failure = parts_->begin()) return *failure;  // fail the write as soon as a part failed
  std::uint64_t bytes = body.size();
  {
    std::lock_guard lock(parts_->spool_mu);
    if (parts_->spool_fd >= 0)
      if (auto st = reserve(parts_->spool_fd, offset + bytes, spool_checked_until_); !st)
        parts_->drop_spool_locked(opt_.display, st.error().message);
  }
  auto job = [parts = parts_, &up = up_, bucket = opt_.bucket, key = opt_.key, id = upload_id_, number,
              offset, display = opt_.display, body = std::move(body)]() mutable {
    {
      std::lock_guard lock(parts->spool_mu);
      if (parts->spool_fd >= 0 && !write_all(parts->spool_fd, body.data(), body.size(), offset))
        parts->drop_spool_locked(display, "writing the local copy: " + errno_text(errno));
    }
    std::uint64_t crc = util::crc64_update(0, body.data(), body.size());
    auto r = up.client().upload_part(bucket, key, id, number, body);
    std::uint64_t n = body.size();
    std::string().swap(body);  // release the buffer before waiting on the lock
    up.done(n);
    parts->finish(number, std::move(r), n, crc);
  };
  up_.submit(bytes, std::move(job));
  return ok_status();
}

Status Writer::wait_parts_locked() {
  if (auto failure = parts_->wait()) return *failure;
  return ok_status();
}

// The staging file's bytes [off, off+len), the base's included (fetched if not there yet).
Result<std::string> Writer::read_staged_locked(std::uint64_t off, std::uint64_t len) {
  if (auto st = load_base_locked(off, len, false); !st) return st.error();
  std::string body(static_cast<std::size_t>(len), '\0');
  if (len && ::pread(fd_, body.data(), body.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(len))
    return error(errno ? errno : EIO, "staging file: " + errno_text(errno));
  return body;
}

// Completes the upload with parts 1..last (parts uploaded beyond a truncation are left out, and
// the server drops them).
Result<Committed> Writer::finish_upload_locked(int last) {
  if (auto st = wait_parts_locked(); !st) {
    abort_upload_locked();
    return st.error();
  }
  std::vector<oss::UploadedPart> parts;
  for (auto& [number, part] : parts_->done)
    if (number <= last) parts.push_back(part);
  std::uint64_t crc = 0, total = 0;
  bool crc_known = true;  // a copied part's CRC64 is the server's to give
  for (const auto& p : parts) {
    crc = util::crc64_combine(crc, p.crc64.value_or(0), p.size);
    crc_known = crc_known && p.crc64;
    total += p.size;
  }
  oss::WriteOptions wo;
  wo.forbid_overwrite = opt_.exclusive;
  auto r = up_.client().complete_multipart(opt_.bucket, opt_.key, upload_id_, parts, wo);
  if (!r) {
    Error e = r.error();
    if (e.code == oss::kCrcMismatch) {
      upload_id_.clear();  // completed, wrongly: nothing to abort, the object goes
      parts_.reset();
      return remove_if_wrong(e);
    }
    abort_upload_locked();
    return e;
  }
  upload_id_.clear();
  parts_.reset();
  if (crc_known && r->crc64 && *r->crc64 != crc)
    return remove_if_wrong(
        error(EIO, "upload integrity: the completed object's CRC64 differs from the bytes written"));
  return Committed{total, r->etag, std::time(nullptr)};
}

void Writer::abort_upload_locked() {
  if (upload_id_.empty()) return;
  if (parts_) parts_->wait();  // no job may still be sending into the upload
  staged_parts_.clear();       // shipped parts are gone with the upload
  auto st = up_.client().abort_multipart(opt_.bucket, opt_.key, upload_id_);
  if (!st)
    log::warn(opt_.display + ": could not abort multipart upload " + upload_id_ + " (" +
              st.error().to_string() + "); `ossrun uploads --abort` removes it");
  upload_id_.clear();
  parts_.reset();
}

// An upload the server stored with a CRC64 other than the written bytes' is removed rather than
// left wrong; `e` is returned either way.
Error Writer::remove_if_wrong(Error e) {
  if (e.code != oss::kCrcMismatch && e.message.rfind("upload integrity", 0) != 0) return e;
  auto st = up_.client().delete_object(opt_.bucket, opt_.key);
  e.message += st ? "; the stored object was deleted" : "; deleting the stored object failed too";
  return e;
}

// A file that fits one part: one PutObject (the server checks its Content-MD5), CRC64 compared.
Result<Committed> Writer::put_whole_locked(std::string_view body) {
  oss::WriteOptions wo;
  wo.forbid_overwrite = opt_.exclusive;
  auto r = up_.client().put_object(opt_.bucket, opt_.key, body, wo);
  if (!r) return remove_if_wrong(r.error());
  return Committed{body.size(), r->etag, std::time(nullptr)};
}

Result<Committed> Writer::commit_stream_locked() {
  if (upload_id_.empty()) {
    auto r = put_whole_locked(buf_);
    if (r) std::string().swap(buf_);
    return r;
  }
  // The part held back, then the tail (an upload exists, so at least one part went before).
  std::uint64_t want = part_bytes(up_.config().part_size, next_part_);
  Status st = buf_.size() > want ? ship_front_locked(want) : ok_status();
  if (st && !buf_.empty()) st = ship_front_locked(buf_.size());
  if (!st) {
    abort_upload_locked();
    return st.error();
  }
  return finish_upload_locked(next_part_ - 1);
}

// Uploads every part not shipped while the program wrote (or written since), then completes.
Result<Committed> Writer::commit_staged_locked() {
  std::uint64_t first = part_bytes(up_.config().part_size, 1);
  if (size_ <= first && upload_id_.empty()) {
    auto body = read_staged_locked(0, size_);
    if (!body) return body.error();
    return put_whole_locked(body.value());
  }
  // Parts shipped early finish first: a part uploaded again must replace them, not race them.
  Status st = upload_id_.empty() ? start_upload_locked() : wait_parts_locked();
  int last = 0;
  for (std::uint64_t off = 0; st && off < size_;) {
    PartSpan span = part_at(up_.config().part_size, off);
    auto it = staged_parts_.find(span.number);
    bool current = it != staged_parts_.end() && it->second.shipped && !it->second.dirty;
    std::uint64_t n = std::min(span.size, size_ - off);
    if (!current && base_ && it == staged_parts_.end() && off + n <= copy_limit_) {
      st = ship_copy_locked(span.number, off, n);  // never written: the stored bytes still hold
    } else if (!current) {
      auto body = read_staged_locked(off, n);
      st = body ? ship_part_locked(std::move(body.value()), off, span.number) : Status(body.error());
    }
    last = span.number;
    off += n;
  }
  staged_parts_.clear();  // whatever happens next, a later commit starts a new upload
  if (!st) {
    abort_upload_locked();
    return st.error();
  }
  return finish_upload_locked(last);
}

Result<std::optional<Committed>> Writer::commit() {
  std::lock_guard lock(mu_);
  if (abandoned_) return error(EBADF, "opened for writing by the parent process; only it can commit");
  if (failed_) {
    abort_upload_locked();
    return *failed_;
  }
  if (!dirty_) return std::optional<Committed>();
  auto r = fd_ >= 0 ? commit_staged_locked() : commit_stream_locked();
  if (!r) {
    if (fd_ < 0) failed_ = r.error();  // streamed bytes are gone: nothing left to retry with
    return r.error();
  }
  dirty_ = false;
  if (fd_ < 0) {
    // What was streamed is gone from memory: later changes start from the committed object.
    opt_.base_size = size_;
    opt_.base_etag = r->etag;
  } else {
    base_ = r.value();  // parts not in the staging file yet are fetched from (or copied) here
    copy_limit_ = size_;
  }
  return std::optional<Committed>(r.value());
}

}  // namespace ossshim::upload
