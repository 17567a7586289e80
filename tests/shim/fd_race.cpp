// Descriptor calls racing close: two threads keep replacing (dup2) and closing a virtual file's
// and a virtual directory's descriptor at fixed high numbers, while other threads call dup, dup2,
// fcntl, fstat, read, pread, getdents64 and fchdir on those numbers. Every call must succeed or
// fail with EBADF, as on a local file system; the shim must never crash. The high numbers are
// never handed out by the kernel to anything else, so an answer other than EBADF is the shim's.
// Usage: fd_race FILE DIR ROUNDS. Prints one summary line; exit 0 when every answer was allowed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kFileFd = 500;  // where the file's descriptor lives
constexpr int kDirFd = 501;   // where the directory's does
constexpr int kCallers = 4;

std::atomic<bool> g_stop{false};
std::atomic<long> g_calls{0}, g_ebadf{0}, g_wrong{0};

// close() forgets a descriptor just before the kernel closes it: in between, a call reaches the
// kernel's placeholder (an O_PATH memfd). The answer must still be the kernel's for a descriptor
// being closed, EBADF: never ENOTDIR from fchdir or getdents64 of a directory's descriptor.
void check(const char* what, long r) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (r >= 0) return;
  if (errno == EBADF) {
    g_ebadf.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (g_wrong.fetch_add(1) < 5)
    std::fprintf(stderr, "fd_race: %s: %s (want success or EBADF)\n", what, std::strerror(errno));
}

// Keeps `at` a fresh virtual descriptor of `path`, or closed, for `rounds` rounds.
void churn(const char* path, int flags, int at, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    int fd = open(path, flags);
    if (fd < 0) {
      std::fprintf(stderr, "fd_race: open %s: %s\n", path, std::strerror(errno));
      std::exit(1);
    }
    if (dup2(fd, at) < 0) std::fprintf(stderr, "fd_race: dup2 onto %d: %s\n", at, std::strerror(errno));
    close(fd);
    if (i % 3 == 0) close(at);  // a window in which every call on `at` is EBADF
  }
  close(at);
}

void close_if_new(long fd) {
  if (fd >= 0) close(static_cast<int>(fd));
}

void call_file(int spare) {
  char buf[512];
  struct stat st;
  int d = dup(kFileFd);
  check("dup file", d);
  close_if_new(d);
  d = fcntl(kFileFd, F_DUPFD_CLOEXEC, 0);
  check("fcntl F_DUPFD_CLOEXEC", d);
  close_if_new(d);
  check("fcntl F_GETFL", fcntl(kFileFd, F_GETFL));
  check("fstat file", fstat(kFileFd, &st));
  check("read", read(kFileFd, buf, sizeof buf));
  check("pread", pread(kFileFd, buf, sizeof buf, 1));
  check("lseek", lseek(kFileFd, 0, SEEK_SET));
  d = dup2(kFileFd, spare);
  check("dup2 file", d);
  close_if_new(d);
}

void call_dir(int spare) {
  char buf[4096];
  struct stat st;
  int d = dup(kDirFd);
  check("dup dir", d);
  close_if_new(d);
  check("fstat dir", fstat(kDirFd, &st));
  check("getdents64", getdents64(kDirFd, buf, sizeof buf));
  check("fchdir", fchdir(kDirFd));
  d = dup3(kDirFd, spare, O_CLOEXEC);
  check("dup3 dir", d);
  close_if_new(d);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: fd_race FILE DIR ROUNDS\n");
    return 2;
  }
  int rounds = std::atoi(argv[3]);
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t)
    callers.emplace_back([t] {
      int spare = 600 + t;  // dup2/dup3 targets of this thread only
      for (long i = 0; i < 1000000 && !g_stop.load(); ++i) {
        call_file(spare);
        call_dir(spare);
      }
    });
  std::thread file(churn, argv[1], O_RDONLY, kFileFd, rounds);
  std::thread dir(churn, argv[2], O_RDONLY | O_DIRECTORY, kDirFd, rounds);
  file.join();
  dir.join();
  g_stop = true;
  for (auto& c : callers) c.join();
  std::printf("fd_race: %ld calls, %ld EBADF, %ld other errors\n", g_calls.load(), g_ebadf.load(),
              g_wrong.load());
  return g_wrong.load() == 0 ? 0 : 1;
}
