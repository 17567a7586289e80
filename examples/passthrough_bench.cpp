// Pass-through overhead: a local-file-heavy workload (stat, then open/read/close, of many small
// local files) timed without and with libossshim.so preloaded, in one run, and with EMPTY_LIB (an
// empty shared library: what any preload costs) when given. Prints the rates and the ratios. The
// shim's promise: a call that is not for the prefix costs one compare.
//   passthrough_bench [LIBOSSSHIM] [FILES] [ROUNDS] [EMPTY_LIB]
// (tools/bench/passthrough_cost.py --workload builds the empty library and passes it.)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

double workload(const std::string& dir, int files, int rounds) {
  char buf[4096];
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r)
    for (int i = 0; i < files; ++i) {
      std::string p = dir + "/f" + std::to_string(i);
      struct stat st;
      if (stat(p.c_str(), &st) != 0) std::abort();
      int fd = open(p.c_str(), O_RDONLY);
      if (fd < 0 || read(fd, buf, sizeof buf) <= 0) std::abort();
      close(fd);
    }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) {  // --child DIR FILES ROUNDS
    double s = workload(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
    std::printf("%.6f\n", s);
    return 0;
  }
  std::string lib = argc > 1 ? argv[1] : "build/shim/libossshim.so";
  int files = argc > 2 ? std::atoi(argv[2]) : 2000;
  int rounds = argc > 3 ? std::atoi(argv[3]) : 20;
  std::string empty = argc > 4 ? argv[4] : "";
  char tmpl[] = "/tmp/ossshim-passthrough-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  for (int i = 0; i < files; ++i) {
    std::string p = dir + "/f" + std::to_string(i);
    int fd = open(p.c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || write(fd, "0123456789abcdef", 16) != 16) return 1;
    close(fd);
  }
  auto run = [&](const std::string& preload) {
    int pipefd[2];
    if (pipe(pipefd) != 0) std::exit(1);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(pipefd[1], 1);
      if (!preload.empty())
        setenv("LD_PRELOAD", preload.c_str(), 1);
      else
        unsetenv("LD_PRELOAD");
      // The shim needs no endpoint for pass-through calls; give it one so nothing complains.
      setenv("OSSSHIM_ENDPOINT", "http://127.0.0.1:9", 0);
      std::string f = std::to_string(files), r = std::to_string(rounds);
      execl("/proc/self/exe", argv[0], "--child", dir.c_str(), f.c_str(), r.c_str(), nullptr);
      _exit(127);
    }
    close(pipefd[1]);
    char out[64] = {};
    ssize_t n = read(pipefd[0], out, sizeof out - 1);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "passthrough_bench: child failed\n");
      std::exit(1);
    }
    return std::atof(out);
  };
  long ops = static_cast<long>(files) * rounds;
  run("");  // warm the page cache and dentries
  double best_plain = 1e9, best_empty = 1e9, best_shim = 1e9;
  for (int k = 0; k < 3; ++k) {  // alternate, keep the best of three of each
    best_plain = std::min(best_plain, run(""));
    if (!empty.empty()) best_empty = std::min(best_empty, run(empty));
    best_shim = std::min(best_shim, run(lib));
  }
  std::printf("workload: %d local files x %d rounds of stat + open + read + close (%ld each)\n", files,
              rounds, ops);
  std::printf("without shim:  %.3f s  %.2f us per file\n", best_plain, best_plain / ops * 1e6);
  if (!empty.empty())
    std::printf("empty preload: %.3f s  %.2f us per file\n", best_empty, best_empty / ops * 1e6);
  std::printf("with shim:     %.3f s  %.2f us per file\n", best_shim, best_shim / ops * 1e6);
  std::printf("ratio (with / without): %.3f\n", best_shim / best_plain);
  if (!empty.empty()) std::printf("ratio (with / empty preload): %.3f\n", best_shim / best_empty);
  std::string cleanup = "rm -rf " + dir;
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
