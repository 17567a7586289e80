#undef _FILE_OFFSET_BITS
// glibc's syscall(): programs that call the kernel by number through it (libuv closes with
// syscall(SYS_close) and stats with syscall(SYS_statx); Node.js, and everything built on libuv)
// reach the shim's implementation for the numbers that concern files. A call on a descriptor or
// path that is not virtual goes to the kernel untouched (same number, same arguments, no
// cancellation point added); every other number passes through.
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "real.hpp"
#include "shim.hpp"

using namespace ossshim::shim;

namespace {

using Raw = long (*)(long, ...);

Raw raw_syscall() {
  static Raw fn = next_symbol<Raw>("syscall");
  return fn;
}

// The argument registers, as the kernel gets them.
struct Args {
  long a[6];
  int fd(int i) const { return static_cast<int>(a[i]); }
  const char* path(int i) const { return reinterpret_cast<const char*>(a[i]); }
  template <class T>
  T* ptr(int i) const {
    return reinterpret_cast<T*>(a[i]);
  }
};

bool empty(const char* p) {
  return p == nullptr || p[0] == '\0';
}

// Does (dirfd, path) or the descriptor concern the shim? The same cheap tests as the libc entry
// points make.
bool path_ours(int dirfd, const char* path, int flags) {
  if ((flags & AT_EMPTY_PATH) && empty(path)) return virtual_fd(dirfd);
  return maybe_virtual(dirfd, path);
}

// A number the shim serves, routed to its libc-named entry point: -1 and errno from there are
// what glibc's syscall() returns too. `handled` false: pass the call through.
long route(long n, const Args& x, bool& handled) {
  handled = true;
  switch (n) {
    case SYS_close:
      if (shim_fd(x.fd(0))) return close(x.fd(0));
      break;
    case SYS_close_range:
      if (globals().virtual_fds.load(std::memory_order_relaxed) > 0)
        return close_range(static_cast<unsigned>(x.a[0]), static_cast<unsigned>(x.a[1]),
                           static_cast<int>(x.a[2]));
      break;
    case SYS_read:
      if (virtual_fd(x.fd(0))) return read(x.fd(0), x.ptr<void>(1), static_cast<size_t>(x.a[2]));
      break;
    case SYS_write:
      if (virtual_fd(x.fd(0))) return write(x.fd(0), x.ptr<const void>(1), static_cast<size_t>(x.a[2]));
      break;
    case SYS_pread64:
      if (virtual_fd(x.fd(0))) return pread(x.fd(0), x.ptr<void>(1), static_cast<size_t>(x.a[2]), x.a[3]);
      break;
    case SYS_pwrite64:
      if (virtual_fd(x.fd(0)))
        return pwrite(x.fd(0), x.ptr<const void>(1), static_cast<size_t>(x.a[2]), x.a[3]);
      break;
    case SYS_readv:
      if (virtual_fd(x.fd(0))) return readv(x.fd(0), x.ptr<const iovec>(1), static_cast<int>(x.a[2]));
      break;
    case SYS_writev:
      if (virtual_fd(x.fd(0))) return writev(x.fd(0), x.ptr<const iovec>(1), static_cast<int>(x.a[2]));
      break;
    case SYS_preadv:  // the kernel takes the offset split in two longs; on x86_64 the low one is all
      if (virtual_fd(x.fd(0)))
        return preadv(x.fd(0), x.ptr<const iovec>(1), static_cast<int>(x.a[2]), x.a[3]);
      break;
    case SYS_pwritev:
      if (virtual_fd(x.fd(0)))
        return pwritev(x.fd(0), x.ptr<const iovec>(1), static_cast<int>(x.a[2]), x.a[3]);
      break;
    case SYS_lseek:
      if (virtual_fd(x.fd(0))) return lseek(x.fd(0), x.a[1], static_cast<int>(x.a[2]));
      break;
    case SYS_fstat:
      if (virtual_fd(x.fd(0))) return fstat(x.fd(0), x.ptr<struct stat>(1));
      break;
    case SYS_newfstatat:
      if (path_ours(x.fd(0), x.path(1), static_cast<int>(x.a[3])))
        return fstatat(x.fd(0), x.path(1), x.ptr<struct stat>(2), static_cast<int>(x.a[3]));
      break;
    case SYS_stat:
      if (maybe_virtual(AT_FDCWD, x.path(0))) return stat(x.path(0), x.ptr<struct stat>(1));
      break;
    case SYS_lstat:
      if (maybe_virtual(AT_FDCWD, x.path(0))) return lstat(x.path(0), x.ptr<struct stat>(1));
      break;
    case SYS_statx:
      if (path_ours(x.fd(0), x.path(1), static_cast<int>(x.a[2])))
        return statx(x.fd(0), x.path(1), static_cast<int>(x.a[2]), static_cast<unsigned>(x.a[3]),
                     x.ptr<struct statx>(4));
      break;
    case SYS_open:
      if (maybe_virtual(AT_FDCWD, x.path(0)))
        return open(x.path(0), static_cast<int>(x.a[1]), static_cast<mode_t>(x.a[2]));
      break;
    case SYS_openat:
      if (maybe_virtual(x.fd(0), x.path(1)))
        return openat(x.fd(0), x.path(1), static_cast<int>(x.a[2]), static_cast<mode_t>(x.a[3]));
      break;
    case SYS_dup:
      if (shim_fd(x.fd(0))) return dup(x.fd(0));
      break;
    case SYS_dup2:
      if (shim_fd(x.fd(0)) || shim_fd(x.fd(1))) return dup2(x.fd(0), x.fd(1));
      break;
    case SYS_dup3:
      if (shim_fd(x.fd(0)) || shim_fd(x.fd(1))) return dup3(x.fd(0), x.fd(1), static_cast<int>(x.a[2]));
      break;
    case SYS_fcntl:
      if (shim_fd(x.fd(0))) return fcntl(x.fd(0), static_cast<int>(x.a[1]), x.a[2]);
      break;
    case SYS_ftruncate:
      if (virtual_fd(x.fd(0))) return ftruncate(x.fd(0), x.a[1]);
      break;
    case SYS_fsync:
      if (shim_fd(x.fd(0))) return fsync(x.fd(0));
      break;
    case SYS_fdatasync:
      if (shim_fd(x.fd(0))) return fdatasync(x.fd(0));
      break;
    case SYS_getdents64:
      if (virtual_fd(x.fd(0))) return getdents64(x.fd(0), x.ptr<void>(1), static_cast<size_t>(x.a[2]));
      break;
    case SYS_copy_file_range:
      if (virtual_fd(x.fd(0)) || virtual_fd(x.fd(2)))
        return copy_file_range(x.fd(0), x.ptr<off64_t>(1), x.fd(2), x.ptr<off64_t>(3),
                               static_cast<size_t>(x.a[4]), static_cast<unsigned>(x.a[5]));
      break;
    case SYS_sendfile:
      if (virtual_fd(x.fd(0)) || virtual_fd(x.fd(1)))
        return sendfile(x.fd(0), x.fd(1), x.ptr<off_t>(2), static_cast<size_t>(x.a[3]));
      break;
    default:
      break;
  }
  handled = false;
  return 0;
}

// Numbers whose result is a new descriptor: if the table still lists that number as virtual, its
// placeholder was closed unseen (fresh_fd drops the entry).
bool returns_fd(long n, const Args& x) {
  switch (n) {
    case SYS_open:
    case SYS_openat:
    case SYS_openat2:
    case SYS_dup:
    case SYS_dup2:
    case SYS_dup3:
    case SYS_socket:
    case SYS_accept:
    case SYS_accept4:
    case SYS_eventfd2:
    case SYS_memfd_create:
    case SYS_epoll_create1:
    case SYS_timerfd_create:
    case SYS_signalfd4:
    case SYS_inotify_init1:
    case SYS_pidfd_open:
    case SYS_io_uring_setup:
      return true;
    case SYS_fcntl:
      return x.a[1] == F_DUPFD || x.a[1] == F_DUPFD_CLOEXEC;
    default:
      return false;
  }
}

}  // namespace

extern "C" long syscall(long number, ...) {
  Args x;
  va_list ap;
  va_start(ap, number);
  for (long& a : x.a) a = va_arg(ap, long);  // as glibc's own: six registers, used or not
  va_end(ap);
  bool handled;
  long r = route(number, x, handled);
  if (handled) return r;
  r = raw_syscall()(number, x.a[0], x.a[1], x.a[2], x.a[3], x.a[4], x.a[5]);
  if (r >= 0 && r < kMaxFds && returns_fd(number, x)) fresh_fd(static_cast<int>(r));
  return r;
}
