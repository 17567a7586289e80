#undef _FILE_OFFSET_BITS
// stdio on virtual files. glibc's fopen and fread never call the exported open/read, so a
// virtual file gets a FILE built on fopencookie whose I/O comes back to the shim. Its _fileno
// is the virtual fd, so fileno(), fstat(fileno(f)) and libstdc++'s filebuf (which reads the fd
// directly) work too.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cstring>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"

namespace ossshim::shim {
namespace {

int fd_of(void* cookie) {
  return static_cast<int>(reinterpret_cast<intptr_t>(cookie));
}

ssize_t cookie_read(void* cookie, char* buf, size_t size) {
  return virtual_read(fd_of(cookie), buf, size, -1);
}
ssize_t cookie_write(void*, const char*, size_t) {
  return fail(EBADF);
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
  bool cloexec;
  if (!read_only_mode(mode, cloexec)) {
    // Same answers as open(2): EISDIR, EROFS, ENOENT for a missing parent ...
    int fd = open_virtual(p, (mode[0] == 'r' ? O_RDWR : O_WRONLY | O_CREAT | O_TRUNC));
    if (fd >= 0) close(fd);
    return nullptr;
  }
  int fd = open_virtual(p, O_RDONLY | (cloexec ? O_CLOEXEC : 0));
  if (fd < 0) return nullptr;
  FILE* f = stream_for(fd, "r");
  if (!f) {
    int err = errno;
    close(fd);
    errno = err;
  }
  return f;
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
  return t.handled ? fopen_virtual(t.path, mode) : REAL(fopen)(path, mode);
}
FILE* fopen64(const char* path, const char* mode) {
  Target t(AT_FDCWD, path);
  return t.handled ? fopen_virtual(t.path, mode) : REAL(fopen64)(path, mode);
}
FILE* fdopen(int fd, const char* mode) {
  if (!virtual_fd(fd)) return REAL(fdopen)(fd, mode);
  bool cloexec;
  if (!read_only_mode(mode, cloexec)) return (fail(EINVAL), nullptr);  // fd is read-only
  return stream_for(fd, "r");
}

// freopen cannot turn glibc's FILE into a cookie stream in place: a virtual path is refused
// with a clear error instead of reading the wrong file.
static FILE* freopen_refused(const char* path, FILE* stream) {
  log::error(std::string("freopen ") + path +
             ": reopening an existing stream onto a virtual file is not supported; use fopen");
  fclose(stream);
  return (fail(ENOTSUP), nullptr);
}
FILE* freopen(const char* path, const char* mode, FILE* stream) {
  Target t(AT_FDCWD, path);
  return t.handled ? freopen_refused(path, stream) : REAL(freopen)(path, mode, stream);
}
FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  Target t(AT_FDCWD, path);
  return t.handled ? freopen_refused(path, stream) : REAL(freopen64)(path, mode, stream);
}

}  // extern "C"
