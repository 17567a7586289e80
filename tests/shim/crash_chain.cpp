// The crash reporter chains to the program's SIGSEGV handler as the kernel would run it, and
// stays armed after faults the program handles itself (as a JVM's safepoint polls do).
//   crash_chain benign PATH: three faults outside the shim, each repaired by the handler (which
//     checks its sa_mask is in force), then a fault inside the shim (stat with a bad buffer):
//     the handler sees it after the shim's report and exits 42.
//   crash_chain resethand: an SA_RESETHAND handler runs once; the second fault kills (SIGSEGV).
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace {
char* g_page = nullptr;
std::atomic<int> g_faults{0}, g_masked{0};  // lock-free: usable in the handler
bool g_expect_shim = false;

void on_segv(int, siginfo_t* info, void*) {
  ++g_faults;
  sigset_t now;
  pthread_sigmask(SIG_SETMASK, nullptr, &now);
  if (sigismember(&now, SIGUSR1) && sigismember(&now, SIGSEGV)) ++g_masked;
  if (g_expect_shim) {
    const char msg[] = "crash_chain: the program's handler ran after the shim's fault\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(42);
  }
  // Repair the benign fault: the instruction runs again and succeeds.
  if (static_cast<char*>(info->si_addr) == g_page) mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
}

void install(int extra_flags) {
  struct sigaction act = {};
  act.sa_sigaction = on_segv;
  act.sa_flags = SA_SIGINFO | extra_flags;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, SIGUSR1);
  sigaction(SIGSEGV, &act, nullptr);
}

void benign_fault() {
  mprotect(g_page, 4096, PROT_NONE);
  *reinterpret_cast<volatile char*>(g_page) = 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  g_page = static_cast<char*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (std::strcmp(argv[1], "benign") == 0 && argc == 3) {
    install(0);
    for (int i = 0; i < 3; ++i) benign_fault();
    std::printf("crash_chain: %d benign faults handled, mask in force in %d\n", g_faults.load(),
                g_masked.load());
    std::fflush(stdout);
    g_expect_shim = true;
    stat(argv[2], reinterpret_cast<struct stat*>(8));  // faults inside the shim
    return 1;
  }
  if (std::strcmp(argv[1], "resethand") == 0) {
    install(SA_RESETHAND);
    benign_fault();
    std::printf("crash_chain: first fault handled\n");
    std::fflush(stdout);
    benign_fault();  // the default action now: SIGSEGV
    return 1;
  }
  return 2;
}
