#undef _FILE_OFFSET_BITS
// The virtual fd registry, path resolution and error reporting behind every interposed call.
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "http/transport.hpp"
#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"

namespace ossshim::shim {

namespace {
void commit_parked();

// The real directory a relative path starts from: the cwd or what dirfd names ("" if unknown).
std::string real_base(int dirfd) {
  int saved = errno;
  char buf[4096];
  std::string base;
  if (dirfd == AT_FDCWD) {
    if (REAL(getcwd)(buf, sizeof buf)) base = buf;
  } else {
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = REAL(readlink)(link, buf, sizeof buf);
    if (n > 0 && n < static_cast<ssize_t>(sizeof buf) && buf[0] == '/')
      base.assign(buf, static_cast<std::size_t>(n));
  }
  errno = saved;
  return base;
}
}  // namespace

bool resolve(int dirfd, const char* path, vfs::VPath& out) {
  commit_parked();  // a program's call on a virtual path: a safe point (see park)
  Globals& g = globals();
  std::string_view prefix(g.prefix, g.prefix_len);
  if (path[0] == '/') return vfs::parse(prefix, path, out);
  std::string base;
  if (dirfd == AT_FDCWD) {
    std::lock_guard lock(g.cwd_mu);
    if (g.cwd_virtual.load() && g.cwd != nullptr) base = *g.cwd;
  } else {
    base = display_of(dirfd);
  }
  // A real directory above the prefix ("/" opened by rsync, a cwd of "/"): lexically from its
  // real path, which the kernel's ".." follows too.
  if (base.empty() && may_lead_into_prefix(path)) base = real_base(dirfd);
  if (base.empty()) return false;
  return vfs::parse(prefix, base + "/" + path, out);
}

bool through_local_link(int dirfd, const char* path, vfs::VPath& out) {
  Globals& g = globals();
  std::string_view prefix(g.prefix, g.prefix_len);
  int saved = errno;
  std::string rest = path;
  if (rest[0] != '/') {
    std::string base = real_base(dirfd);
    if (base.empty()) return false;
    rest = base + "/" + rest;
  }
  char text[4096];
  // The common case first, in two calls: the last component is missing from a directory that
  // exists (a program probing for a file). Not a link: nothing to follow.
  std::size_t slash = rest.rfind('/');
  if (REAL(readlink)(rest.c_str(), text, sizeof text - 1) < 0) {
    std::string dir = slash == 0 ? "/" : rest.substr(0, slash);
    if (errno != ENOENT || REAL(access)(dir.c_str(), F_OK) == 0) {
      errno = saved;
      return false;
    }
  }
  // Walks the components as the kernel does, substituting each symlink's text; stops at the
  // first missing one, or when the path reached lies under the prefix.
  std::string done;  // resolved so far, no trailing '/' ("" is the root)
  bool found = false;
  for (int links = 0; links <= vfs::Vfs::kMaxLinks;) {
    std::size_t at = rest.find_first_not_of('/');
    if (at == std::string::npos) break;  // every component resolved, none into the prefix
    std::size_t end = rest.find('/', at);
    std::string comp = rest.substr(at, end == std::string::npos ? std::string::npos : end - at);
    rest = end == std::string::npos ? "" : rest.substr(end);
    if (comp == ".") continue;
    if (comp == "..") {
      done = done.substr(0, done.rfind('/') == std::string::npos ? 0 : done.rfind('/'));
      continue;
    }
    std::string next = done + "/" + comp;
    ssize_t n = REAL(readlink)(next.c_str(), text, sizeof text - 1);
    if (n < 0) {
      if (errno != EINVAL) break;  // missing (the real ENOENT) or unreadable: not ours
      done = next;
      continue;
    }
    ++links;
    std::string target(text, static_cast<std::size_t>(n));
    rest = (target[0] == '/' ? target : done + "/" + target) + rest;
    done.clear();
    if (vfs::parse(prefix, rest, out)) {
      found = true;
      break;
    }
  }
  errno = saved;
  return found;
}

std::string display_of(int fd) {
  int saved = errno;  // callers pass the call through when this is empty
  auto f = lookup_file(fd);
  errno = saved;
  return f ? f->display : std::string();
}

namespace {
// Writers whose last descriptor was closed behind the shim's back. The check that finds one may
// run inside the shim's own calls (its opens and reads pass through the interposed functions,
// possibly under its locks, or inside libcurl), so they are committed at the next call a program
// makes on a virtual path or a virtual close (commit_parked), or at exit (Vfs::detach commits
// every open writer).
std::mutex g_parked_mu;
std::vector<std::shared_ptr<vfs::OpenFile>>* g_parked = nullptr;  // guarded by g_parked_mu
std::atomic<bool> g_any_parked{false};

void park(std::shared_ptr<vfs::OpenFile> last) {
  std::lock_guard lock(g_parked_mu);
  if (!g_parked) g_parked = new std::vector<std::shared_ptr<vfs::OpenFile>>;
  g_parked->push_back(std::move(last));
  g_any_parked.store(true);
}

void commit_parked() {
  if (!g_any_parked.load(std::memory_order_relaxed) || http::in_curl() || in_vfork_child()) return;
  std::vector<std::shared_ptr<vfs::OpenFile>> ready;
  {
    std::lock_guard lock(g_parked_mu);
    ready.swap(*g_parked);
    g_any_parked.store(false);
  }
  int saved = errno;
  for (auto& f : ready) finish_close(f, 0);  // close_file logs a failure
  errno = saved;
}

// The stale entry of `fd`: its placeholder was closed by a call the shim did not see.
void forget_stale(int fd) {
  if (in_vfork_child()) return;  // the tables are the parent's
  auto f = lookup_file(fd);
  auto last = detach(fd);
  if (!f) return;
  log::warn("descriptor " + std::to_string(fd) + " of " + f->display +
            " was closed by a system call the shim did not see (raw syscall or io_uring)" +
            (last ? "; what was written through the shim is committed, as close would" : "; entry dropped"));
  if (last) park(std::move(last));
}
}  // namespace

bool placeholder_intact(int fd) {
  Globals& g = globals();
  struct stat st;
  if (REAL(fstat)(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == g.fd_ino[fd].load() &&
      static_cast<std::uint64_t>(st.st_dev) == g.fd_dev[fd].load())
    return true;
  forget_stale(fd);
  return false;
}

namespace {
bool is_placeholder_link(int fd);
}  // namespace

int checked_dup(int oldfd, FdIdentity before, int r, const std::shared_ptr<vfs::OpenFile>& f) {
  if (r < 0 || oldfd < 0 || oldfd >= kMaxFds || r == oldfd) return r;
  if (!f && (in_own_call() || (before.ino == 0 && identity_now(oldfd).ino == 0))) return r;
  int saved = errno;
  struct stat st;
  if (REAL(fstat)(r, &st) != 0) return r;
  auto dev = static_cast<std::uint64_t>(st.st_dev);
  auto ino = static_cast<std::uint64_t>(st.st_ino);
  FdIdentity now = identity_now(oldfd);
  bool ok =
      f ? now.dev == dev && now.ino == ino && lookup_file(oldfd) == f
        : !closing_placeholder(oldfd, before, dev, ino) && (st.st_nlink != 0 || !is_placeholder_link(r));
  if (ok) {
    errno = saved;
    return r;
  }
  REAL(close)(r);
  errno = EBADF;
  return -1;
}

void attach(int fd, std::shared_ptr<vfs::OpenFile> file) {
  Globals& g = globals();
  struct stat st;
  if (REAL(fstat)(fd, &st) == 0) {
    g.fd_dev[fd].store(static_cast<std::uint64_t>(st.st_dev));
    g.fd_ino[fd].store(static_cast<std::uint64_t>(st.st_ino));
  }
  file->descriptors.fetch_add(1);
  auto old = exchange_file(fd, std::move(file));
  // A stale entry the kernel's new descriptor replaces: its close was missed; close it now.
  if (old && old->descriptors.fetch_sub(1) == 1 && old->writer) park(std::move(old));
  if (g.fd_kind[fd].exchange(kVirtual, std::memory_order_acq_rel) == kPlain) g.virtual_fds.fetch_add(1);
}

std::shared_ptr<vfs::OpenFile> detach(int fd) {
  Globals& g = globals();
  if (fd < 0 || fd >= kMaxFds) return nullptr;
  if (g.fd_kind[fd].load() != kVirtual) return nullptr;
  if (g.fd_kind[fd].exchange(kPlain, std::memory_order_acq_rel) != kPlain) g.virtual_fds.fetch_sub(1);
  auto f = exchange_file(fd, nullptr);
  if (f && f->descriptors.fetch_sub(1) == 1 && f->writer) return f;
  return nullptr;
}

int finish_close(const std::shared_ptr<vfs::OpenFile>& last, int result) {
  commit_parked();
  if (!last) return result;
  vfs::Vfs* fs = filesystem();
  if (!fs) return result;
  auto st = fs->close_file(*last);
  if (!st) {
    errno = st.error().err ? st.error().err : EIO;  // close_file logged it
    return -1;
  }
  return result;
}

namespace {
constexpr char kPlaceholderName[] = "ossshim-fd";
constexpr char kPlaceholderLink[] = "/memfd:ossshim-fd (deleted)";
constexpr char kDirPlaceholderStem[] = ".ossshim-dir-";
constexpr char kRecordsVar[] = "OSSSHIM_INHERITED_FDS";

// What a program exec'd with a virtual fd needs to take it over, beyond what fstat of the
// placeholder says (type, size, mtime). Keyed by the placeholder's (st_dev, st_ino).
struct Record {
  char kind = 'r';  // 'r' file for reading, 'd' directory, 'w' writer
  int flags = 0;    // a writer's open flags (O_APPEND)
  long opener = 0;  // a writer's process
  // A writer whose bytes written before the exec were stored (a sink handed to exec,
  // sinks_before_exec): the new program keeps the object's content and writes on from this
  // offset, as the same open file description would. -1: it opens as the program did (O_TRUNC).
  long long keep = -1;
  std::string etag, display;
};
using Identity = std::pair<std::uint64_t, std::uint64_t>;
std::mutex g_records_mu;
std::map<Identity, Record>* g_records = nullptr;  // guarded by g_records_mu; never destroyed
std::vector<std::pair<int, Record>> g_handed;     // note_handoff, for this exec

std::map<Identity, Record>& records() {
  if (!g_records) g_records = new std::map<Identity, Record>;
  return *g_records;
}

bool identity_of(int fd, Identity& id, struct stat* out = nullptr) {
  struct stat st;
  if (REAL(fstat)(fd, &st) != 0) return false;
  id = {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  if (out) *out = st;
  return true;
}

// "dev:ino:kind:flags:opener:keep:etaglen:displaylen:" etag display ";" -- lengths, not separators,
// delimit the strings, so any key (';', newlines, 4 KiB long) round-trips.
void append_record(std::string& out, const Identity& id, const Record& r) {
  out += std::to_string(id.first) + ":" + std::to_string(id.second) + ":" + r.kind + ":" +
         std::to_string(r.flags) + ":" + std::to_string(r.opener) + ":" + std::to_string(r.keep) + ":" +
         std::to_string(r.etag.size()) + ":" + std::to_string(r.display.size()) + ":" + r.etag + r.display +
         ";";
}

void parse_records(const char* text, std::map<Identity, Record>& into) {
  const char* p = text;
  while (*p) {
    unsigned long long dev, ino, etag_len, display_len;
    char kind;
    int flags, used = 0;
    long opener;
    long long keep;
    if (std::sscanf(p, "%llu:%llu:%c:%d:%ld:%lld:%llu:%llu:%n", &dev, &ino, &kind, &flags, &opener, &keep,
                    &etag_len, &display_len, &used) != 8 ||
        used == 0 || std::strlen(p + used) < etag_len + display_len + 1 ||
        p[used + etag_len + display_len] != ';') {
      log::warn(std::string(kRecordsVar) + " is malformed at \"" + std::string(p).substr(0, 40) +
                "\": inherited virtual descriptors after it are not adopted (calls on them fail with EBADF)");
      return;
    }
    Record r;
    r.kind = kind;
    r.flags = flags;
    r.opener = opener;
    r.keep = keep;
    r.etag.assign(p + used, etag_len);
    r.display.assign(p + used + etag_len, display_len);
    into[{dev, ino}] = std::move(r);
    p += used + etag_len + display_len + 1;
  }
}

Record record_of(const vfs::OpenFile& f) {
  Record r;
  r.kind = f.attr.dir ? 'd' : f.writer ? 'w' : 'r';
  r.flags = f.status_flags.load();
  r.opener = f.writer_pid;
  r.etag = f.attr.etag;
  r.display = f.display;
  return r;
}

// A directory placeholder: an empty directory the shim makes and removes at once, held by an
// O_PATH descriptor (fstat: a 0755 directory with the listing's mtime; unique inode while open).
// Under /dev/shm (memory) when it exists, else /tmp. Without either: O_PATH of "/".
int make_dir_placeholder(const vfs::OpenFile& f, int flags) {
  static std::atomic<unsigned> counter{0};
  static const char* const base = REAL(access)("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  char path[128];
  std::snprintf(path, sizeof path, "%s/%s%d-%u", base, kDirPlaceholderStem, static_cast<int>(::getpid()),
                counter.fetch_add(1));
  int fd = -1;
  if (REAL(mkdir)(path, 0755) == 0) {
    REAL(chmod)(path, 0755);  // whatever the umask
    struct timespec times[2] = {{f.attr.mtime, 0}, {f.attr.mtime, 0}};
    REAL(utimensat)(AT_FDCWD, path, times, 0);
    fd = REAL(open)(path, flags | O_DIRECTORY);
    REAL(rmdir)(path);
  }
  return fd >= 0 ? fd : REAL(open)("/", flags | O_DIRECTORY);
}

// A file placeholder: an O_PATH descriptor of a memfd sized to the object (sparse: no memory),
// mode 0644, the object's mtime. O_PATH means read, write, mmap ... on it fail with EBADF, so a
// call that escapes the shim (raw syscall, io_uring, static binary) fails loudly, while a raw
// fstat/statx tells the truth about it. A writer keeps a real descriptor of the memfd
// (record_fd): a program that takes the file over after exec seals it (see adopt_fd).
int make_placeholder(vfs::OpenFile& f, bool cloexec) {
  int flags = O_PATH | (cloexec ? O_CLOEXEC : 0);
  if (f.attr.dir) return make_dir_placeholder(f, flags);
  int m = memfd_create(kPlaceholderName, MFD_CLOEXEC | MFD_ALLOW_SEALING);
#ifdef MFD_NOEXEC_SEAL
  if (m < 0 && errno == EACCES)
    m = memfd_create(kPlaceholderName, MFD_CLOEXEC | MFD_NOEXEC_SEAL);  // vm.memfd_noexec=2
#endif
  if (m >= 0) {
    vfs::Vfs* fs = filesystem();
    std::uint64_t size = f.writer && fs ? fs->size_of(f) : f.attr.size;
    std::time_t mtime = f.attr.mtime ? f.attr.mtime : std::time(nullptr);
    struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    bool shaped = REAL(ftruncate)(m, static_cast<off_t>(size)) == 0 && REAL(fchmod)(m, 0644) == 0;
    REAL(futimens)(m, times);
    char self[64];
    std::snprintf(self, sizeof self, "/proc/self/fd/%d", m);
    int fd = shaped ? REAL(open)(self, flags) : -1;
    if (fd >= 0 && f.writer && f.record_fd < 0) {
      f.record_fd = m;
      return fd;
    }
    REAL(close)(m);
    if (fd >= 0) return fd;
  }
  return REAL(open)("/", flags | O_DIRECTORY);  // no memfd or /proc: still fails loudly
}

bool is_placeholder_link(int fd) {
  char link[64], target[256];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return std::strcmp(target, kPlaceholderLink) == 0 || std::strstr(target, kDirPlaceholderStem) != nullptr;
}
}  // namespace

void note_handoff(int fd, const vfs::OpenFile& file, long long keep) {
  Record r = record_of(file);
  r.keep = keep;
  std::lock_guard lock(g_records_mu);
  g_handed.emplace_back(fd, std::move(r));
}

namespace {
// Every descriptor of this process that an exec keeps (no FD_CLOEXEC), read from /proc/self/fd
// with a stack buffer (this runs in vfork()ed children too).
std::vector<int> inheritable_fds() {
  std::vector<int> out;
  int dir = REAL(open)("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return out;
  char buf[4096];
  for (long n; (n = REAL(syscall)(SYS_getdents64, dir, buf, sizeof buf)) > 0;) {
    for (long at = 0; at < n;) {
      auto* e = reinterpret_cast<struct dirent64*>(buf + at);
      at += e->d_reclen;
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      int fd = std::atoi(e->d_name);
      int fdflags = fd == dir ? -1 : REAL(fcntl)(fd, F_GETFD);
      if (fdflags >= 0 && !(fdflags & FD_CLOEXEC)) out.push_back(fd);
    }
  }
  REAL(close)(dir);
  return out;
}
}  // namespace

std::string inheritance_env() {
  // Placeholders by identity: the table's, and the sinks' just made for this exec. Matching the
  // kernel's descriptors by identity also finds copies the table does not list (a dup2 onto 0..2
  // in a vfork()ed child, which must leave the tables alone).
  bool shared_memory = in_vfork_child();
  std::map<Identity, Record> placeholders;
  Globals& g = globals();
  for (int fd = 0; fd < kMaxFds; ++fd) {
    if (g.fd_kind[fd].load(std::memory_order_relaxed) != kVirtual) continue;
    if (auto f = lookup_file(fd)) placeholders[{g.fd_dev[fd].load(), g.fd_ino[fd].load()}] = record_of(*f);
  }
  if (!shared_memory) {
    std::vector<std::pair<int, Record>> handed;
    {
      std::lock_guard lock(g_records_mu);
      handed.swap(g_handed);
    }
    for (auto& [fd, r] : handed) {
      Identity id;
      if (identity_of(fd, id)) placeholders[id] = std::move(r);
    }
  }
  std::string text;
  std::map<Identity, Record> made;
  for (int fd : inheritable_fds()) {
    Identity id;
    if (!identity_of(fd, id) || made.count(id)) continue;
    auto it = placeholders.find(id);
    if (it == placeholders.end()) continue;
    append_record(text, id, it->second);
    made[id] = it->second;
  }
  if (!shared_memory) {  // a failed exec adopts them back (sinks_after_failed_exec)
    std::lock_guard lock(g_records_mu);
    for (auto& [id, r] : made) records()[id] = std::move(r);
  }
  return text.empty() ? std::string() : std::string(kRecordsVar) + "=" + text;
}

std::vector<char*> environment_with(char* const envp[], const std::string& entry) {
  std::vector<char*> out;
  std::size_t name_len = sizeof kRecordsVar - 1;
  for (std::size_t i = 0; envp && envp[i]; ++i)
    if (std::strncmp(envp[i], kRecordsVar, name_len) != 0 || envp[i][name_len] != '=') out.push_back(envp[i]);
  if (!entry.empty()) out.push_back(const_cast<char*>(entry.c_str()));
  out.push_back(nullptr);
  return out;
}

// Takes over `fd` if it is a placeholder of this prefix with a record. A file that was open for
// writing gets a writer of its own here (truncating, or appending for O_APPEND): the process that
// opened it exec'd into this one (a shell's `cmd > /oss/...`) or handed it to this child.
bool adopt_fd(int fd) {
  Identity id;
  struct stat st;
  if (!identity_of(fd, id, &st)) return false;
  Record rec;
  {
    std::lock_guard lock(g_records_mu);
    auto it = records().find(id);
    if (it == records().end()) {
      if (is_placeholder_link(fd))
        log::warn("descriptor " + std::to_string(fd) + " is a virtual file inherited without its record (" +
                  kRecordsVar +
                  "): it was exec'd by a call the shim did not see (posix_spawn, a raw execve); reads and "
                  "writes on it fail with EBADF -- open the file in the new program instead");
      return false;
    }
    rec = it->second;
  }
  vfs::VPath path;
  if (!vfs::parse(std::string_view(globals().prefix, globals().prefix_len), rec.display, path))
    return false;  // another prefix: leave it alone
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  if (rec.kind == 'w') {
    // Tells the opener (another process: subprocess with stdout=f) not to commit its own (empty)
    // version over ours: the F_SEAL_SEAL seal on the memfd (see vfs::OpenFile::record_fd). The
    // seal is the opener's to read; this process's writer keeps no record (it commits).
    if (rec.opener != ::getpid()) {
      int own = REAL(open)(link, O_RDWR | O_CLOEXEC);
      if (own < 0 || REAL(fcntl)(own, F_ADD_SEALS, F_SEAL_SEAL) != 0)
        log::warn("inherited descriptor " + std::to_string(fd) + " of " + rec.display +
                  ": cannot mark it taken over (" + std::strerror(errno) + "); process " +
                  std::to_string(rec.opener) + " may store its own version when it closes the file");
      if (own >= 0) REAL(close)(own);
    }
    // O_APPEND, or what the exec'ing image stored kept (rec.keep), or truncated as the program asked.
    int flags = O_WRONLY | O_CREAT | ((rec.flags & O_APPEND) ? O_APPEND : rec.keep >= 0 ? 0 : O_TRUNC);
    vfs::Vfs* fs = filesystem();
    auto f = fs ? fs->open_write(path, flags) : Result<std::shared_ptr<vfs::OpenFile>>(Error{});
    if (!f) {
      if (fs)
        log::error(f.error().to_string() + " -- inherited descriptor " + std::to_string(fd) +
                   " cannot be written");
      return false;
    }
    (*f)->status_flags.store(rec.flags);
    if (rec.keep >= 0 && !(rec.flags & O_APPEND)) (*f)->offset.store(static_cast<std::uint64_t>(rec.keep));
    if ((fd == 1 || fd == 2) && make_sink(fd, *f)) return true;
    attach(fd, std::move(f.value()));
    return true;
  }
  auto f = std::make_shared<vfs::OpenFile>();
  f->path = path;
  f->display = rec.display;
  f->attr.etag = rec.etag;
  f->attr.dir = rec.kind == 'd';
  f->attr.size = f->attr.dir ? 0 : static_cast<std::uint64_t>(st.st_size);
  f->attr.mtime = st.st_mtime;
  f->status_flags.store(O_RDONLY | O_LARGEFILE);
  attach(fd, std::move(f));
  return true;
}

bool raced_close(int fd) {
  int saved = errno;
  char link[64], target[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
  errno = saved;
  if (n < 0) return true;  // closed since (one look: a second could see it reopened)
  return n == static_cast<ssize_t>(sizeof kPlaceholderLink - 1) &&
         std::memcmp(target, kPlaceholderLink, n) == 0;
}

void adopt_inherited_fds() {
  // Only a program exec'd by a preloaded one with virtual descriptors open gets records; every
  // other program starts without a look at /proc/self/fd (5 system calls and 2 per descriptor).
  // A placeholder passed on by a call the shim did not see (a raw execve) then goes unnoticed
  // here: calls on it fail with EBADF (it is an O_PATH descriptor).
  const char* text = std::getenv(kRecordsVar);
  if (text == nullptr || *text == '\0') return;
  {
    std::lock_guard lock(g_records_mu);
    parse_records(text, records());
  }
  DIR* d = REAL(opendir)("/proc/self/fd");
  if (!d) return;
  int own = REAL(dirfd)(d);
  std::vector<int> fds;
  while (struct dirent* e = REAL(readdir)(d)) {
    int fd = std::atoi(e->d_name);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == own || fd >= kMaxFds) continue;
    fds.push_back(fd);
  }
  REAL(closedir)(d);
  for (int fd : fds) adopt_fd(fd);
}

int register_file(std::shared_ptr<vfs::OpenFile> file, bool cloexec) {
  int fd = make_placeholder(*file, cloexec);
  if (fd < 0) return -1;
  if (fd >= kMaxFds) {
    REAL(close)(fd);
    log::error("open " + file->display + ": descriptor " + std::to_string(fd) +
               " is beyond the shim's table (" + std::to_string(kMaxFds) + ")");
    return fail(EMFILE);
  }
  attach(fd, std::move(file));
  return fd;
}

int fail(const Error& e) {
  // Programs probe: a missing file or a file where a directory was expected is routine, logged
  // only at debug level (so is ENOTEMPTY: rm -r and rimraf try rmdir first). Everything else (server
  // refusals, network, writes) is a warning.
  // EROFS: read_only said so once already (Vfs::refuse_if_read_only).
  if (e.err == ENOENT || e.err == ENOTDIR || e.err == EISDIR || e.err == EEXIST || e.err == ENOTEMPTY ||
      e.err == EROFS)
    log::debug(e.to_string());
  else
    log::warn(e.to_string());
  errno = e.err ? e.err : EIO;
  return -1;
}

ino_t inode_of(const std::string& display) {
  ino_t h = static_cast<ino_t>(std::hash<std::string>{}(display));
  return h ? h : 1;
}

int stat_virtual(const vfs::VPath& p, vfs::Attr& out) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  auto r = fs->stat(p);
  if (!r) return fail(r.error());
  out = r.value();
  return 0;
}

namespace {
constexpr dev_t kDevice = 0x0550;  // a device number no local file system uses
}  // namespace

template <class St>
void fill_stat(const std::string& display, const vfs::Attr& a, St* st) {
  std::memset(st, 0, sizeof *st);
  st->st_dev = kDevice;
  st->st_ino = inode_of(display);
  st->st_mode = a.dir ? (S_IFDIR | 0755) : a.link ? (S_IFLNK | 0777) : (S_IFREG | 0644);
  st->st_nlink = a.dir ? 2 : 1;
  st->st_uid = getuid();
  st->st_gid = getgid();
  st->st_size = a.dir ? 4096 : static_cast<off_t>(a.size);  // 4096: what ext4 reports for a directory
  st->st_blksize = 1 << 20;                                 // large reads: fewer calls into the shim
  st->st_blocks = a.dir    ? 8
                  : a.link ? 0
                           : static_cast<blkcnt_t>((a.size + 4095) / 4096 * 8);  // 4 KiB blocks, as ext4
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = a.mtime;
}
template void fill_stat<struct stat>(const std::string&, const vfs::Attr&, struct stat*);
template void fill_stat<struct stat64>(const std::string&, const vfs::Attr&, struct stat64*);

ssize_t virtual_read(int fd, void* buf, size_t len, off_t off) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  if (f->attr.dir) return fail(EISDIR);
  if ((f->status_flags.load() & O_ACCMODE) == O_WRONLY) return fail(EBADF);
  if (off < 0 && off != -1) return fail(EINVAL);
  std::uint64_t at = off < 0 ? f->offset.load() : static_cast<std::uint64_t>(off);
  auto r = fs->read(*f, static_cast<char*>(buf), len, at);
  if (!r) return fail(r.error());
  if (off < 0) f->offset.store(at + r.value());
  return static_cast<ssize_t>(r.value());
}

ssize_t virtual_write(int fd, const void* buf, size_t len, off_t off) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  if (f->attr.dir) return fail(EISDIR);
  if (!f->writer || (f->status_flags.load() & O_ACCMODE) == O_RDONLY) return fail(EBADF);
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  if (off < 0 && off != -1) return fail(EINVAL);
  if (len == 0) return 0;
  // One writer at a time moves the offset (O_APPEND: to the end first), as the kernel does.
  std::lock_guard lock(f->offset_mu);
  std::uint64_t at = off >= 0                              ? static_cast<std::uint64_t>(off)
                     : (f->status_flags.load() & O_APPEND) ? fs->size_of(*f)
                                                           : f->offset.load();
  auto r = fs->write(*f, static_cast<const char*>(buf), len, at);
  if (!r) return fail(r.error());
  if (off < 0) f->offset.store(at + r.value());
  return static_cast<ssize_t>(r.value());
}

}  // namespace ossshim::shim
