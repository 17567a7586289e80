// A virtual writer's placeholder tells the truth: a raw fstat/statx (the `syscall` instruction,
// which the shim cannot see, as Node's libuv and Go stat descriptors) reports the bytes written
// so far, after write, pwrite past the end, ftruncate down and up, and fallocate.
// Usage: writer_fstat VIRTUAL_PATH
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "raw_syscall.hpp"

namespace {
void report(const char* step, int fd) {
  struct stat st {};
  long r = kernel_call(SYS_fstat, fd, reinterpret_cast<long>(&st));
  struct statx stx {};
  long rx = kernel_call(SYS_statx, fd, reinterpret_cast<long>(""), AT_EMPTY_PATH, STATX_BASIC_STATS,
                        reinterpret_cast<long>(&stx));
  struct stat libc {};
  fstat(fd, &libc);
  if (r != 0 || rx != 0) {
    std::printf("%s: error %s\n", step, strerrorname_np(errno));
    return;
  }
  std::printf("%s: fstat %lld statx %llu libc %lld\n", step, static_cast<long long>(st.st_size),
              static_cast<unsigned long long>(stx.stx_size), static_cast<long long>(libc.st_size));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::printf("open: error %s\n", strerrorname_np(errno));
    return 1;
  }
  report("open", fd);
  if (write(fd, "hello", 5) != 5) return 1;
  report("write 5", fd);
  if (write(fd, " world\n", 7) != 7) return 1;
  report("write 7", fd);
  if (pwrite(fd, "x", 1, 99) != 1) return 1;
  report("pwrite at 99", fd);
  if (pwrite(fd, "y", 1, 10) != 1) return 1;
  report("pwrite at 10", fd);
  if (ftruncate(fd, 12) != 0) return 1;
  report("ftruncate 12", fd);
  if (posix_fallocate(fd, 0, 4096) != 0) return 1;
  report("fallocate 4096", fd);
  if (ftruncate(fd, 12) != 0) return 1;
  int copy = dup(fd);
  if (write(copy, "!", 1) != 1) return 1;
  report("dup write 1", fd);
  close(copy);
  // Past 64 KiB the placeholder follows in 64 KiB steps: never more than that behind, exact
  // after fsync.
  static char block[1000];
  for (int i = 0; i < 200; ++i)
    if (write(fd, block, sizeof block) != static_cast<ssize_t>(sizeof block)) return 1;
  struct stat raw {};
  kernel_call(SYS_fstat, fd, reinterpret_cast<long>(&raw));
  long long behind = 13 + 200 * 1000 - static_cast<long long>(raw.st_size);
  std::printf("200 KB written: raw fstat behind by less than 64 KiB: %s\n",
              behind >= 0 && behind < 65536 ? "yes" : "no");
  if (fsync(fd) != 0) return 1;
  report("fsync", fd);
  if (close(fd) != 0) return 1;
  struct stat st {};
  stat(argv[1], &st);
  std::printf("stored: %lld\n", static_cast<long long>(st.st_size));
  return 0;
}
