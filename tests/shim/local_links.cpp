// Calls through a local symbolic link into the prefix (ln -s /oss/b/f /tmp/l): each must reach
// the virtual file or directory, as the same calls do through a link to a local one (escapes.sh
// compares the two reports). Also /proc/self/fd/N and /dev/fd/N of a descriptor of each.
// Usage: local_links FILE_LINK DIR_LINK
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {
void rc(const char* what, long r) {
  std::printf("%s: %s\n", what, r == 0 ? "0" : strerrorname_np(errno));
}
int all(const struct dirent*) {
  return 1;
}
std::string names(struct dirent** list, int n) {
  std::string out = std::to_string(n);
  for (int i = 0; i < n; ++i) {
    out += std::string(" ") + list[i]->d_name;
    std::free(list[i]);
  }
  if (n >= 0) std::free(list);
  return n < 0 ? strerrorname_np(errno) : out;
}
std::string first_line(FILE* f) {
  if (!f) return strerrorname_np(errno);
  char line[256] = {};
  if (!std::fgets(line, sizeof line, f)) return "empty";
  line[std::strcspn(line, "\n")] = '\0';
  return line;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const char *file = argv[1], *dir = argv[2];
  rc("utime", utime(file, nullptr));
  rc("utimes", utimes(file, nullptr));
  rc("utimensat", utimensat(AT_FDCWD, file, nullptr, 0));
  rc("futimesat", futimesat(AT_FDCWD, file, nullptr));
  rc("chmod", chmod(file, 0644));
  rc("chown", chown(file, static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  struct dirent** list = nullptr;
  int n = scandir(dir, &list, all, alphasort);
  std::printf("scandir: %s\n", names(list, n).c_str());
  n = scandirat(AT_FDCWD, dir, &list, all, alphasort);
  std::printf("scandirat: %s\n", names(list, n).c_str());
  struct dirent64** list64 = nullptr;
  int n64 = scandir64(dir, &list64, nullptr, alphasort64);
  std::printf("scandir64: %d\n", n64);
  for (int i = 0; i < n64; ++i) std::free(list64[i]);
  if (n64 >= 0) std::free(list64);
  FILE* f = fopen64(file, "r");
  std::printf("fopen64: %s\n", first_line(f).c_str());
  if (f) std::fclose(f);
  for (int i = 0; i < 2; ++i) {
    FILE* g = std::fopen("/dev/null", "r");
    FILE* h = i == 0 ? freopen(file, "r", g) : freopen64(file, "r", g);
    std::printf("%s: %s\n", i == 0 ? "freopen" : "freopen64", first_line(h).c_str());
    if (h) std::fclose(h);
  }
  // The kernel's magic links of a descriptor: the same file, never what stands behind it.
  int fd = open(file, O_RDONLY), dfd = open(dir, O_RDONLY | O_DIRECTORY);
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  FILE* p = std::fopen(path, "r");
  std::printf("fopen /proc/self/fd/N: %s\n", first_line(p).c_str());
  if (p) std::fclose(p);
  std::snprintf(path, sizeof path, "/dev/fd/%d", fd);
  int again = open(path, O_RDONLY);
  char buf[16] = {};
  std::printf("open /dev/fd/N: %zd\n", again >= 0 ? read(again, buf, sizeof buf) : -1L);
  if (again >= 0) close(again);
  struct stat st {
  }, lst{};
  stat(path, &st);
  lstat(path, &lst);
  std::printf("stat /dev/fd/N: %s %lld, lstat: %s\n", S_ISREG(st.st_mode) ? "file" : "other",
              static_cast<long long>(st.st_size), S_ISLNK(lst.st_mode) ? "link" : "other");
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", dfd);
  n = scandir(path, &list, all, alphasort);
  std::printf("scandir /proc/self/fd/N: %s\n", names(list, n).c_str());
  close(fd);
  close(dfd);
  return 0;
}
