#include "log/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "util/encode.hpp"

namespace ossshim::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::warn)};
std::atomic<int> g_fd{STDERR_FILENO};

// The log file, when there is one: its path (set by configure, before other threads log) and the
// size at which it is rotated (0: never). One rotation at a time per process, by a try-flag rather
// than a mutex: a log line may be written under any of the shim's locks, and at fork.
std::atomic<bool> g_rotating{false};
// A plain array, constant-initialised: the shim configures the log from its constructor, which
// can run before this file's dynamic initialisers (a std::string here crashed every process).
char g_path[4096];
std::atomic<std::uint64_t> g_rotate_at{0};
std::atomic<bool> g_to_file{false};

// The log's descriptors live at or above this number: a program's usual descriptors are below it.
constexpr int kLogFdFloor = 900;

// The logger talks to the kernel directly: in a process running the shim, libc's open, fcntl and
// write are the shim's own, and a log line about a virtual file must not go through it again (a
// virtual writer on fd 2 deadlocked on its own lock; a log file under the prefix recursed).
long raw_fcntl(int fd, int cmd, long arg) {
  return ::syscall(SYS_fcntl, fd, cmd, arg);
}
int raw_open_log(const std::string& path) {
  return static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path.c_str(),
                                    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
}
void raw_close(int fd) {
  ::syscall(SYS_close, fd);
}
bool raw_stat(int fd, const char* path, struct stat& st) {
  return ::syscall(SYS_newfstatat, fd, path ? path : "", &st, path ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) ==
         0;
}

// "2026-12-02T18:45:01.123Z " from the clock alone (no time zone files, no locks).
std::string timestamp() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  std::int64_t secs = ts.tv_sec, days = secs / 86400, rem = secs % 86400;
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  std::int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
  std::int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  std::int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", static_cast<int>(y),
                static_cast<int>(m), static_cast<int>(d), static_cast<int>(rem / 3600),
                static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60),
                static_cast<int>(ts.tv_nsec / 1000000));
  return buf;
}

// A close-on-exec copy of `fd` above the program's descriptors, so that the program closing or
// redirecting fd 2 later does not move the log; `fd` itself if no copy can be made.
int private_copy(int fd) {
  long copy = raw_fcntl(fd, F_DUPFD_CLOEXEC, kLogFdFloor);
  if (copy < 0) return fd;
  if (fd != STDERR_FILENO) raw_close(fd);
  return static_cast<int>(copy);
}

void use_fd(int fd) {
  int old = g_fd.exchange(fd);
  if (old != STDERR_FILENO && old != fd) raw_close(old);
}
}  // namespace

bool parse_level(std::string_view text, Level& out) {
  std::string s = util::to_lower(util::trim(text));
  if (s == "error")
    out = Level::error;
  else if (s == "warn" || s == "warning")
    out = Level::warn;
  else if (s == "info")
    out = Level::info;
  else if (s == "debug")
    out = Level::debug;
  else
    return false;
  return true;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::error:
      return "error";
    case Level::warn:
      return "warn";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "?";
}

bool configure(Level level, const std::string& path, std::string* why, std::uint64_t rotate_at) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  g_to_file.store(false);
  g_rotate_at.store(0);
  if (path.size() >= sizeof g_path) rotate_at = 0;  // too long to keep: never rotated
  std::snprintf(g_path, sizeof g_path, "%s", path.size() < sizeof g_path ? path.c_str() : "");
  g_rotate_at.store(path.empty() ? 0 : rotate_at);
  if (path.empty()) {
    if (g_fd.load() == STDERR_FILENO) use_fd(private_copy(STDERR_FILENO));
    return true;
  }
  int fd = raw_open_log(path);
  if (fd < 0) {
    int err = errno;
    if (why)
      *why = "cannot open log file " + path + ": " + std::strerror(err) +
             (err == ELOOP
                  ? " (it is a symbolic link, which the log never follows: remove it or choose another path)"
                  : "") +
             "; logging to stderr";
    if (g_fd.load() == STDERR_FILENO) use_fd(private_copy(STDERR_FILENO));
    return false;
  }
  use_fd(private_copy(fd));
  g_to_file.store(true);
  return true;
}

namespace {
// Called with a line just written to the log file: past the size limit, PATH becomes PATH.1 (one
// old generation is kept) and a new PATH is opened. Several processes may share the file: only
// the one whose descriptor still is PATH renames it; the others see another inode and reopen.
void maybe_rotate(int fd) {
  std::uint64_t limit = g_rotate_at.load(std::memory_order_relaxed);
  struct stat st;
  if (limit == 0 || !raw_stat(fd, nullptr, st) || static_cast<std::uint64_t>(st.st_size) < limit) return;
  if (g_rotating.exchange(true)) return;      // another thread is at it
  if (g_fd.load() == fd && g_path[0] != 0) {  // else reopened meanwhile
    struct stat now;
    if (raw_stat(AT_FDCWD, g_path, now) && now.st_ino == st.st_ino && now.st_dev == st.st_dev)
      ::syscall(SYS_renameat, AT_FDCWD, g_path, AT_FDCWD, (std::string(g_path) + ".1").c_str());
    // The new file takes the old one's descriptor number in one step (dup3): a thread writing a
    // line meanwhile writes to the old file or the new one, never to a closed, reused number.
    int nfd = raw_open_log(g_path);
    if (nfd >= 0) {
      ::syscall(SYS_dup3, nfd, fd, O_CLOEXEC);
      raw_close(nfd);
    }
  }
  g_rotating.store(false);
}
}  // namespace

bool enabled(Level level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  int saved_errno = errno;  // logging must never change what the caller reports
  // A file gets timestamps; stderr does not (a terminal, or a collector that stamps lines itself).
  bool to_file = g_to_file.load(std::memory_order_relaxed);
  std::string line = to_file ? timestamp() : std::string();
  line += "ossshim[" + std::to_string(::getpid()) + "] " + std::string(level_name(level)) + ": ";
  line.append(message.data(), message.size());
  line += '\n';
  // One write per line: O_APPEND keeps lines from several processes whole.
  const char* p = line.data();
  std::size_t left = line.size();
  int fd = g_fd.load(std::memory_order_relaxed);
  while (left > 0) {
    auto n = ::syscall(SYS_write, fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (to_file) maybe_rotate(fd);
  errno = saved_errno;
}

}  // namespace ossshim::log
