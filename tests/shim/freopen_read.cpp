// freopen onto a file, for the differential test: stdin redirected and read with getchar, fgets,
// scanf, fread and std::cin; a child reading the same stdin through exec, a forked child that
// must not keep stdin open; a stream from fopen reopened onto another file, onto a local file and
// onto itself (freopen(NULL)). Prints what it read; run on the prefix and on a copy.
//   freopen_read read TEXT BINARY LOCAL   everything above
//   freopen_read open PATH MODE           freopen(PATH, MODE, stdin): "opened" or the error
//   freopen_read seek PATH                fseek on the reopened stdin
//   freopen_read all PATH                 reads the reopened stdin to the end: bytes, end or error
//   freopen_read atexit PATH              reads most of the reopened stdin in an atexit handler
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

static unsigned long checksum(const std::string& s) {
  unsigned long h = 1469598103934665603ul;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ul;
  return h;
}

static std::string read_rest(FILE* f) {
  std::string all;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, n);
  return all;
}

static bool reopen(const char* path, const char* mode, FILE* f) {
  if (std::freopen(path, mode, f) == f) return true;
  std::printf("freopen %s: %s\n", path, std::strerror(errno));
  return false;
}

static int read_all(const char* text, const char* binary, const char* local) {
  // stdio on the reopened stdin: same FILE, same fd number.
  if (!reopen(text, "r", stdin)) return 1;
  int c = std::getchar();
  char line[256] = "", word[64] = "";
  if (!std::fgets(line, sizeof line, stdin) || std::scanf("%63s", word) != 1) return 1;
  std::string rest = read_rest(stdin);
  std::printf("stdio: fd %d, first '%c', line %s", fileno(stdin), c, line);
  std::printf("stdio: word '%s', then %zu bytes, %lu, eof %d, error %d\n", word, rest.size(), checksum(rest),
              std::feof(stdin), std::ferror(stdin));

  // std::cin reads glibc's stdin object (sync_with_stdio).
  if (freopen64(text, "r", stdin) != stdin) return 1;
  std::cin.clear();
  std::string first, s, lines;
  int number = 0, count = 0;
  std::cin >> first >> number;
  while (std::getline(std::cin, s)) {
    lines += s + "\n";
    ++count;
  }
  std::cout << "cin: '" << first << "' " << number << ", then " << count << " lines, " << checksum(lines)
            << std::endl;

  // A forked child keeps running while the parent reads stdin to the end: its copy of the
  // descriptors must not hold stdin open. alarm: a hang fails instead of blocking the suite.
  if (!reopen(binary, "rb", stdin)) return 1;
  int gate[2];
  if (pipe(gate) != 0) return 1;
  pid_t child = fork();
  if (child == 0) {
    close(gate[1]);
    char b;
    while (read(gate[0], &b, 1) > 0) {
    }
    _exit(0);
  }
  close(gate[0]);
  alarm(60);
  std::string bin = read_rest(stdin);
  alarm(0);
  close(gate[1]);
  waitpid(child, nullptr, 0);
  std::printf("fork: %zu bytes, %lu, error %d\n", bin.size(), checksum(bin), std::ferror(stdin));

  // An exec'd child reads the redirected stdin (as `cmd < file` would give it).
  if (!reopen(text, "r", stdin)) return 1;
  std::fflush(stdout);
  if (std::system("head -c 3000 | sha256sum") != 0) return 1;
  std::printf("exec: the parent then reads the rest %d\n", !read_rest(stdin).empty());

  // A stream opened on one file, reopened onto another.
  FILE* f = std::fopen(binary, "rb");
  if (!f || std::fread(line, 1, 100, f) != 100) return 1;
  if (!reopen(text, "r", f)) return 1;
  std::string other = read_rest(f);
  std::printf("fopen then freopen: %zu bytes, %lu, fileno valid %d\n", other.size(), checksum(other),
              fileno(f) >= 0);
  std::fclose(f);

  // ... onto a local file: the descriptor is the local file's, for stdio and for read/fstat.
  f = std::fopen(text, "r");
  if (!f || std::fgetc(f) == EOF) return 1;
  if (!reopen(local, "r", f)) return 1;
  std::string loc = read_rest(f);
  struct stat st;
  char head[16] = "";
  bool fd_ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
               st.st_size == static_cast<off_t>(loc.size()) && lseek(fileno(f), 0, SEEK_SET) == 0 &&
               read(fileno(f), head, 10) == 10 && loc.compare(0, 10, head) == 0;
  std::printf("freopen to local: %zu bytes, %lu, fd is the local file %d\n", loc.size(), checksum(loc),
              fd_ok);
  std::fclose(f);

  // ... onto itself: freopen(NULL) reopens the same file from the start.
  f = std::fopen(text, "r");
  if (!f || !std::fgets(line, sizeof line, f)) return 1;
  if (!reopen(nullptr, "rb", f)) return 1;
  std::string again = read_rest(f);
  std::printf("freopen(NULL): %zu bytes, %lu\n", again.size(), checksum(again));
  std::fclose(f);
  return 0;
}

// Registered before the freopen (so it runs after the shim's own exit handler).
static void read_at_exit() {
  std::string rest = read_rest(stdin);
  std::printf("at exit: %zu bytes, %lu, error %d\n", rest.size(), checksum(rest), std::ferror(stdin));
}

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "read" && argc == 5) return read_all(argv[2], argv[3], argv[4]);
  if (cmd == "open" && argc == 4) {
    if (std::freopen(argv[2], argv[3], stdin) == stdin) {
      std::printf("opened: fd %d\n", fileno(stdin));
    } else {
      int err = errno;
      // glibc leaves the stream closed: no descriptor, reads fail.
      std::printf("NULL: %s; fd 0 open %d, getchar EOF %d\n", std::strerror(err), fcntl(0, F_GETFD) >= 0,
                  std::getchar() == EOF);
    }
    return 0;
  }
  if (cmd == "seek" && argc == 3) {
    if (!reopen(argv[2], "r", stdin)) return 1;
    std::getchar();
    int r = std::fseek(stdin, 5, SEEK_SET);
    std::printf("fseek: %s\n", r == 0 ? "ok" : std::strerror(errno));
    return 0;
  }
  if (cmd == "all" && argc == 3) {
    if (!reopen(argv[2], "r", stdin)) return 1;
    errno = 0;
    std::string all = read_rest(stdin);
    if (std::ferror(stdin))
      std::printf("read error after %zu bytes: %s\n", all.size(), std::strerror(errno));
    else
      std::printf("end of file after %zu bytes\n", all.size());
    return 0;
  }
  if (cmd == "atexit" && argc == 3) {
    std::atexit(read_at_exit);
    if (!reopen(argv[2], "rb", stdin)) return 1;
    char head[100];
    std::printf("before exit: %zu bytes\n", std::fread(head, 1, sizeof head, stdin));
    return 0;
  }
  std::fprintf(
      stderr,
      "usage: freopen_read read TEXT BINARY LOCAL | open PATH MODE | seek PATH | all PATH | atexit PATH\n");
  return 2;
}
