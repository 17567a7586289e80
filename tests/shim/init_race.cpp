// First calls into the shim from many threads at once (racing its lazy initialisation), then a
// read from an atexit handler and from a static destructor (during exit). Prints one summary
// line per phase; the test compares it with the same run on the local copy.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

static const char* g_path;

static std::string read_all(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return "open failed";
  std::string s;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
  close(fd);
  return s;
}

struct AtStaticDestruction {
  ~AtStaticDestruction() { std::printf("static destructor: %zu bytes\n", read_all(g_path).size()); }
} g_late;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  g_path = argv[1];
  std::atomic<bool> go{false};
  std::vector<std::string> got(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) {
      }
      got[i] = read_all(g_path);
    });
  go = true;
  for (auto& t : threads) t.join();
  int same = 0;
  for (auto& g : got) same += g == got[0];
  std::printf("16 racing threads: %d agree, %zu bytes\n", same, got[0].size());
  std::atexit([] { std::printf("atexit: %zu bytes\n", read_all(g_path).size()); });
  return 0;
}
