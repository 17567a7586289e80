#include "log/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "util/encode.hpp"

namespace ossshim::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::warn)};
std::atomic<int> g_fd{STDERR_FILENO};
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
  if (path.empty()) return true;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (why) *why = "cannot open log file " + path + ": " + std::strerror(errno);
    return false;
  }
  int old = g_fd.exchange(fd);
  if (old != STDERR_FILENO) ::close(old);
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
    ssize_t n = ::write(g_fd.load(std::memory_order_relaxed), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  errno = saved_errno;
}

}  // namespace ossshim::log
