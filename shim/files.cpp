#undef _FILE_OFFSET_BITS
// Descriptors: open, read, seek, close, dup, fcntl, mmap, copy_file_range, sendfile.
// Pattern of every function: one cheap test (is the path under the prefix? is the fd ours?),
// then either glibc's own function (untouched errno, no lock, no allocation) or the shim's.
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"
#include "util/forksafe.hpp"

extern "C" {
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
ssize_t __read_chk(int fd, void* buf, size_t nbytes, size_t buflen);
ssize_t __pread_chk(int fd, void* buf, size_t nbytes, off_t offset, size_t buflen);
ssize_t __pread64_chk(int fd, void* buf, size_t nbytes, off64_t offset, size_t buflen);
[[noreturn]] void __chk_fail(void);
}

namespace ossshim::shim {

int open_virtual(const vfs::VPath& p, int flags) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  int access = flags & O_ACCMODE;
  auto refuse = [&](int err, const char* why) {
    Error e;
    e.err = err;
    e.op = "open";
    e.target = fs->display(p);
    e.message = why;
    return fail(e);
  };
  bool writes = access != O_RDONLY || (flags & O_TRUNC);
  auto f = writes ? fs->open_write(p, flags) : fs->open(p, !(flags & O_NOFOLLOW));
  if (!f && !writes && f.error().err == ENOENT && (flags & O_CREAT))
    f = fs->open_write(p, flags);  // O_RDONLY|O_CREAT of a new name creates it, as open(2) does
  if (!f) return fail(f.error());
  if (!writes && (flags & O_CREAT) && (flags & O_EXCL) && !(*f)->writer)
    return refuse(EEXIST, "exists (O_CREAT|O_EXCL)");
  if ((*f)->attr.dir) {
    if (access != O_RDONLY) return refuse(EISDIR, "is a directory");
  } else if (flags & O_DIRECTORY) {
    return refuse(ENOTDIR, "not a directory");
  }
  int kept = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_PATH;
  (*f)->status_flags.store((flags & kept) | O_LARGEFILE);
  auto file = std::move(f.value());
  int fd = register_file(file, flags & O_CLOEXEC);
  if (fd < 0 && file->writer) (void)fs->close_file(*file);
  return fd;
}

namespace {

mode_t mode_arg(int flags, va_list ap) {
  return __OPEN_NEEDS_MODE(flags) ? va_arg(ap, mode_t) : 0;
}

// A new descriptor for an existing open file (dup, F_DUPFD): same file, own fd flags.
int adopt_dup(int newfd, const std::shared_ptr<vfs::OpenFile>& file) {
  if (newfd < 0) return newfd;
  if (newfd >= kMaxFds) {
    REAL(close)(newfd);
    return fail(EMFILE);
  }
  attach(newfd, file);
  return newfd;
}

ssize_t read_iov(int fd, const struct iovec* iov, int count, off_t off, bool use_offset) {
  if (count < 0 || count > IOV_MAX) return fail(EINVAL);
  ssize_t total = 0;
  for (int i = 0; i < count; ++i) {
    if (iov[i].iov_len == 0) continue;
    ssize_t n = virtual_read(fd, iov[i].iov_base, iov[i].iov_len, use_offset ? -1 : off + total);
    if (n < 0) return total > 0 ? total : -1;
    total += n;
    if (static_cast<size_t>(n) < iov[i].iov_len) break;
  }
  return total;
}

ssize_t write_iov(int fd, const struct iovec* iov, int count, off_t off, bool use_offset) {
  if (count < 0 || count > IOV_MAX) return fail(EINVAL);
  ssize_t total = 0;
  for (int i = 0; i < count; ++i) {
    if (iov[i].iov_len == 0) continue;
    ssize_t n = virtual_write(fd, iov[i].iov_base, iov[i].iov_len, use_offset ? -1 : off + total);
    if (n < 0) return total > 0 ? total : -1;
    total += n;
    if (static_cast<size_t>(n) < iov[i].iov_len) break;
  }
  return total;
}

int truncate_fd(int fd, off_t size) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  if (size < 0) return fail(EINVAL);
  if (f->attr.dir || !f->writer || (f->status_flags.load() & O_ACCMODE) == O_RDONLY)
    return fail(EINVAL);  // what the kernel says for a descriptor not open for writing
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  auto st = fs->truncate(*f, static_cast<std::uint64_t>(size));
  return st ? 0 : fail(st.error());
}

// fallocate, posix_fallocate: OSS has no preallocation. Reserving space only makes the file at
// least off + len long (downloaders preallocate, then write into it); FALLOC_FL_KEEP_SIZE changes
// nothing visible; punching or zeroing ranges is not supported. Returns 0 or an errno value.
int allocate_fd(int fd, int mode, off_t off, off_t len) {
  auto f = lookup_file(fd);
  if (!f) return EBADF;
  if (off < 0 || len <= 0) return EINVAL;
  if (f->attr.dir) return EISDIR;
  if (!f->writer || (f->status_flags.load() & O_ACCMODE) == O_RDONLY) return EBADF;
  if (mode & ~FALLOC_FL_KEEP_SIZE) return EOPNOTSUPP;
  vfs::Vfs* fs = filesystem();
  if (!fs) return errno;
  std::uint64_t end = static_cast<std::uint64_t>(off) + static_cast<std::uint64_t>(len);
  if ((mode & FALLOC_FL_KEEP_SIZE) || end <= fs->size_of(*f)) return 0;
  auto st = fs->truncate(*f, end);
  if (!st) log::warn(st.error().to_string());
  return st ? 0 : st.error().err;
}

}  // namespace

off_t virtual_seek(int fd, off_t off, int whence) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  vfs::Vfs* fs = filesystem();
  std::uint64_t size = f->attr.dir || !fs ? 0 : fs->size_of(*f);
  off_t base;
  switch (whence) {
    case SEEK_SET:
      base = 0;
      break;
    case SEEK_CUR:
      base = static_cast<off_t>(f->offset.load());
      break;
    case SEEK_END:
      base = static_cast<off_t>(size);
      break;
    case SEEK_DATA:  // one data extent: [0, size)
      if (off < 0 || static_cast<std::uint64_t>(off) >= size) return fail(ENXIO);
      f->offset.store(static_cast<std::uint64_t>(off));
      return off;
    case SEEK_HOLE:
      if (off < 0 || static_cast<std::uint64_t>(off) >= size) return fail(ENXIO);
      f->offset.store(size);
      return static_cast<off_t>(size);
    default:
      return fail(EINVAL);
  }
  if ((off > 0 && base > INT64_MAX - off) || base + off < 0) return fail(EINVAL);
  f->offset.store(static_cast<std::uint64_t>(base + off));
  return base + off;
}

namespace {

// copy_file_range and sendfile when either side is virtual: through a buffer, reading and
// writing each side with the shim's or glibc's calls as the side requires.
ssize_t copy_through(int in, off_t* in_off, int out, off_t* out_off, size_t len) {
  bool vin = virtual_fd(in), vout = virtual_fd(out);
  auto source = vin ? lookup_file(in) : nullptr;
  if (vin && !source) return -1;
  if (source && source->attr.dir) return fail(EISDIR);
  auto get = [&](char* buf, size_t n, off_t at) -> ssize_t {
    if (vin) return virtual_read(in, buf, n, at);
    return at >= 0 ? REAL(pread)(in, buf, n, at) : REAL(read)(in, buf, n);
  };
  auto put = [&](const char* buf, size_t n, off_t at) -> ssize_t {
    if (vout) return virtual_write(out, buf, n, at);
    return at >= 0 ? REAL(pwrite)(out, buf, n, at) : REAL(write)(out, buf, n);
  };
  len = std::min<size_t>(len, 16 << 20);  // one call moves at most 16 MiB, as the kernel may
  std::vector<char> buf(std::min<size_t>(len, 4 << 20));
  size_t done = 0;
  while (done < len) {
    size_t want = std::min(buf.size(), len - done);
    ssize_t n = get(buf.data(), want, in_off ? *in_off + static_cast<off_t>(done) : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done == 0) return -1;  // nothing moved: the read's error is the call's
      break;
    }
    if (n == 0) break;
    size_t written = 0;
    while (written < static_cast<size_t>(n)) {
      ssize_t w = put(buf.data() + written, n - written,
                      out_off ? *out_off + static_cast<off_t>(done + written) : -1);
      if (w < 0) {
        if (errno == EINTR) continue;
        // Give back what was read but not written, so a retry resumes at the right place.
        if (!in_off) {
          if (source)
            source->offset.fetch_sub(n - written);
          else
            REAL(lseek)(in, -static_cast<off_t>(n - written), SEEK_CUR);
        }
        done += written;
        if (in_off) *in_off += static_cast<off_t>(done);
        if (out_off) *out_off += static_cast<off_t>(done);
        return done ? static_cast<ssize_t>(done) : -1;
      }
      written += static_cast<size_t>(w);
    }
    done += written;
    if (static_cast<size_t>(n) < want) break;
  }
  if (in_off) *in_off += static_cast<off_t>(done);
  if (out_off) *out_off += static_cast<off_t>(done);
  return static_cast<ssize_t>(done);
}

// Mappings of the shared cache this process holds, each with the pin that keeps its chunks from
// eviction. munmap of anything else costs one relaxed load.
struct Mapping {
  std::uintptr_t start = 0, end = 0;
  std::uint32_t pin = 0;
};
constexpr std::size_t kMaxMappings = 4096;
constinit std::mutex g_mappings_mu;
Mapping g_mappings[kMaxMappings];
std::atomic<std::size_t> g_mapping_count{0};
// Held around fork: the child re-pins the table's mappings in its own name (mapping_pins).
const bool g_mappings_fork_safe = (forksafe::add_mutex(forksafe::Rank::mappings, g_mappings_mu), true);

bool remember_mapping(void* addr, size_t len, std::uint32_t pin) {
  std::lock_guard lock(g_mappings_mu);
  std::size_t n = g_mapping_count.load();
  if (n == kMaxMappings) return false;
  auto start = reinterpret_cast<std::uintptr_t>(addr);
  g_mappings[n] = {start, start + len, pin};
  g_mapping_count.store(n + 1);
  return true;
}

}  // namespace

bool mapped_any() {
  return g_mapping_count.load(std::memory_order_relaxed) != 0;
}

void forget_mappings(void* addr, size_t len) {
  // A mapping is unpinned when all of it is unmapped; a partial munmap keeps the pin (harmless).
  auto start = reinterpret_cast<std::uintptr_t>(addr), end = start + len;
  std::lock_guard lock(g_mappings_mu);
  std::size_t n = g_mapping_count.load();
  for (std::size_t i = 0; i < n;) {
    if (start <= g_mappings[i].start && g_mappings[i].end <= end) {
      if (vfs::Vfs* fs = filesystem()) fs->unmap(g_mappings[i].pin);
      g_mappings[i] = g_mappings[--n];
    } else {
      ++i;
    }
  }
  g_mapping_count.store(n);
}

std::vector<std::uint32_t> mapping_pins() {
  std::vector<std::uint32_t> pins;
  for (std::size_t i = 0; i < g_mapping_count.load(); ++i) pins.push_back(g_mappings[i].pin);
  return pins;
}

void set_mapping_pins(const std::vector<std::uint32_t>& pins) {
  for (std::size_t i = 0; i < pins.size() && i < g_mapping_count.load(); ++i) g_mappings[i].pin = pins[i];
}

namespace {

void* map_virtual(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  auto f = lookup_file(fd);
  if (!f) return MAP_FAILED;
  if (f->attr.dir) return (fail(ENODEV), MAP_FAILED);
  if (len == 0 || off < 0 || off % sysconf(_SC_PAGESIZE) != 0) return (fail(EINVAL), MAP_FAILED);
  int type = flags & MAP_TYPE;
  if ((type == MAP_SHARED || type == MAP_SHARED_VALIDATE) && (prot & PROT_WRITE)) {
    // sqlite's WAL index (-shm) is the common case: its workaround is in the message.
    log::warn(
        "mmap " + f->display + ": shared writable mappings of virtual files are not supported (EACCES)" +
        " -- map it MAP_PRIVATE or read it; sqlite: PRAGMA locking_mode=EXCLUSIVE before journal_mode=WAL");
    return (fail(EACCES), MAP_FAILED);
  }
  vfs::Vfs* fs = filesystem();
  if (!fs) return MAP_FAILED;
  // Zero-copy: map the object's pages in the node's shared cache (pinned until munmap), so every
  // process mapping it shares one physical copy.
  auto source = fs->map(*f, static_cast<std::uint64_t>(off), len);
  if (!source) return (fail(source.error()), MAP_FAILED);
  if (*source) {
    int shared_flags = (flags & ~MAP_TYPE) | ((flags & MAP_TYPE) == MAP_PRIVATE ? MAP_PRIVATE : MAP_SHARED);
    void* m = REAL(mmap)(addr, len, prot, shared_flags, (*source)->fd, off);
    if (m != MAP_FAILED && remember_mapping(m, len, (*source)->pin)) return m;
    if (m != MAP_FAILED) REAL(munmap)(m, len);
    fs->unmap((*source)->pin);  // e.g. PROT_EXEC on a noexec /dev/shm: fall back to a copy
  }
  // Otherwise a private mapping filled with the object's bytes (beyond end of file: zeros).
  int keep = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_32BIT | MAP_LOCKED);
  void* m = REAL(mmap)(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | keep, -1, 0);
  if (m == MAP_FAILED) return m;
  std::uint64_t start = static_cast<std::uint64_t>(off), size = fs->size_of(*f);
  if (start < size) {
    size_t n = static_cast<size_t>(std::min<std::uint64_t>(len, size - start));
    auto st = fs->fill(*f, static_cast<char*>(m), n, start);
    if (!st) {
      munmap(m, len);
      return (fail(st.error()), MAP_FAILED);
    }
  }
  if (prot != (PROT_READ | PROT_WRITE) && mprotect(m, len, prot) != 0) {
    int err = errno;
    munmap(m, len);
    return (fail(err), MAP_FAILED);
  }
  return m;
}

}  // namespace
}  // namespace ossshim::shim

using namespace ossshim::shim;
namespace vfs = ossshim::vfs;

#define OPEN_BODY(real_call, dirfd, path, flags)                                                           \
  Target t(dirfd, path);                                                                                   \
  if (t.handled) return open_virtual(t.path, flags);                                                       \
  int r = fresh_fd(real_call);                                                                             \
  if (r < 0 && !((flags)&O_NOFOLLOW) && t.via_local_link(dirfd, path)) return open_virtual(t.path, flags); \
  return r

extern "C" {

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  OPEN_BODY(REAL(open)(path, flags, mode), AT_FDCWD, path, flags);
}
int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  OPEN_BODY(REAL(open64)(path, flags, mode), AT_FDCWD, path, flags);
}
int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  OPEN_BODY(REAL(openat)(dirfd, path, flags, mode), dirfd, path, flags);
}
int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  OPEN_BODY(REAL(openat64)(dirfd, path, flags, mode), dirfd, path, flags);
}
int __open_2(const char* path, int flags) {
  OPEN_BODY(REAL(__open_2)(path, flags), AT_FDCWD, path, flags);
}
int __open64_2(const char* path, int flags) {
  OPEN_BODY(REAL(__open64_2)(path, flags), AT_FDCWD, path, flags);
}
int __openat_2(int dirfd, const char* path, int flags) {
  OPEN_BODY(REAL(__openat_2)(dirfd, path, flags), dirfd, path, flags);
}
int __openat64_2(int dirfd, const char* path, int flags) {
  OPEN_BODY(REAL(__openat64_2)(dirfd, path, flags), dirfd, path, flags);
}
int creat(const char* path, mode_t mode) {
  OPEN_BODY(REAL(creat)(path, mode), AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC);
}
int creat64(const char* path, mode_t mode) {
  OPEN_BODY(REAL(creat64)(path, mode), AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC);
}

ssize_t read(int fd, void* buf, size_t n) {
  if (!virtual_fd(fd)) return REAL(read)(fd, buf, n);
  return virtual_read(fd, buf, n, -1);
}
ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (!virtual_fd(fd)) return REAL(__read_chk)(fd, buf, n, buflen);
  if (n > buflen) __chk_fail();
  return virtual_read(fd, buf, n, -1);
}
ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  if (!virtual_fd(fd)) return REAL(pread)(fd, buf, n, off);
  return off < 0 ? fail(EINVAL) : virtual_read(fd, buf, n, off);
}
ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  if (!virtual_fd(fd)) return REAL(pread64)(fd, buf, n, off);
  return off < 0 ? fail(EINVAL) : virtual_read(fd, buf, n, off);
}
ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (!virtual_fd(fd)) return REAL(__pread_chk)(fd, buf, n, off, buflen);
  if (n > buflen) __chk_fail();
  return off < 0 ? fail(EINVAL) : virtual_read(fd, buf, n, off);
}
ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t off, size_t buflen) {
  if (!virtual_fd(fd)) return REAL(__pread64_chk)(fd, buf, n, off, buflen);
  if (n > buflen) __chk_fail();
  return off < 0 ? fail(EINVAL) : virtual_read(fd, buf, n, off);
}
ssize_t readv(int fd, const struct iovec* iov, int count) {
  if (!virtual_fd(fd)) return REAL(readv)(fd, iov, count);
  return read_iov(fd, iov, count, 0, true);
}
ssize_t preadv(int fd, const struct iovec* iov, int count, off_t off) {
  if (!virtual_fd(fd)) return REAL(preadv)(fd, iov, count, off);
  return off < 0 ? fail(EINVAL) : read_iov(fd, iov, count, off, false);
}
ssize_t preadv64(int fd, const struct iovec* iov, int count, off64_t off) {
  if (!virtual_fd(fd)) return REAL(preadv64)(fd, iov, count, off);
  return off < 0 ? fail(EINVAL) : read_iov(fd, iov, count, off, false);
}
ssize_t preadv2(int fd, const struct iovec* iov, int count, off_t off, int flags) {
  if (!virtual_fd(fd)) return REAL(preadv2)(fd, iov, count, off, flags);
  if (off < -1) return fail(EINVAL);
  return read_iov(fd, iov, count, off, off == -1);
}
ssize_t preadv64v2(int fd, const struct iovec* iov, int count, off64_t off, int flags) {
  if (!virtual_fd(fd)) return REAL(preadv64v2)(fd, iov, count, off, flags);
  if (off < -1) return fail(EINVAL);
  return read_iov(fd, iov, count, off, off == -1);
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (!virtual_fd(fd)) return REAL(write)(fd, buf, n);
  return virtual_write(fd, buf, n, -1);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (!virtual_fd(fd)) return REAL(pwrite)(fd, buf, n, off);
  return off < 0 ? fail(EINVAL) : virtual_write(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  if (!virtual_fd(fd)) return REAL(pwrite64)(fd, buf, n, off);
  return off < 0 ? fail(EINVAL) : virtual_write(fd, buf, n, off);
}
ssize_t writev(int fd, const struct iovec* iov, int count) {
  if (!virtual_fd(fd)) return REAL(writev)(fd, iov, count);
  return write_iov(fd, iov, count, 0, true);
}
ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t off) {
  if (!virtual_fd(fd)) return REAL(pwritev)(fd, iov, count, off);
  return off < 0 ? fail(EINVAL) : write_iov(fd, iov, count, off, false);
}
ssize_t pwritev64(int fd, const struct iovec* iov, int count, off64_t off) {
  if (!virtual_fd(fd)) return REAL(pwritev64)(fd, iov, count, off);
  return off < 0 ? fail(EINVAL) : write_iov(fd, iov, count, off, false);
}
ssize_t pwritev2(int fd, const struct iovec* iov, int count, off_t off, int flags) {
  if (!virtual_fd(fd)) return REAL(pwritev2)(fd, iov, count, off, flags);
  if (off < -1) return fail(EINVAL);
  return write_iov(fd, iov, count, off, off == -1);
}
ssize_t pwritev64v2(int fd, const struct iovec* iov, int count, off64_t off, int flags) {
  if (!virtual_fd(fd)) return REAL(pwritev64v2)(fd, iov, count, off, flags);
  if (off < -1) return fail(EINVAL);
  return write_iov(fd, iov, count, off, off == -1);
}

int ftruncate(int fd, off_t size) {
  if (!virtual_fd(fd)) return REAL(ftruncate)(fd, size);
  return truncate_fd(fd, size);
}
int ftruncate64(int fd, off64_t size) {
  if (!virtual_fd(fd)) return REAL(ftruncate64)(fd, size);
  return truncate_fd(fd, size);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  if (!virtual_fd(fd)) return REAL(fallocate)(fd, mode, off, len);
  int err = allocate_fd(fd, mode, off, len);
  return err ? fail(err) : 0;
}
int fallocate64(int fd, int mode, off64_t off, off64_t len) {
  if (!virtual_fd(fd)) return REAL(fallocate64)(fd, mode, off, len);
  int err = allocate_fd(fd, mode, off, len);
  return err ? fail(err) : 0;
}
int posix_fallocate(int fd, off_t off, off_t len) {
  if (!virtual_fd(fd)) return REAL(posix_fallocate)(fd, off, len);
  return allocate_fd(fd, 0, off, len);  // the error number is returned, errno left alone
}
int posix_fallocate64(int fd, off64_t off, off64_t len) {
  if (!virtual_fd(fd)) return REAL(posix_fallocate64)(fd, off, len);
  return allocate_fd(fd, 0, off, len);
}

off_t lseek(int fd, off_t off, int whence) {
  if (!virtual_fd(fd)) return REAL(lseek)(fd, off, whence);
  return virtual_seek(fd, off, whence);
}
off64_t lseek64(int fd, off64_t off, int whence) {
  if (!virtual_fd(fd)) return REAL(lseek64)(fd, off, whence);
  return virtual_seek(fd, off, whence);
}

int close(int fd) {
  // In a vfork()ed child the tables are the parent's memory: only the kernel fd is closed.
  if (!shim_fd(fd) || in_vfork_child()) return REAL(close)(fd);
  if (sink_fd(fd)) {
    SinkEnd* end = release_sink(fd);
    return finish_sink(end, REAL(close)(fd));
  }
  // The last descriptor of a file open for writing commits it: close reports the upload's fate.
  auto last = detach(fd);
  return finish_close(last, REAL(close)(fd));
}

namespace {
// What close_range and closefrom owe the shim for the descriptors they close.
struct Closing {
  std::vector<std::shared_ptr<vfs::OpenFile>> files;
  std::vector<SinkEnd*> sinks;
  void take(int fd) {
    if (sink_fd(fd)) {
      if (SinkEnd* e = release_sink(fd)) sinks.push_back(e);
    } else if (virtual_fd(fd)) {
      if (auto f = detach(fd)) files.push_back(std::move(f));
    }
  }
  // Failures are logged; these calls have no single file to blame.
  void finish() {
    for (auto& f : files) finish_close(f, 0);
    for (auto* e : sinks) finish_sink(e, 0);
  }
};
}  // namespace

int close_range(unsigned first, unsigned last, int flags) {
  Closing closing;
  if (globals().virtual_fds.load() > 0 && !(flags & CLOSE_RANGE_CLOEXEC) && !in_vfork_child()) {
    for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kMaxFds); ++fd)
      closing.take(static_cast<int>(fd));
  }
  int r = REAL(close_range)(first, last, flags);
  closing.finish();
  return r;
}
void closefrom(int lowfd) {
  Closing closing;
  if (globals().virtual_fds.load() > 0 && !in_vfork_child()) {
    for (int fd = std::max(lowfd, 0); fd < kMaxFds; ++fd) closing.take(fd);
  }
  REAL(closefrom)(lowfd);
  closing.finish();
}

int dup(int fd) {
  if (!shim_fd(fd)) {
    FdIdentity before = identity_now(fd);
    return fresh_fd(checked_dup(fd, before, REAL(dup)(fd), nullptr));
  }
  if (sink_fd(fd)) {
    int r = REAL(dup)(fd);
    if (r >= 0 && !in_vfork_child()) sink_copied(fd, r);
    return r;
  }
  auto f = lookup_file(fd);
  if (!f) return -1;
  return adopt_dup(checked_dup(fd, {}, REAL(dup)(fd), f), f);
}

namespace {
// dup2 and dup3 when either side concerns the shim. newfd's old file is closed by the call: a
// writer's last descriptor commits it, a sink's last copy waits for its drain. A virtual writer
// landing on fd 1 or 2 becomes a sink, so that stdio's writes reach it.
// `f` is oldfd's file, looked up before the kernel call (nullptr: oldfd is not virtual).
int dup_onto(int oldfd, int newfd, const std::shared_ptr<vfs::OpenFile>& f, int r) {
  if (r < 0 || in_vfork_child()) return r;
  bool from_sink = sink_fd(oldfd);
  SinkEnd* end = sink_fd(newfd) ? release_sink(newfd) : nullptr;
  auto replaced = detach(newfd);
  if (from_sink) {
    sink_copied(oldfd, newfd);
  } else if (f) {
    r = adopt_dup(r, f);
    // Only the writer's own process drains it; a forked child about to exec (subprocess with
    // stdout=f) passes the placeholder on, and the new program adopts the file.
    if (r >= 0 && (r == 1 || r == 2) && f->writer && f->writer_pid == ::getpid()) make_sink(r, f);
  }
  finish_close(replaced, 0);
  finish_sink(end, 0);
  return r;
}

// oldfd's file when oldfd is virtual; false (errno EBADF) when it was closed meanwhile.
bool source_of(int oldfd, std::shared_ptr<vfs::OpenFile>& f) {
  if (!virtual_fd(oldfd)) return true;
  f = lookup_file(oldfd);
  return f != nullptr;
}

// The kernel made newfd (r) from oldfd, which was closed meanwhile (checked_dup closed newfd):
// newfd's old file is released as dup_onto would, and the call fails with EBADF.
int dup_raced(int oldfd, int newfd, const std::shared_ptr<vfs::OpenFile>& f, int r) {
  if (r < 0 || checked_dup(oldfd, {}, r, f) >= 0) return dup_onto(oldfd, newfd, f, r);
  (void)dup_onto(oldfd, newfd, nullptr, newfd);
  errno = EBADF;
  return -1;
}
}  // namespace

int dup2(int oldfd, int newfd) {
  if (!shim_fd(oldfd) && !shim_fd(newfd)) {
    FdIdentity before = identity_now(oldfd);
    return checked_dup(oldfd, before, REAL(dup2)(oldfd, newfd), nullptr);
  }
  if (oldfd == newfd) return REAL(dup2)(oldfd, newfd);
  std::shared_ptr<vfs::OpenFile> f;
  if (!source_of(oldfd, f)) return -1;
  if (f) preset_identity(oldfd, newfd);
  return dup_raced(oldfd, newfd, f, REAL(dup2)(oldfd, newfd));
}
int dup3(int oldfd, int newfd, int flags) {
  if (!shim_fd(oldfd) && !shim_fd(newfd)) {
    FdIdentity before = identity_now(oldfd);
    return checked_dup(oldfd, before, REAL(dup3)(oldfd, newfd, flags), nullptr);
  }
  std::shared_ptr<vfs::OpenFile> f;
  if (!source_of(oldfd, f)) return -1;
  if (f) preset_identity(oldfd, newfd);
  return dup_raced(oldfd, newfd, f, REAL(dup3)(oldfd, newfd, flags));
}

// A sink is a real pipe; only a copy of it concerns the shim.
static int sink_fcntl(int fd, int cmd, void* arg) {
  int r = REAL(fcntl)(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && !in_vfork_child()) sink_copied(fd, r);
  return r;
}

static int virtual_fcntl(int fd, int cmd, void* arg) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
      return adopt_dup(checked_dup(fd, {}, REAL(fcntl)(fd, cmd, arg), f), f);
    case F_GETFL:
      return f->status_flags.load();
    case F_SETFL: {
      int changeable = O_APPEND | O_NONBLOCK | O_NOATIME | O_ASYNC | O_DIRECT;
      int old = f->status_flags.load();
      f->status_flags.store((old & ~changeable) |
                            (static_cast<int>(reinterpret_cast<intptr_t>(arg)) & changeable));
      return 0;
    }
    case F_GETLK:
    case F_OFD_GETLK:
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_SETLK:
    case F_OFD_SETLKW: {
      // Record locks live on a real file standing for the path: they hold between processes of
      // the node. A write lock needs a descriptor open for writing, as on a local file.
      auto* lk = static_cast<struct flock*>(arg);
      int access = f->status_flags.load() & O_ACCMODE;
      if ((cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW) &&
          ((lk->l_type == F_WRLCK && access == O_RDONLY) || (lk->l_type == F_RDLCK && access == O_WRONLY)))
        return fail(EBADF);
      vfs::Vfs* fs = filesystem();
      if (!fs) return -1;
      auto lock_fd = fs->lock_fd(*f);
      if (!lock_fd) return fail(lock_fd.error());
      return REAL(fcntl)(*lock_fd, cmd, arg);
    }
    default:
      return REAL(fcntl)(fd, cmd, arg);  // F_GETFD/F_SETFD on the reserved descriptor
  }
}
int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (!virtual_fd(fd)) return sink_fd(fd) ? sink_fcntl(fd, cmd, arg) : REAL(fcntl)(fd, cmd, arg);
  return virtual_fcntl(fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (!virtual_fd(fd)) return sink_fd(fd) ? sink_fcntl(fd, cmd, arg) : REAL(fcntl64)(fd, cmd, arg);
  return virtual_fcntl(fd, cmd, arg);
}
int flock(int fd, int op) {
  if (!virtual_fd(fd)) return REAL(flock)(fd, op);
  auto f = lookup_file(fd);
  if (!f) return -1;
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  auto lock_fd = fs->lock_fd(*f);  // one per open file, as flock locks belong to open files
  if (!lock_fd) return fail(lock_fd.error());
  return REAL(flock)(*lock_fd, op);
}

int posix_fadvise(int fd, off_t off, off_t len, int advice) {
  if (!virtual_fd(fd)) return REAL(posix_fadvise)(fd, off, len, advice);
  return off < 0 || len < 0 ? EINVAL : 0;
}
int posix_fadvise64(int fd, off64_t off, off64_t len, int advice) {
  if (!virtual_fd(fd)) return REAL(posix_fadvise64)(fd, off, len, advice);
  return off < 0 || len < 0 ? EINVAL : 0;
}
ssize_t readahead(int fd, off64_t off, size_t count) {
  if (!virtual_fd(fd)) return REAL(readahead)(fd, off, count);
  return 0;
}

int munmap(void* addr, size_t len) {
  if (!mapped_any()) return REAL(munmap)(addr, len);
  forget_mappings(addr, len);
  return REAL(munmap)(addr, len);
}

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if ((flags & MAP_ANONYMOUS) || !virtual_fd(fd)) return REAL(mmap)(addr, len, prot, flags, fd, off);
  return map_virtual(addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  if ((flags & MAP_ANONYMOUS) || !virtual_fd(fd)) return REAL(mmap64)(addr, len, prot, flags, fd, off);
  return map_virtual(addr, len, prot, flags, fd, off);
}

ssize_t copy_file_range(int in, off64_t* in_off, int out, off64_t* out_off, size_t len, unsigned flags) {
  if (!virtual_fd(in) && !virtual_fd(out)) return REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
  if (flags != 0) return fail(EINVAL);
  return copy_through(in, in_off, out, out_off, len);
}
ssize_t sendfile(int out, int in, off_t* off, size_t count) {
  if (!virtual_fd(in) && !virtual_fd(out)) return REAL(sendfile)(out, in, off, count);
  return copy_through(in, off, out, nullptr, count);
}
ssize_t sendfile64(int out, int in, off64_t* off, size_t count) {
  if (!virtual_fd(in) && !virtual_fd(out)) return REAL(sendfile64)(out, in, off, count);
  return copy_through(in, off, out, nullptr, count);
}

}  // extern "C"
