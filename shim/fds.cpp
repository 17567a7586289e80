#undef _FILE_OFFSET_BITS
// The virtual fd registry, path resolution and error reporting behind every interposed call.
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <vector>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"

namespace ossshim::shim {

bool resolve(int dirfd, const char* path, vfs::VPath& out) {
  Globals& g = globals();
  std::string_view prefix(g.prefix, g.prefix_len);
  if (path[0] == '/') return vfs::parse(prefix, path, out);
  std::string base;
  if (dirfd == AT_FDCWD) {
    std::lock_guard lock(g.cwd_mu);
    if (!g.cwd_virtual.load() || g.cwd == nullptr) return false;
    base = *g.cwd;
  } else {
    base = display_of(dirfd);
    if (base.empty()) return false;
  }
  return vfs::parse(prefix, base + "/" + path, out);
}

std::string display_of(int fd) {
  int saved = errno;  // callers pass the call through when this is empty
  auto f = lookup_file(fd);
  errno = saved;
  return f ? f->display : std::string();
}

void attach(int fd, std::shared_ptr<vfs::OpenFile> file) {
  Globals& g = globals();
  file->descriptors.fetch_add(1);
  auto old = exchange_file(fd, std::move(file));
  if (old) old->descriptors.fetch_sub(1);
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
constexpr char kPlaceholderMagic[] = "ossshim-fd 2";

// The kernel object behind a virtual fd: an O_PATH descriptor of a small memfd that records
// which object it stands for. O_PATH means read, write, mmap ... on it fail with EBADF, so a call
// that escapes the shim (raw syscall, io_uring, static binary) fails loudly; the record lets a
// program exec'd with the fd (tar | gzip, a shell redirect) take it over (adopt_inherited_fds).
int make_placeholder(vfs::OpenFile& f, bool cloexec) {
  int flags = O_PATH | (cloexec ? O_CLOEXEC : 0);
  int m = memfd_create(kPlaceholderName, MFD_CLOEXEC);
  if (m >= 0) {
    std::string record =
        std::string(kPlaceholderMagic) + "\n" + f.display + "\n" + f.attr.etag + "\n" +
        std::to_string(f.attr.size) + "\n" + std::to_string(f.attr.mtime) + "\n" + (f.attr.dir ? "d" : "f") +
        "\n" +
        (f.writer ? "w " + std::to_string(f.status_flags.load()) + " " + std::to_string(f.writer_pid)
                  : std::string("r")) +
        "\n";
    bool written = ::write(m, record.data(), record.size()) == static_cast<ssize_t>(record.size());
    char self[64];
    std::snprintf(self, sizeof self, "/proc/self/fd/%d", m);
    int fd = written ? REAL(open)(self, flags) : -1;
    // A writer keeps its record readable: a process that takes the file over marks it there.
    if (fd >= 0 && f.writer && f.record_fd < 0) f.record_fd = REAL(fcntl)(m, F_DUPFD_CLOEXEC, 0);
    REAL(close)(m);
    if (fd >= 0) return fd;
  }
  return REAL(open)("/", flags | O_DIRECTORY);  // no memfd or /proc: still fails loudly
}
}  // namespace

// Takes over `fd` if it is a placeholder of this prefix. A file that was open for writing gets a
// writer of its own here (truncating, or appending for O_APPEND): the process that opened it
// exec'd into this one (a shell's `cmd > /oss/...`) or handed it to this child.
bool adopt_fd(int fd) {
  char link[64], target[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  if (std::strcmp(target, kPlaceholderLink) != 0) return false;
  int rfd = REAL(open)(link, O_RDONLY | O_CLOEXEC);
  if (rfd < 0) return false;
  char buf[8192];
  ssize_t got = REAL(read)(rfd, buf, sizeof buf - 1);
  REAL(close)(rfd);
  if (got <= 0) return false;
  std::vector<std::string> lines;
  std::string text(buf, static_cast<std::size_t>(got));
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(text.substr(at, nl - at));
  vfs::VPath path;
  if (lines.size() < 7 || lines[0] != kPlaceholderMagic ||
      !vfs::parse(std::string_view(globals().prefix, globals().prefix_len), lines[1], path))
    return false;  // another prefix, or a record from another version: leave it alone
  if (lines[6].rfind("w ", 0) == 0) {
    int was = 0;
    long opener = 0;
    std::sscanf(lines[6].c_str() + 2, "%d %ld", &was, &opener);
    if (opener != ::getpid()) {
      // Another process opened it (subprocess with stdout=f): this one writes the file now, and
      // the record tells the opener not to commit its own (empty) version over ours.
      int wfd = REAL(open)(link, O_WRONLY | O_APPEND | O_CLOEXEC);
      std::string mark = "taken " + std::to_string(::getpid()) + "\n";
      if (wfd >= 0) {
        (void)!REAL(write)(wfd, mark.data(), mark.size());
        REAL(close)(wfd);
      }
    }
    int flags = O_WRONLY | ((was & O_APPEND) ? O_APPEND : O_CREAT | O_TRUNC);
    vfs::Vfs* fs = filesystem();
    auto f = fs ? fs->open_write(path, flags) : Result<std::shared_ptr<vfs::OpenFile>>(Error{});
    if (!f) {
      if (fs)
        log::error(f.error().to_string() + " -- inherited descriptor " + std::to_string(fd) +
                   " cannot be written");
      return false;
    }
    (*f)->status_flags.store(was);
    if ((fd == 1 || fd == 2) && make_sink(fd, *f)) return true;
    attach(fd, std::move(f.value()));
    return true;
  }
  auto f = std::make_shared<vfs::OpenFile>();
  f->path = path;
  f->display = lines[1];
  f->attr.etag = lines[2];
  f->attr.size = std::strtoull(lines[3].c_str(), nullptr, 10);
  f->attr.mtime = static_cast<std::time_t>(std::strtoll(lines[4].c_str(), nullptr, 10));
  f->attr.dir = lines[5] == "d";
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
  // only at debug level. Everything else (server refusals, network, writes) is a warning.
  if (e.err == ENOENT || e.err == ENOTDIR || e.err == EISDIR || e.err == EEXIST)
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
  st->st_mode = a.dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  st->st_nlink = a.dir ? 2 : 1;
  st->st_uid = getuid();
  st->st_gid = getgid();
  st->st_size = a.dir ? 4096 : static_cast<off_t>(a.size);  // 4096: what ext4 reports for a directory
  st->st_blksize = 1 << 20;                                 // large reads: fewer calls into the shim
  st->st_blocks = a.dir ? 8 : static_cast<blkcnt_t>((a.size + 4095) / 4096 * 8);  // 4 KiB blocks, as ext4
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
