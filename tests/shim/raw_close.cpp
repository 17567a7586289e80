// A virtual writer closed by a system call: glibc's syscall(SYS_close) (which the shim
// interposes: libuv closes this way) or the `syscall` instruction (which it cannot see). Then a
// local file opened for writing gets the same descriptor number (open, else dup2 onto it): its reads and
// writes must reach the local file, and the virtual file must hold what was written to it (committed as close
// would). Usage: raw_close VIRTUAL_PATH LOCAL_PATH syscall|asm
// With VIRTUAL_PATH "-": standard output is the virtual file (a shell's `> /oss/...`: a sink, a
// pipe the shim drains), and the report goes to standard error; fsync, dup and exec of the local
// file on number 1 must be the local file's (the exec'd echo writes into it), and the virtual
// file holds what was written before the raw close.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "raw_syscall.hpp"

namespace {
int sink_case(const char* local_path, bool asm_close) {
  const char virtual_text[] = "virtual bytes\n";
  std::fprintf(stderr, "virtual write: %zd\n", write(1, virtual_text, sizeof virtual_text - 1));
  long r = asm_close ? kernel_call(SYS_close, 1) : syscall(SYS_close, 1);
  std::fprintf(stderr, "close: %ld\n", r);
  int local = open(local_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (local >= 0 && local != 1) {
    if (dup2(local, 1) == 1) close(local);
    local = 1;
  }
  std::fprintf(stderr, "same number: %s\n", local == 1 ? "yes" : "no");
  const char local_text[] = "local bytes\n";
  std::fprintf(stderr, "local write: %zd\n", write(1, local_text, sizeof local_text - 1));
  char buf[64] = {};
  ssize_t n = pread(1, buf, sizeof buf - 1, 0);
  std::fprintf(stderr, "local read: %zd %s", n, n > 0 ? buf : "\n");
  std::fprintf(stderr, "local fsync: %d\n", fsync(1));
  int copy = fcntl(1, F_DUPFD_CLOEXEC, 10);
  std::fprintf(stderr, "local dup: %s\n", copy >= 10 && close(copy) == 0 ? "yes" : "no");
  // An exec hands the process's sinks to the new program: not this file, which must stay as it is.
  execl("/bin/echo", "echo", "exec'd echo", static_cast<char*>(nullptr));
  std::fprintf(stderr, "exec: error %s\n", strerrorname_np(errno));
  return 1;
}
// A virtual reader closed by the `syscall` instruction, its number then taken by a pipe (made by
// libc's pipe(), not an open the shim serves): reads of that number are the pipe's.
int pipe_case(const char* virtual_path) {
  int fd = open(virtual_path, O_RDONLY);
  char buf[64] = {};
  std::printf("virtual read: %zd\n", read(fd, buf, 4));
  std::printf("close: %ld\n", kernel_call(SYS_close, fd));
  int p[2];
  if (pipe(p) != 0) return 1;
  if (p[0] != fd && dup2(p[0], fd) == fd) close(p[0]);
  std::printf("same number: %s\n", p[0] == fd || fcntl(fd, F_GETFD) >= 0 ? "yes" : "no");
  const char text[] = "pipe bytes\n";
  std::printf("pipe write: %zd\n", write(p[1], text, sizeof text - 1));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  std::printf("pipe read: %zd %s", n, n > 0 ? buf : "\n");
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  if (std::strcmp(argv[3], "pipe") == 0) return pipe_case(argv[1]);
  if (std::strcmp(argv[1], "-") == 0) return sink_case(argv[2], std::strcmp(argv[3], "asm") == 0);
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
