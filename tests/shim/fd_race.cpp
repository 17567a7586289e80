// Descriptor calls racing close: two threads keep replacing (dup2) and closing a virtual file's
// and a virtual directory's descriptor at fixed high numbers, while other threads call dup, dup2,
// fcntl, fstat, read, pread, getdents64 and fchdir on those numbers. Every call must succeed or
// fail with EBADF, as on a local file system; the shim must never crash. The high numbers are
// never handed out by the kernel to anything else, so an answer other than EBADF is the shim's.
// Then the reuse phase: one number alternately holds the virtual file, nothing, and a local file
// (closed, then reused as a local file dup2'ed onto it) while threads call fstat and dup on it.
// Each answer must be EBADF or self-consistent: a stat of the virtual file or of the local file,
// and a dup whose stat and bytes are one file's. Never the placeholder (an O_PATH memfd whose
// stat is neither, left behind by a close in progress), never the local file's descriptor
// registered as the virtual file (its stat the virtual one, its bytes the local file's).
// Usage: fd_race FILE DIR ROUNDS. Prints two summary lines; exit 0 when every answer was allowed.
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

// ---- reuse phase
constexpr int kReuseFd = 520;
std::atomic<long> g_r_calls{0}, g_r_ebadf{0}, g_r_virtual{0}, g_r_local{0}, g_r_wrong{0};
struct Identity {
  dev_t dev;
  ino_t ino;
  bool of(const struct stat& st) const { return st.st_dev == dev && st.st_ino == ino; }
};
Identity g_virtual{}, g_local{};
std::string g_virtual_bytes, g_local_bytes;

void wrong(const char* what, const std::string& detail) {
  if (g_r_wrong.fetch_add(1) < 5) std::fprintf(stderr, "fd_race reuse: %s: %s\n", what, detail.c_str());
}

// Classifies a stat answer: 1 virtual, 2 local, 0 neither.
int which(const struct stat& st) {
  return g_virtual.of(st) ? 1 : g_local.of(st) ? 2 : 0;
}

void reuse_churn(const char* vpath, const char* lpath, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    int v = open(vpath, O_RDONLY);
    int l = open(lpath, O_RDONLY);
    if (v < 0 || l < 0) {
      std::fprintf(stderr, "fd_race reuse: open: %s\n", std::strerror(errno));
      std::exit(1);
    }
    dup2(v, kReuseFd);
    close(v);
    close(kReuseFd);  // the close window; then the number is reused by a local file
    dup2(l, kReuseFd);
    close(l);
    if (i % 2) close(kReuseFd);
  }
  close(kReuseFd);
}

void reuse_call() {
  g_r_calls.fetch_add(1, std::memory_order_relaxed);
  struct stat st;
  if (fstat(kReuseFd, &st) != 0) {
    if (errno != EBADF) wrong("fstat", std::strerror(errno));
    g_r_ebadf.fetch_add(1, std::memory_order_relaxed);
  } else if (int w = which(st); w == 0) {
    wrong("fstat", "neither file's stat (size " + std::to_string(st.st_size) + ", mode " +
                       std::to_string(st.st_mode) + "): the placeholder of a descriptor being closed");
  } else {
    (w == 1 ? g_r_virtual : g_r_local).fetch_add(1, std::memory_order_relaxed);
  }
  g_r_calls.fetch_add(1, std::memory_order_relaxed);
  int d = dup(kReuseFd);
  if (d < 0) {
    if (errno != EBADF) wrong("dup", std::strerror(errno));
    g_r_ebadf.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  char buf[256];
  ssize_t n = pread(d, buf, sizeof buf, 0);
  int w = fstat(d, &st) == 0 ? which(st) : -1;
  close(d);
  std::string got =
      n >= 0 ? std::string(buf, static_cast<std::size_t>(n)) : "(" + std::string(std::strerror(errno)) + ")";
  if (w == 1 && got == g_virtual_bytes) {
    g_r_virtual.fetch_add(1, std::memory_order_relaxed);
  } else if (w == 2 && got == g_local_bytes) {
    g_r_local.fetch_add(1, std::memory_order_relaxed);
  } else {
    wrong("dup", std::string(w == 1   ? "the virtual file's stat"
                             : w == 2 ? "the local file's stat"
                                      : "neither stat") +
                     " with bytes [" + got.substr(0, 20) + "]");
  }
}

bool identity_of(const char* path, Identity& id, std::string& bytes) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return false;
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  close(fd);
  if (n <= 0) return false;
  id = {st.st_dev, st.st_ino};
  bytes.assign(buf, static_cast<std::size_t>(n));
  return true;
}

// Returns false when an answer was wrong.
bool reuse_phase(const char* vpath, int rounds) {
  char local[] = "/tmp/fd_race-local-XXXXXX";
  int lf = mkstemp(local);
  if (lf < 0 || write(lf, "a local file, not the virtual one\n", 34) != 34)
    return std::perror("mkstemp"), false;
  close(lf);
  if (!identity_of(vpath, g_virtual, g_virtual_bytes) || !identity_of(local, g_local, g_local_bytes)) {
    std::fprintf(stderr, "fd_race reuse: cannot read %s or %s\n", vpath, local);
    unlink(local);
    return false;
  }
  g_stop = false;
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t)
    callers.emplace_back([] {
      for (long i = 0; i < 1000000 && !g_stop.load(); ++i) reuse_call();
    });
  std::thread churn(reuse_churn, vpath, local, rounds);
  churn.join();
  g_stop = true;
  for (auto& c : callers) c.join();
  unlink(local);
  std::printf("fd_race reuse: %ld calls, %ld EBADF, %ld virtual, %ld local, %ld wrong\n", g_r_calls.load(),
              g_r_ebadf.load(), g_r_virtual.load(), g_r_local.load(), g_r_wrong.load());
  return g_r_wrong.load() == 0;
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
  bool reuse_ok = reuse_phase(argv[1], rounds);
  return g_wrong.load() == 0 && reuse_ok ? 0 : 1;
}
