// Reads fd 0 (or opens argv[1]) several ways and prints what each returned: through libc,
// through glibc's syscall() (which the shim interposes), through the `syscall` instruction
// itself, and through mmap. Under the shim, libc and syscall() reads of a virtual fd work, every
// escape must fail with EBADF (never succeed with wrong or zero bytes), and an escaped fstat
// must tell the truth about the file (type, mode, size, mtime). Also built statically: a static
// binary ignores LD_PRELOAD, so everything escapes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "raw_syscall.hpp"

static void describe(const char* how, long r, int err, unsigned mode, unsigned long long size, long mtime,
                     long libc_mtime) {
  if (r < 0) {
    std::printf("%s: error %s\n", how, strerrorname_np(err));
    return;
  }
  char bytes[32] = "";  // a directory's size is the file system's own
  if (S_ISREG(mode)) std::snprintf(bytes, sizeof bytes, " %llu bytes,", size);
  const char* type = S_ISREG(mode) ? "file" : S_ISDIR(mode) ? "dir" : "other";
  std::printf("%s: %s %04o%s mtime %s\n", how, type, mode & 07777, bytes,
              mtime == libc_mtime ? "as fstat" : "differs");
}

static void report(const char* how, long n, int err, const char* buf) {
  if (n < 0)
    std::printf("%s: error %s\n", how, strerrorname_np(err));
  else
    std::printf("%s: %ld bytes \"%.*s\"\n", how, n, static_cast<int>(n > 5 ? 5 : n), buf);
}

int main(int argc, char** argv) {
  int fd = 0;
  if (argc > 1) {
    fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
      std::printf("open: error %s\n", strerrorname_np(errno));
      return 0;
    }
  }
  char buf[64];
  long n = syscall(SYS_pread64, fd, buf, sizeof buf, 0);
  report("syscall-pread", n, errno, buf);
  n = kernel_call(SYS_pread64, fd, reinterpret_cast<long>(buf), sizeof buf, 0);
  report("asm-pread", n, errno, buf);
  void* m = reinterpret_cast<void*>(syscall(SYS_mmap, nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0));
  report("syscall-mmap", m == MAP_FAILED ? -1 : 0, errno, "");
  struct stat libc_st {};
  fstat(fd, &libc_st);
  struct stat st {};
  long r = kernel_call(SYS_fstat, fd, reinterpret_cast<long>(&st));
  describe("asm-fstat", r, errno, st.st_mode, st.st_size, st.st_mtime, libc_st.st_mtime);
  struct statx stx {};
  r = syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx);
  describe("syscall-statx", r, errno, stx.stx_mode, stx.stx_size, stx.stx_mtime.tv_sec, libc_st.st_mtime);
  r = kernel_call(SYS_statx, fd, reinterpret_cast<long>(""), AT_EMPTY_PATH, STATX_BASIC_STATS,
                  reinterpret_cast<long>(&stx));
  describe("asm-statx", r, errno, stx.stx_mode, stx.stx_size, stx.stx_mtime.tv_sec, libc_st.st_mtime);
  n = pread(fd, buf, sizeof buf, 0);
  report("libc-pread", n, errno, buf);
  n = read(fd, buf, sizeof buf);
  report("libc-read", n, errno, buf);
  return 0;
}
