#undef _FILE_OFFSET_BITS
// A virtual current directory. chdir into the prefix keeps the virtual path in the process and
// moves the real cwd into a per-user marker directory that records it, so that programs exec'd
// from there (a shell's `cd /oss/b/dir && ls`) start with the same virtual cwd.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"

namespace ossshim::shim {
namespace {

std::string marker_base() {
  return "/tmp/ossshim-" + std::to_string(getuid()) + "-cwd";
}

// The base must be ours and private: another user must not be able to plant a path there.
bool base_is_safe(const std::string& base) {
  struct stat st;
  if (lstat(base.c_str(), &st) != 0) return false;
  return S_ISDIR(st.st_mode) && st.st_uid == getuid() && (st.st_mode & 077) == 0;
}

// Creates (once) base/<hash>/ holding a file "path" with the virtual path; "" on failure.
std::string marker_for(const std::string& display) {
  std::string base = marker_base();
  REAL(mkdir)(base.c_str(), 0700);
  if (!base_is_safe(base)) {
    log::warn("chdir " + display + ": " + base + " is not a private directory of this user; " +
              "programs started from here will not inherit the virtual directory");
    return "";
  }
  char name[32];
  std::snprintf(name, sizeof name, "%016zx", std::hash<std::string>{}(display));
  std::string dir = base + "/" + name;
  REAL(mkdir)(dir.c_str(), 0700);
  std::string file = dir + "/path";
  std::string tmp = file + "." + std::to_string(getpid());
  int fd = REAL(open)(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  bool ok = ::write(fd, display.data(), display.size()) == static_cast<ssize_t>(display.size());
  REAL(close)(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) return "";
  return dir;
}

void remember_cwd(const std::string& display) {
  Globals& g = globals();
  std::lock_guard lock(g.cwd_mu);
  if (g.cwd == nullptr) g.cwd = new std::string;
  *g.cwd = display;
  g.cwd_virtual.store(true);
}

}  // namespace

void set_virtual_cwd(const std::string& display) {
  remember_cwd(display);
  std::string marker = marker_for(display);
  if (!marker.empty()) REAL(chdir)(marker.c_str());
}

void restore_virtual_cwd() {
  char buf[4096];
  if (REAL(getcwd)(buf, sizeof buf) == nullptr) return;
  // Every program starts here: no getuid() and no allocation unless the cwd can be a marker.
  if (std::strncmp(buf, "/tmp/ossshim-", 13) != 0) return;
  std::string base = marker_base();
  if (std::strncmp(buf, base.c_str(), base.size()) != 0 || buf[base.size()] != '/') return;
  if (!base_is_safe(base)) return;
  int fd = REAL(open)((std::string(buf) + "/path").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char path[4096];
  ssize_t n = REAL(read)(fd, path, sizeof path - 1);
  REAL(close)(fd);
  if (n <= 0) return;
  path[n] = '\0';
  if (!is_virtual_path(path)) return;  // recorded under another prefix
  remember_cwd(path);
}

}  // namespace ossshim::shim
