// fork() from a busy process: threads keep reading (pread of a virtual file, checking every
// byte), mapping (mmap of it), writing (virtual files, each closed and so committed) and exec'ing
// (posix_spawn and fork+exec of /bin/true) while the main thread forks FORKS times. Each child
// reads the file through a descriptor of its own and one inherited from a busy reader, checks the
// bytes, maps it, sometimes writes a file of its own, and exits. A child that does not exit
// within 60 s is reported as hung (the shim's locks were not reset); at the end every object
// written is read back through the shim and compared byte for byte.
// Usage: fork_stress SRC SRC_SIZE OUTDIR FORKS. Content of SRC and of every object written is
// pattern(seed, i) (tests/shim/fork.sh generates SRC and checks the stored objects again).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

std::uint8_t pattern(std::uint64_t seed, std::uint64_t i) {
  return static_cast<std::uint8_t>((i * 7 + seed * 13 + (i >> 9)) & 0xff);
}
std::size_t written_size(int n) {
  return 50000 + static_cast<std::size_t>(n) * 7919 % 200000;
}

const char* g_src;
std::uint64_t g_size;
std::string g_out;
std::atomic<bool> g_stop{false};
std::atomic<long> g_reads{0}, g_maps{0}, g_execs{0}, g_corrupt{0}, g_errors{0};
std::mutex g_written_mu;
// Seeds of objects stored by the writer thread; never destroyed (a child's exit must not free a
// vector the writer thread may have been growing when it forked).
auto* g_written = new std::vector<int>;

void error(const char* what) {
  if (g_errors.fetch_add(1) < 10) std::fprintf(stderr, "fork_stress: %s: %s\n", what, std::strerror(errno));
}

// Number of bytes of buf (read at `off` of SRC) that differ from the pattern.
long differing(const unsigned char* buf, std::size_t n, std::uint64_t off) {
  long bad = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (buf[i] != pattern(1, off + i)) ++bad;
  return bad;
}

std::uint64_t next_random(std::uint64_t& state) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 17;
}

void reader(int fd, unsigned seed) {
  std::vector<unsigned char> buf(65536);
  std::uint64_t rnd = seed;
  while (!g_stop.load()) {
    std::uint64_t off = next_random(rnd) % g_size;
    std::size_t len = 4096 + next_random(rnd) % (buf.size() - 4096);
    ssize_t n = pread(fd, buf.data(), len, static_cast<off_t>(off));
    if (n < 0) {
      error("pread in a reader thread");
      continue;
    }
    if (static_cast<std::uint64_t>(n) != std::min<std::uint64_t>(len, g_size - off)) error("short pread");
    if (differing(buf.data(), static_cast<std::size_t>(n), off)) g_corrupt.fetch_add(1);
    g_reads.fetch_add(1);
  }
}

void mapper() {
  while (!g_stop.load()) {
    int fd = open(g_src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error("open in the mapper thread");
      continue;
    }
    void* m = mmap(nullptr, g_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
      error("mmap");
      continue;
    }
    auto* p = static_cast<const unsigned char*>(m);
    for (std::uint64_t off = 0; off < g_size; off += 65536)
      if (differing(p + off, std::min<std::uint64_t>(4096, g_size - off), off)) g_corrupt.fetch_add(1);
    munmap(m, g_size);
    g_maps.fetch_add(1);
  }
}

// Writes object `seed` under OUTDIR with `prefix`; true when every call succeeded.
bool write_object(const char* prefix, int seed) {
  std::string path = g_out + "/" + prefix + std::to_string(seed);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::vector<unsigned char> data(written_size(seed));
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern(static_cast<std::uint64_t>(seed), i);
  bool ok = true;
  for (std::size_t done = 0; ok && done < data.size();) {
    std::size_t piece = std::min<std::size_t>(16384, data.size() - done);
    ssize_t n = write(fd, data.data() + done, piece);
    if (n <= 0) ok = false;
    done += n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  return close(fd) == 0 && ok;
}

void writer() {
  for (int seed = 1; !g_stop.load(); ++seed) {
    if (!write_object("w-", seed)) {
      error("writing an object in the writer thread");
      continue;
    }
    std::lock_guard lock(g_written_mu);
    g_written->push_back(seed);
  }
}

void execer() {
  char true_path[] = "/bin/true";
  char* argv[] = {true_path, nullptr};
  for (long i = 0; !g_stop.load(); ++i) {
    pid_t pid = -1;
    if (i % 2 == 0) {
      if (posix_spawn(&pid, true_path, nullptr, nullptr, argv, environ) != 0) pid = -1;
    } else {
      pid = fork();
      if (pid == 0) {
        execv(true_path, argv);
        _exit(127);
      }
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      error(i % 2 == 0 ? "posix_spawn /bin/true" : "fork+exec /bin/true");
      continue;
    }
    g_execs.fetch_add(1);
  }
}

// The forked child's work: reads through a fresh and an inherited descriptor, a mapping, and
// every fourth child a file of its own. Exit status: 0 fine, 1 a call failed, 2 wrong bytes.
int child_work(int round, int inherited_fd) {
  std::vector<unsigned char> buf(100000);
  std::uint64_t off = static_cast<std::uint64_t>(round) * 40503 % g_size;
  std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), g_size - off));
  int fd = open(g_src, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  if (pread(fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) return 1;
  if (differing(buf.data(), len, off)) return 2;
  if (pread(inherited_fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) return 1;
  if (differing(buf.data(), len, off)) return 2;
  void* m = mmap(nullptr, g_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) return 1;
  if (differing(static_cast<unsigned char*>(m) + off, len, off)) return 2;
  munmap(m, g_size);
  if (close(fd) != 0) return 1;
  if (round % 4 == 0 && !write_object("c-", round)) return 1;
  return 0;
}

// Waits up to 60 s for child `pid`; its exit status, or -1 (reported) when it hung or died.
int wait_child(pid_t pid, int round) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    struct pollfd p {
      pidfd, POLLIN, 0
    };
    int r;
    do r = poll(&p, 1, 60000);
    while (r < 0 && errno == EINTR);
    close(pidfd);
    if (r == 0) {
      std::fprintf(stderr,
                   "fork_stress: child %d (fork %d) did not exit within 60 s: it hangs after fork "
                   "(a lock of the shim held by another thread at fork time); killed\n",
                   pid, round);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return -1;
    }
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  std::fprintf(stderr, "fork_stress: child %d (fork %d) died of signal %d\n", pid, round,
               WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return -1;
}

// Reads object `name` back through the shim; true when it holds exactly pattern(seed).
bool object_matches(const std::string& name, int seed) {
  int fd = open((g_out + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<unsigned char> want(written_size(seed)), got(want.size() + 1);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = pattern(static_cast<std::uint64_t>(seed), i);
  std::size_t have = 0;
  for (ssize_t n; have < got.size() && (n = read(fd, got.data() + have, got.size() - have)) > 0;)
    have += static_cast<std::size_t>(n);
  close(fd);
  return have == want.size() && std::memcmp(got.data(), want.data(), have) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: fork_stress SRC SRC_SIZE OUTDIR FORKS\n");
    return 2;
  }
  g_src = argv[1];
  g_size = std::strtoull(argv[2], nullptr, 10);
  g_out = argv[3];
  int forks = std::atoi(argv[4]);
  int shared_fd = open(g_src, O_RDONLY);  // read by two threads, inherited by every child
  if (shared_fd < 0) {
    std::perror("fork_stress: open SRC");
    return 1;
  }
  std::vector<std::thread> threads;
  threads.emplace_back(reader, shared_fd, 1u);
  threads.emplace_back(reader, shared_fd, 2u);
  threads.emplace_back(mapper);
  threads.emplace_back(writer);
  threads.emplace_back(execer);
  // Every thread busy before the first fork: each has done its work at least once.
  auto written = [] {
    std::lock_guard lock(g_written_mu);
    return g_written->size();
  };
  while (g_errors.load() == 0 &&
         (g_reads.load() < 2 || g_maps.load() == 0 || g_execs.load() == 0 || written() == 0))
    std::this_thread::yield();
  int failed_children = 0, child_corrupt = 0;
  std::vector<bool> child_ok(static_cast<std::size_t>(forks), false);
  for (int round = 0; round < forks; ++round) {
    pid_t pid = fork();
    if (pid < 0) {
      error("fork");
      break;
    }
    if (pid == 0) std::exit(child_work(round, shared_fd));
    int status = wait_child(pid, round);
    child_ok[static_cast<std::size_t>(round)] = status == 0;
    if (status == 2) ++child_corrupt;
    if (status != 0) {
      if (++failed_children <= 10 && status != -1)
        std::fprintf(stderr, "fork_stress: child of fork %d exited %d\n", round, status);
    }
  }
  g_stop = true;
  for (auto& t : threads) t.join();
  close(shared_fd);
  // Every object whose writer saw success (the writer thread's, the children that exited 0) read
  // back through the shim: a difference is a silent corruption.
  long wrong_objects = 0, objects = 0;
  for (int seed : *g_written) objects++, wrong_objects += !object_matches("w-" + std::to_string(seed), seed);
  for (int round = 0; round < forks; round += 4)
    if (child_ok[static_cast<std::size_t>(round)])
      objects++, wrong_objects += !object_matches("c-" + std::to_string(round), round);
  long corrupt = g_corrupt.load() + child_corrupt + wrong_objects;
  std::printf(
      "fork_stress: %d forks, %d children failed; %ld reads, %ld maps, %zu objects by the writer, %ld execs; "
      "%ld objects checked, %ld wrong; %ld errors; %ld silent corruptions\n",
      forks, failed_children, g_reads.load(), g_maps.load(), g_written->size(), g_execs.load(), objects,
      wrong_objects, g_errors.load(), corrupt);
  return failed_children == 0 && corrupt == 0 && g_errors.load() == 0 ? 0 : 1;
}
