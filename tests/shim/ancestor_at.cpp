// The *at calls with a directory fd of a real ancestor of the prefix ("/", as rsync opens it)
// and relative paths from a real cwd above it: each must reach the prefix. Usage:
// ancestor_at REL (REL is the bucket directory relative to "/", e.g. oss/bkt). Prints every
// failed step and exits 1; on success the bucket holds REL/at/data (10 bytes) and REL/at/link.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

static int failures = 0;
static void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL %s: %s\n", what.c_str(), std::strerror(errno));
    ++failures;
  }
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string rel = argv[1], dir = rel + "/at";
  for (int flags : {O_PATH | O_DIRECTORY, O_RDONLY | O_DIRECTORY}) {
    int root = open("/", flags | O_CLOEXEC);
    check(root >= 0, "open /");
    std::string tag = flags & O_PATH ? " (O_PATH)" : " (O_RDONLY)";
    struct stat st;
    check(fstatat(root, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode),
          "fstatat bucket" + tag);
    check(mkdirat(root, dir.c_str(), 0755) == 0, "mkdirat" + tag);
    int fd = openat(root, (dir + "/tmp").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    check(fd >= 0 && write(fd, "0123456789", 10) == 10 && close(fd) == 0, "openat+write" + tag);
    check(fstatat(root, (dir + "/tmp").c_str(), &st, 0) == 0 && st.st_size == 10, "fstatat file" + tag);
    struct statx stx;
    check(statx(root, (dir + "/tmp").c_str(), 0, STATX_SIZE, &stx) == 0 && stx.stx_size == 10, "statx" + tag);
    check(faccessat(root, (dir + "/tmp").c_str(), R_OK, 0) == 0, "faccessat" + tag);
    check(fchmodat(root, (dir + "/tmp").c_str(), 0600, 0) == 0, "fchmodat" + tag);
    check(utimensat(root, (dir + "/tmp").c_str(), nullptr, 0) == 0, "utimensat" + tag);
    check(renameat(root, (dir + "/tmp").c_str(), root, (dir + "/data").c_str()) == 0, "renameat" + tag);
    check(symlinkat("data", root, (dir + "/link").c_str()) == 0, "symlinkat" + tag);
    char buf[64] = {};
    check(readlinkat(root, (dir + "/link").c_str(), buf, sizeof buf) == 4 && std::memcmp(buf, "data", 4) == 0,
          "readlinkat" + tag);
    // A directory fd of the prefix's directory itself, reached from "/", then the bucket below it.
    int sub = openat(root, rel.substr(0, rel.find('/')).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    check(sub >= 0 && fstatat(sub, (rel.substr(rel.find('/') + 1) + "/at/data").c_str(), &st, 0) == 0 &&
              st.st_size == 10,
          "openat prefix dir, fstatat below" + tag);
    if (sub >= 0) close(sub);
    if (flags & O_PATH) {  // the first round cleans up; the second leaves the result
      check(unlinkat(root, (dir + "/link").c_str(), 0) == 0, "unlinkat link" + tag);
      check(unlinkat(root, (dir + "/data").c_str(), 0) == 0, "unlinkat file" + tag);
      check(unlinkat(root, dir.c_str(), AT_REMOVEDIR) == 0, "unlinkat dir" + tag);
      check(fstatat(root, dir.c_str(), &st, 0) != 0 && errno == ENOENT, "gone" + tag);
    }
    close(root);
  }
  // Relative paths against a real cwd: "/" and a directory beside the prefix ("../").
  check(chdir("/") == 0, "chdir /");
  struct stat st;
  check(stat((dir + "/data").c_str(), &st) == 0 && st.st_size == 10, "stat from cwd /");
  check(chdir("/tmp") == 0, "chdir /tmp");
  check(stat(("../" + dir + "/data").c_str(), &st) == 0 && st.st_size == 10, "stat ../ from /tmp");
  check(stat("./definitely-not-here", &st) != 0 && errno == ENOENT, "local relative paths still local");
  return failures ? 1 : 0;
}
