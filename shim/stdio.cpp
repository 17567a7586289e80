#undef _FILE_OFFSET_BITS
// stdio on virtual files. glibc's fopen and fread never call the exported open/read, so a
// virtual file gets a FILE built on fopencookie whose I/O comes back to the shim. Its _fileno
// is the virtual fd, so fileno(), fstat(fileno(f)) and libstdc++'s filebuf (which reads the fd
// directly) work too.
//
// freopen onto a virtual path must keep the caller's FILE (programs keep `stdin`, std::cin reads
// glibc's stdin object), but glibc reads such a FILE with internal read() calls the shim cannot
// see, and it rejects a FILE whose vtable it did not set. So the stream is reopened on a socket
// that a feeder thread fills with the object's bytes, as a shell's `cmd < file` would through a
// pipe: sequential reads, fileno() and exec'd children work; seeking fails with ESPIPE.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"
#include "util/forksafe.hpp"

namespace ossshim::shim {
namespace {

int fd_of(void* cookie) {
  return static_cast<int>(reinterpret_cast<intptr_t>(cookie));
}

ssize_t cookie_read(void* cookie, char* buf, size_t size) {
  return virtual_read(fd_of(cookie), buf, size, -1);
}
ssize_t cookie_write(void* cookie, const char* buf, size_t size) {
  // glibc treats a short count as an error: write it all.
  size_t done = 0;
  while (done < size) {
    ssize_t n = virtual_write(fd_of(cookie), buf + done, size - done, -1);
    if (n <= 0) return done ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}
int cookie_seek(void* cookie, off64_t* pos, int whence) {
  off_t r = virtual_seek(fd_of(cookie), *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}
int cookie_close(void* cookie) {
  return close(fd_of(cookie));
}

// Parses an fopen mode into open(2) flags ("r" O_RDONLY, "w" O_WRONLY|O_CREAT|O_TRUNC,
// "a" O_WRONLY|O_CREAT|O_APPEND, "+" read and write, "x" O_EXCL, "e" O_CLOEXEC); -1 if invalid.
int open_flags(const char* mode) {
  int flags;
  switch (mode[0]) {
    case 'r':
      flags = O_RDONLY;
      break;
    case 'w':
      flags = O_WRONLY | O_CREAT | O_TRUNC;
      break;
    case 'a':
      flags = O_WRONLY | O_CREAT | O_APPEND;
      break;
    default:
      return -1;
  }
  for (const char* c = mode + 1; *c && *c != ','; ++c) {
    if (*c == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
    if (*c == 'x') flags |= O_EXCL;
    if (*c == 'e') flags |= O_CLOEXEC;
  }
  return flags;
}

// The mode fopencookie understands for those flags.
const char* cookie_mode(int flags) {
  bool plus = (flags & O_ACCMODE) == O_RDWR;
  if (flags & O_APPEND) return plus ? "a+" : "a";
  if ((flags & O_ACCMODE) == O_RDONLY) return "r";
  if (flags & O_TRUNC) return plus ? "w+" : "w";
  return plus ? "r+" : "w";
}

// Parses an fopen mode: true if it only reads. `cloexec` is set by 'e'.
bool read_only_mode(const char* mode, bool& cloexec) {
  cloexec = std::strchr(mode, 'e') != nullptr;
  return mode[0] == 'r' && std::strchr(mode, '+') == nullptr;
}

FILE* stream_for(int fd, const char* mode) {
  cookie_io_functions_t io{cookie_read, cookie_write, cookie_seek, cookie_close};
  FILE* f = fopencookie(reinterpret_cast<void*>(static_cast<intptr_t>(fd)), mode, io);
  if (f) f->_fileno = fd;
  return f;
}

FILE* fopen_virtual(const vfs::VPath& p, const char* mode) {
  int flags = open_flags(mode);
  if (flags < 0) return (fail(EINVAL), nullptr);
  int fd = open_virtual(p, flags);
  if (fd < 0) return nullptr;
  FILE* f = stream_for(fd, cookie_mode(flags));
  if (!f) {
    int err = errno;
    close(fd);
    errno = err;
  }
  return f;
}

// --- freopen onto a virtual path ---------------------------------------------------------------

// Feeders alive, so that a fork()ed child closes its copies of their sockets: a child holding
// one would keep the parent's stream from ever seeing end of file. The mutex is held across
// fork (forksafe.hpp), so a feeder never closes its descriptors while a child is being made.
constexpr int kMaxFeeders = 64;
struct Feeder {
  int sock = -1;             // the writing end
  int vfd = -1;              // the virtual file it reads
  bool during_exit = false;  // started by an atexit handler or destructor: no pause at exit
};
std::mutex g_feeders_mu;
Feeder g_feeders[kMaxFeeders];
// Exit runs atexit handlers and destructors (the file system's among them) while feeders may be
// reading: exit waits for reads in flight and no new one starts. Guarded by g_feeders_mu; the
// condition variable is never destroyed (its destructor would run at exit too).
std::condition_variable& reads_done() {
  static auto* cv = new std::condition_variable;
  return *cv;
}
int g_reading = 0;
bool g_exiting = false;
constexpr auto kExitWait = std::chrono::seconds(2);
constexpr auto kExitPause = std::chrono::seconds(5);

void feeders_lock() {
  g_feeders_mu.lock();
}
void feeders_unlock() {
  g_feeders_mu.unlock();
}
void feeders_after_fork_in_child() {
  for (Feeder& f : g_feeders) {
    if (f.sock >= 0) REAL(close)(f.sock);
    if (f.vfd >= 0) close(f.vfd);
    f = Feeder{};
  }
  g_reading = 0;
  g_feeders_mu.unlock();
}
const bool g_feeders_fork_safe =
    (forksafe::add(forksafe::Rank::stdio_feeders,
                   forksafe::Hooks{[](void*) { feeders_lock(); }, [](void*) { feeders_unlock(); },
                                   [](void*) { feeders_after_fork_in_child(); }},
                   nullptr),
     true);

void feeders_at_exit() {
  std::unique_lock lock(g_feeders_mu);
  g_exiting = true;
  if (!reads_done().wait_for(lock, kExitWait, [] { return g_reading == 0; }))
    log::warn("exit: a freopen'ed stream's read is still in flight after 2 s; exiting anyway");
}

// Takes a slot for (sock, vfd); nullptr when all are in use. Registered now, the exit hook runs
// before the file system's own (registered at its creation), as handlers run in reverse order.
Feeder* add_feeder(int sock, int vfd) {
  reads_done();
  static const bool registered = std::atexit(feeders_at_exit) == 0;
  (void)registered;
  std::lock_guard lock(g_feeders_mu);
  for (Feeder& f : g_feeders)
    if (f.sock < 0) {
      f = Feeder{sock, vfd, g_exiting};
      return &f;
    }
  return nullptr;
}

// Ends a feeder: closes its descriptors and frees its slot. The virtual fd is closed outside the
// lock (it may run vfs code); a child forked just before inherits it, harmlessly.
void end_feeder(Feeder* f) {
  int vfd;
  {
    std::lock_guard lock(g_feeders_mu);
    REAL(close)(f->sock);
    vfd = f->vfd;
    *f = Feeder{};
  }
  close(vfd);
}

// A read by a feeder. Once the process is exiting, the feeder first pauses (once, holding
// nothing): the process normally ends meanwhile, so no read runs alongside exit's clean-up; a
// reader still waiting afterwards (an atexit handler reading the stream) is then served.
ssize_t feeder_read(int vfd, char* buf, size_t len, bool& paused) {
  for (;;) {
    {
      std::lock_guard lock(g_feeders_mu);
      if (!g_exiting || paused) {
        ++g_reading;
        break;
      }
    }
    std::this_thread::sleep_for(kExitPause);
    paused = true;
  }
  ssize_t n = virtual_read(vfd, buf, len, -1);
  int err = errno;
  {
    std::lock_guard lock(g_feeders_mu);
    if (--g_reading == 0 && g_exiting) reads_done().notify_all();
  }
  errno = err;
  return n;
}

bool send_all(int sock, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(sock, p, n, MSG_NOSIGNAL);  // no SIGPIPE when the reader has gone
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The feeder thread: copies the object into the socket until end of file, a read error, or the
// reader closing its end (fclose, exit, another freopen).
void* feed(void* arg) {
  Feeder* f = static_cast<Feeder*>(arg);
  int sock = f->sock, vfd = f->vfd;  // the slot is this thread's until end_feeder
  bool paused = f->during_exit;
  constexpr size_t kChunk = 256 << 10;
  char* buf = static_cast<char*>(std::malloc(kChunk));
  bool complete = false;
  for (;;) {
    ssize_t n = buf ? feeder_read(vfd, buf, kChunk, paused) : (errno = ENOMEM, -1);
    if (n == 0 || (n > 0 && !send_all(sock, buf, static_cast<size_t>(n)))) {
      complete = true;  // end of file, or nobody left to read
      break;
    }
    if (n < 0) {
      log::warn("freopen " + display_of(vfd) + ": read failed (" + std::strerror(errno) +
                "); the stream reports ECONNRESET rather than a short end of file");
      break;
    }
  }
  std::free(buf);
  // A clean end drains the marker byte (see start_feeder); leaving it makes the close reset the
  // connection, which the reader sees as an error after the bytes already sent.
  char drain[16];
  if (complete)
    while (recv(sock, drain, sizeof drain, MSG_DONTWAIT) > 0) {
    }
  end_feeder(f);
  return nullptr;
}

// Starts a thread that feeds the virtual file `vfd` into a new socket; returns the reading end
// (close-on-exec) or -1/errno. The thread owns vfd from then on (also on failure).
int start_feeder(int vfd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    int err = errno;
    close(vfd);
    return fail(err);
  }
  // One byte the other way, which only a clean end drains: a unix socket closed with unread
  // data gives its peer ECONNRESET. Then the reading end cannot write (no hang on write(0, ..)).
  if (send(sv[1], "", 1, MSG_NOSIGNAL) != 1 || shutdown(sv[1], SHUT_WR) != 0) {
    int err = errno;
    REAL(close)(sv[0]);
    REAL(close)(sv[1]);
    close(vfd);
    return fail(err);
  }
  Feeder* f = add_feeder(sv[0], vfd);
  if (!f) {
    REAL(close)(sv[0]);
    REAL(close)(sv[1]);
    close(vfd);
    return fail(EMFILE);
  }
  // All signals blocked in the thread: the program's handlers keep running on its own threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&thread, &attr, feed, f);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    end_feeder(f);
    REAL(close)(sv[1]);
    return fail(rc);
  }
  return sv[1];
}

using FreopenFn = FILE* (*)(const char*, const char*, FILE*);

// glibc's freopen writes through the FILE's _wide_data, which a fopencookie FILE (the shim's
// fopen) has as (void*)-1: it would crash. Such a stream is reopened with none (glibc then skips
// it) and stays byte-oriented, as it was; ",ccs=" in the mode needs wide data and is dropped.
FILE* call_real(FreopenFn real, const char* path, const char* mode, FILE* stream) {
  auto* no_wide = reinterpret_cast<struct _IO_wide_data*>(-1);
  if (!stream || (stream->_wide_data != nullptr && stream->_wide_data != no_wide))
    return real(path, mode, stream);
  stream->_wide_data = nullptr;
  std::string narrow(mode, std::strcspn(mode, ","));
  FILE* r = real(path, narrow.c_str(), stream);
  if (r) r->_mode = -1;
  return r;
}

// glibc's freopen closes or replaces the stream's old descriptor with internal calls the shim
// does not see: a virtual one is forgotten first.
void forget_stream_fd(FILE* stream) {
  if (stream && virtual_fd(stream->_fileno)) finish_close(detach(stream->_fileno), 0);
}

// Logs one line for `what` failing on `path`; -1/errno.
int reopen_error(const char* path, const char* what) {
  Error e;
  e.err = errno;
  e.op = "freopen";
  e.target = path;
  e.message = what;
  return fail(e);
}

// Leaves `stream` as glibc leaves it after a failed freopen (closed, descriptor closed, FILE not
// freed) by letting glibc fail on "", then reports `err`.
FILE* fail_reopen(FILE* stream, FreopenFn real, int err) {
  call_real(real, "", "r", stream);
  errno = err;
  return nullptr;
}

FILE* freopen_virtual(const vfs::VPath& p, const char* path, const char* mode, FILE* stream, FreopenFn real) {
  forget_stream_fd(stream);
  bool cloexec;
  if (!read_only_mode(mode, cloexec)) {
    // glibc would write such a stream with internal write() calls the shim cannot see.
    Error e;
    e.err = ENOTSUP;
    e.op = "freopen";
    e.target = path;
    e.message = "reopening a stream for writing onto a virtual path is not supported; use fopen";
    fail(e);
    (void)p;
    return fail_reopen(stream, real, ENOTSUP);
  }
  int vfd = open_virtual(p, O_RDONLY | O_CLOEXEC);
  if (vfd < 0) return fail_reopen(stream, real, errno);
  int sock = start_feeder(vfd);
  if (sock < 0) {
    reopen_error(path, "cannot start the thread that feeds the stream");
    return fail_reopen(stream, real, errno);
  }
  // glibc resets the stream (buffers, orientation, the caller's mode flags) and keeps its
  // descriptor number; the socket then takes that number, so stdin stays fd 0.
  if (!call_real(real, "/dev/null", mode, stream)) {
    int err = errno;
    REAL(close)(sock);  // the feeder sees the reader gone and ends
    errno = err;
    reopen_error(path, "reopening the stream on /dev/null failed");
    return nullptr;
  }
  if (REAL(dup3)(sock, stream->_fileno, cloexec ? O_CLOEXEC : 0) < 0) {
    int err = errno;
    REAL(close)(sock);
    errno = err;
    reopen_error(path, "dup3 of the stream's socket failed");
    return fail_reopen(stream, real, err);
  }
  REAL(close)(sock);
  return stream;
}

FILE* reopen(const char* path, const char* mode, FILE* stream, FreopenFn real) {
  // freopen(NULL, mode, f) reopens f's own file: for a virtual fd, its path (from offset 0, as
  // glibc's /proc/self/fd/N reopen of a local file would).
  std::string own;
  if (path == nullptr && stream && virtual_fd(stream->_fileno)) {
    own = display_of(stream->_fileno);
    if (!own.empty()) path = own.c_str();
  }
  Target t(AT_FDCWD, path);
  if (t.handled) return freopen_virtual(t.path, path, mode, stream, real);
  forget_stream_fd(stream);
  return call_real(real, path, mode, stream);
}

}  // namespace

void adopt_std_streams() {
  // A program started with a virtual fd as its stdin (`sha256sum < /oss/b/k` from a preloaded
  // shell, subprocess with stdin=file) reads it through glibc's static stdin FILE, which goes
  // straight to the kernel: give it a cookie stream instead.
  if (virtual_fd(0))
    if (FILE* in = stream_for(0, "r")) stdin = in;
}
}  // namespace ossshim::shim

using namespace ossshim::shim;
namespace vfs = ossshim::vfs;
namespace log = ossshim::log;

extern "C" {

FILE* fopen(const char* path, const char* mode) {
  Target t(AT_FDCWD, path);
  if (t.handled) return fopen_virtual(t.path, mode);
  FILE* f = REAL(fopen)(path, mode);
  return !f && t.via_local_link(AT_FDCWD, path) ? fopen_virtual(t.path, mode) : f;
}
FILE* fopen64(const char* path, const char* mode) {
  Target t(AT_FDCWD, path);
  if (t.handled) return fopen_virtual(t.path, mode);
  FILE* f = REAL(fopen64)(path, mode);
  return !f && t.via_local_link(AT_FDCWD, path) ? fopen_virtual(t.path, mode) : f;
}
FILE* fdopen(int fd, const char* mode) {
  if (!virtual_fd(fd)) return REAL(fdopen)(fd, mode);
  auto f = lookup_file(fd);
  if (!f) return nullptr;
  int flags = open_flags(mode);
  if (flags < 0) return (fail(EINVAL), nullptr);
  // The mode must fit how the descriptor was opened, as fdopen(3) requires.
  int access = f->status_flags.load() & O_ACCMODE;
  int wanted = flags & O_ACCMODE;
  if (access != O_RDWR && wanted != access) return (fail(EINVAL), nullptr);
  return stream_for(fd, cookie_mode(flags & ~(O_TRUNC | O_CREAT)));
}

FILE* freopen(const char* path, const char* mode, FILE* stream) {
  return reopen(path, mode, stream, REAL(freopen));
}
FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  return reopen(path, mode, stream, REAL(freopen64));
}

}  // extern "C"
