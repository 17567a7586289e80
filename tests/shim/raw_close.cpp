// A virtual writer closed by a system call: glibc's syscall(SYS_close) (which the shim
// interposes: libuv closes this way) or the `syscall` instruction (which it cannot see). Then a
// local file opened for writing gets the same descriptor number (open, else dup2 onto it): its reads and
// writes must reach the local file, and the virtual file must hold what was written to it (committed as close
// would). Usage: raw_close VIRTUAL_PATH LOCAL_PATH syscall|asm
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "raw_syscall.hpp"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::printf("open virtual: error %s\n", strerrorname_np(errno));
    return 1;
  }
  const char virtual_text[] = "virtual bytes\n";
  std::printf("virtual write: %zd\n", write(fd, virtual_text, sizeof virtual_text - 1));
  long r = std::strcmp(argv[3], "asm") == 0 ? kernel_call(SYS_close, fd) : syscall(SYS_close, fd);
  std::printf("close: %ld\n", r);
  int local = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (local >= 0 && local != fd) {  // a shim thread took the lowest number meanwhile: take fd's
    if (dup2(local, fd) == fd) close(local);
    local = fd;
  }
  std::printf("same number: %s\n", local == fd ? "yes" : "no");
  const char local_text[] = "local bytes\n";
  std::printf("local write: %zd\n", write(local, local_text, sizeof local_text - 1));
  char buf[64] = {};
  ssize_t n = pread(local, buf, sizeof buf - 1, 0);
  std::printf("local read: %zd %s", n, n > 0 ? buf : "\n");
  struct stat st {};
  fstat(local, &st);
  std::printf("local fstat: %s %lld\n", S_ISREG(st.st_mode) ? "file" : "other",
              static_cast<long long>(st.st_size));
  std::printf("local close: %d\n", close(local));
  int back = open(argv[1], O_RDONLY);
  n = back >= 0 ? read(back, buf, sizeof buf - 1) : -1;
  if (n >= 0) buf[n] = '\0';
  std::printf("virtual read back: %s", n >= 0 ? buf : "error\n");
  if (back >= 0) close(back);
  return 0;
}
