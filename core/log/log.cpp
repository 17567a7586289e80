#include "log/log.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "util/encode.hpp"

namespace ossshim::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::warn)};
std::atomic<int> g_fd{STDERR_FILENO};

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

bool configure(Level level, const std::string& path, std::string* why) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
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
  return true;
}

bool enabled(Level level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  int saved_errno = errno;  // logging must never change what the caller reports
  std::string line = "ossshim[" + std::to_string(::getpid()) + "] " + std::string(level_name(level)) + ": ";
  line.append(message.data(), message.size());
  line += '\n';
  // One write per line: O_APPEND keeps lines from several processes whole.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    auto n = ::syscall(SYS_write, g_fd.load(std::memory_order_relaxed), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  errno = saved_errno;
}

}  // namespace ossshim::log
