#undef _FILE_OFFSET_BITS
// Crash reporting: a fatal signal whose stack runs through libossshim.so prints a libunwind
// backtrace naming the shim, then goes on to whatever handler the program installed (or the
// default action). The program's own sigaction/signal calls for these signals are recorded and
// chained rather than allowed to displace the reporter. Crashes elsewhere pass through silently.
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "real.hpp"

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kMaxSig = 65;
struct sigaction g_program[kMaxSig];  // what the program asked for (chained after the report)
std::atomic<bool> g_installed{false};
const void* g_self_base = nullptr;  // load address of libossshim.so

bool watched(int sig) {
  if (!g_installed.load(std::memory_order_acquire)) return false;
  for (int s : kSignals)
    if (s == sig) return true;
  return false;
}

bool in_shim(unw_word_t ip) {
  Dl_info info;
  return dladdr(reinterpret_cast<void*>(ip), &info) != 0 && info.dli_fbase == g_self_base;
}

void say(const char* text) {
  ssize_t ignored = write(2, text, strlen(text));
  (void)ignored;
}

// Walks the interrupted stack; prints it if any frame is in the shim. Returns whether it did.
bool report(int sig, siginfo_t* info, void* context) {
  unw_cursor_t cursor;
  if (unw_init_local2(&cursor, static_cast<unw_context_t*>(context), UNW_INIT_SIGNAL_FRAME) != 0)
    return false;
  unw_word_t ips[64];
  int n = 0;
  bool ours = false;
  do {
    unw_word_t ip;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0) break;
    ips[n++] = ip;
    ours = ours || in_shim(ip);
  } while (n < 64 && unw_step(&cursor) > 0);
  if (!ours) return false;

  char line[512];
  snprintf(line, sizeof line,
           "ossshim[%d]: fatal signal %d (%s) inside libossshim.so, address %p; backtrace:\n",
           static_cast<int>(getpid()), sig, strsignal(sig), info ? info->si_addr : nullptr);
  say(line);
  unw_init_local2(&cursor, static_cast<unw_context_t*>(context), UNW_INIT_SIGNAL_FRAME);
  for (int i = 0; i < n; ++i) {
    char name[256] = "??";
    unw_word_t off = 0;
    unw_get_proc_name(&cursor, name, sizeof name, &off);
    Dl_info dl;
    const char* object = dladdr(reinterpret_cast<void*>(ips[i]), &dl) && dl.dli_fname ? dl.dli_fname : "?";
    snprintf(line, sizeof line, "  #%-2d 0x%012lx %s+0x%lx (%s)%s\n", i, static_cast<unsigned long>(ips[i]),
             name, static_cast<unsigned long>(off), object, in_shim(ips[i]) ? "  <-- ossshim" : "");
    say(line);
    if (unw_step(&cursor) <= 0) break;
  }
  say("ossshim: please report this with the lines above (no secrets are printed)\n");
  return true;
}

std::atomic<bool> g_reported{false};

void on_fatal(int sig, siginfo_t* info, void* context) {
  // Once: a chained handler that re-raises brings us back here.
  if (!g_reported.exchange(true)) report(sig, info, context);
  const struct sigaction& next = g_program[sig];
  if (next.sa_flags & SA_SIGINFO) {
    next.sa_sigaction(sig, info, context);
    return;
  }
  if (next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN) {
    next.sa_handler(sig);
    return;
  }
  // Default action: uninstall ourselves; a fault re-executes and dies, a sent signal is re-sent.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  REAL(sigaction)(sig, &dfl, nullptr);
  if (info == nullptr || info->si_code <= 0 || sig == SIGABRT) raise(sig);
}

__attribute__((constructor)) void install_crash_reporter() {
  Dl_info self;
  if (!dladdr(reinterpret_cast<void*>(&install_crash_reporter), &self)) return;
  g_self_base = self.dli_fbase;
  struct sigaction act = {};
  act.sa_sigaction = on_fatal;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  for (int s : kSignals) REAL(sigaction)(s, &act, &g_program[s]);
  g_installed.store(true, std::memory_order_release);
}

}  // namespace

extern "C" {

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!watched(sig)) return REAL(sigaction)(sig, act, old);
  // The program sees and sets its own handler; ours stays in front of it.
  struct sigaction previous = g_program[sig];
  if (act) g_program[sig] = *act;
  if (old) *old = previous;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  if (!watched(sig)) return REAL(signal)(sig, handler);
  sighandler_t previous = (g_program[sig].sa_flags & SA_SIGINFO) ? nullptr : g_program[sig].sa_handler;
  struct sigaction act = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  g_program[sig] = act;
  return previous;
}

}  // extern "C"
