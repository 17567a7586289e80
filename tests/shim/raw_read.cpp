// Reads fd 0 (or opens argv[1]) three ways and prints what each returned: through libc, through
// a raw syscall, and through mmap. Under the shim, libc reads of a virtual fd work and every
// escape must fail with EBADF (never succeed with wrong or zero bytes). Also built statically:
// a static binary ignores LD_PRELOAD, so everything escapes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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
  void* m = reinterpret_cast<void*>(syscall(SYS_mmap, nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0));
  report("syscall-mmap", m == MAP_FAILED ? -1 : 0, errno, "");
  n = pread(fd, buf, sizeof buf, 0);
  report("libc-pread", n, errno, buf);
  n = read(fd, buf, sizeof buf);
  report("libc-read", n, errno, buf);
  return 0;
}
