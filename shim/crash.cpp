#undef _FILE_OFFSET_BITS
// Crash reporting: a fatal signal whose stack runs through libossshim.so prints a backtrace naming
// the shim, then goes on to whatever handler the program installed (or the default action). The
// program's own sigaction/signal calls for these signals are recorded and chained rather than
// allowed to displace the reporter. Crashes elsewhere pass through silently, and a fault the
// program's handler deals with (a JVM's or V8's benign SEGV) leaves the reporter armed.
//
// The handler is async-signal-safe: everything it looks up (the shim's address range, its
// exported symbols) is recorded at start-up; it formats numbers itself, writes with the raw
// syscall, and walks the stack with libunwind's local unwinder (unw_init_local2/unw_step/
// unw_get_reg, documented signal-safe). libunwind comes with libossshim-net.so, so the reporter is
// armed when the file system is first used (a process that never touched the prefix has no shim
// frames to report) and reaches the unwinder through the net library's table.
#define UNW_LOCAL_ONLY
#include <elf.h>
#include <libunwind.h>
#include <link.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "cache/guard.hpp"
#include "net.hpp"
#include "real.hpp"

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kMaxSig = 65;
struct sigaction g_program[kMaxSig];  // what the program asked for (chained after the report)
std::atomic<bool> g_installed{false};
// The unwinder (libossshim-net.so's libunwind), set before the handler is installed.
int (*g_unw_init)(void*, void*, int) = nullptr;
int (*g_unw_get_reg)(void*, int, void*) = nullptr;
int (*g_unw_step)(void*) = nullptr;

// ---- what the handler knows about the shim, recorded at start-up ----------------------------
std::uintptr_t g_lo = 0, g_hi = 0;  // the shim's loaded segments
std::uintptr_t g_base = 0;          // its load address (offsets in the report are from here)
struct Symbol {
  std::uintptr_t addr, size;
  const char* name;  // in the shim's mapped .dynstr
};
constexpr int kMaxSymbols = 512;
Symbol g_symbols[kMaxSymbols];
int g_symbol_count = 0;

// The number of .dynsym entries, from DT_GNU_HASH (the one hash table Debian's linker writes).
std::uint32_t gnu_hash_symbols(const std::uint32_t* table) {
  std::uint32_t nbuckets = table[0], symoffset = table[1], bloom_size = table[2];
  const auto* buckets =
      reinterpret_cast<const std::uint32_t*>(reinterpret_cast<const ElfW(Addr)*>(table + 4) + bloom_size);
  const std::uint32_t* chain = buckets + nbuckets;
  std::uint32_t last = 0;
  for (std::uint32_t i = 0; i < nbuckets; ++i) last = buckets[i] > last ? buckets[i] : last;
  if (last < symoffset) return symoffset;
  while ((chain[last - symoffset] & 1) == 0) ++last;
  return last + 1;
}

// Records the defined functions of the shim's dynamic symbol table: its interposed entry points.
void record_symbols(const dl_phdr_info* info, const ElfW(Dyn) * dyn) {
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const std::uint32_t* gnu_hash = nullptr;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    if (dyn->d_tag == DT_SYMTAB) symtab = reinterpret_cast<const ElfW(Sym)*>(dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_STRTAB) strtab = reinterpret_cast<const char*>(dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_GNU_HASH) gnu_hash = reinterpret_cast<const std::uint32_t*>(dyn->d_un.d_ptr);
  }
  if (!symtab || !strtab || !gnu_hash) return;
  std::uint32_t count = gnu_hash_symbols(gnu_hash);
  for (std::uint32_t i = 0; i < count && g_symbol_count < kMaxSymbols; ++i) {
    const ElfW(Sym)& s = symtab[i];
    if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_shndx == SHN_UNDEF) continue;
    g_symbols[g_symbol_count++] = {info->dlpi_addr + s.st_value, s.st_size, strtab + s.st_name};
  }
}

int find_self(dl_phdr_info* info, size_t, void* self) {
  auto target = reinterpret_cast<std::uintptr_t>(self);
  std::uintptr_t lo = UINTPTR_MAX, hi = 0;
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    if (ph.p_type != PT_LOAD) continue;
    std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    lo = start < lo ? start : lo;
    hi = start + ph.p_memsz > hi ? start + ph.p_memsz : hi;
  }
  if (target < lo || target >= hi) return 0;
  g_lo = lo;
  g_hi = hi;
  g_base = info->dlpi_addr;
  if (dyn) record_symbols(info, dyn);
  return 1;
}

bool in_shim(unw_word_t ip) {
  return ip >= g_lo && ip < g_hi;
}

// The handler's own functions live in a section of their own: a frame there means this signal
// was raised while handling another (a chained handler re-raising), which is not reported again.
// No per-thread state: a program's handler may siglongjmp out of ours.
#define IN_HANDLER_SECTION __attribute__((section("ossshim_crash_handler"), noinline))
extern "C" const char __start_ossshim_crash_handler[], __stop_ossshim_crash_handler[];
bool in_handler(unw_word_t ip) {
  return ip >= reinterpret_cast<std::uintptr_t>(__start_ossshim_crash_handler) &&
         ip < reinterpret_cast<std::uintptr_t>(__stop_ossshim_crash_handler);
}

const Symbol* symbol_at(unw_word_t ip) {
  for (int i = 0; i < g_symbol_count; ++i)
    if (ip >= g_symbols[i].addr && ip < g_symbols[i].addr + g_symbols[i].size) return &g_symbols[i];
  return nullptr;
}

// ---- signal-safe output ----------------------------------------------------------------------
// One line is assembled in a fixed buffer, then written with the raw syscall (the interposed
// write may be what crashed).
struct Line {
  char buf[512];
  std::size_t len = 0;
  Line& text(const char* s) {
    while (*s && len < sizeof buf) buf[len++] = *s++;
    return *this;
  }
  Line& number(unsigned long v, unsigned base, int min_digits = 1) {
    char digits[32];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v != 0 && n < 32);
    while (n < min_digits && n < 32) digits[n++] = '0';
    while (n > 0 && len < sizeof buf) buf[len++] = digits[--n];
    return *this;
  }
  Line& hex(unsigned long v, int min_digits = 1) { return text("0x").number(v, 16, min_digits); }
  void emit() {
    for (std::size_t done = 0; done < len;) {
      long n = ::syscall(SYS_write, STDERR_FILENO, buf + done, len - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
  }
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGABRT:
      return "SIGABRT";
  }
  return "signal";
}

// Walks the interrupted stack; prints it if any frame is in the shim. Returns whether it did.
bool report(int sig, siginfo_t* info, void* context) {
  unw_cursor_t cursor;
  if (g_unw_init(&cursor, context, UNW_INIT_SIGNAL_FRAME) != 0) return false;
  unw_word_t ips[64];
  int n = 0;
  bool ours = false;
  do {
    unw_word_t ip;
    if (g_unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0) break;
    if (in_handler(ip)) return false;
    ips[n++] = ip;
    ours = ours || in_shim(ip);
  } while (n < 64 && g_unw_step(&cursor) > 0);
  if (!ours) return false;

  Line head;
  head.text("ossshim[")
      .number(static_cast<unsigned long>(::syscall(SYS_getpid)), 10)
      .text("]: fatal signal ");
  head.number(static_cast<unsigned long>(sig), 10)
      .text(" (")
      .text(signal_name(sig))
      .text(") inside libossshim.so, address ");
  head.hex(reinterpret_cast<unsigned long>(info ? info->si_addr : nullptr)).text("; backtrace:\n").emit();
  for (int i = 0; i < n; ++i) {
    Line frame;
    frame.text("  #").number(static_cast<unsigned long>(i), 10, 2).text(" ").hex(ips[i], 12);
    if (in_shim(ips[i])) {
      const Symbol* s = symbol_at(ips[i]);
      frame.text(" ").text(s ? s->name : "(internal)");
      if (s) frame.text("+").hex(ips[i] - s->addr);
      frame.text(" (libossshim.so+").hex(ips[i] - g_base).text(")  <-- ossshim");
    }
    frame.text("\n").emit();
  }
  Line tail;
  tail.text(
          "ossshim: please report this with the lines above (no secrets are printed; resolve offsets with "
          "addr2line -e libossshim.so)\n")
      .emit();
  return true;
}

// The default action of `sig`: uninstall ourselves; a fault re-executes and dies, a sent signal
// is sent again.
IN_HANDLER_SECTION void take_default_action(int sig, siginfo_t* info) {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  REAL(sigaction)(sig, &dfl, nullptr);
  if (info == nullptr || info->si_code <= 0 || sig == SIGABRT)
    ::syscall(SYS_tgkill, ::syscall(SYS_getpid), ::syscall(SYS_gettid), sig);
}

// Runs the program's handler as the kernel would have: with its sa_mask (and `sig` itself unless
// SA_NODEFER) blocked, and SA_RESETHAND turning the disposition back to the default first.
IN_HANDLER_SECTION void chain(int sig, siginfo_t* info, void* context) {
  struct sigaction next = g_program[sig];
  bool sent = info == nullptr || info->si_code <= 0;
  if (next.sa_handler == SIG_IGN && sent) return;
  if (next.sa_handler == SIG_DFL || next.sa_handler == SIG_IGN) return take_default_action(sig, info);
  if (next.sa_flags & SA_RESETHAND) {
    g_program[sig] = {};
    g_program[sig].sa_handler = SIG_DFL;
  }
  sigset_t mask = next.sa_mask, old;
  if (!(next.sa_flags & SA_NODEFER)) sigaddset(&mask, sig);
  pthread_sigmask(SIG_BLOCK, &mask, &old);
  if (next.sa_flags & SA_SIGINFO)
    next.sa_sigaction(sig, info, context);
  else
    next.sa_handler(sig);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

IN_HANDLER_SECTION void on_fatal(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  // The shared cache's control file truncated under us: the cache stops being used, the program
  // goes on (the access is retried on zero pages).
  if (sig == SIGBUS && info && info->si_code > 0 && ossshim::cache::rescue_fault(info->si_addr)) {
    errno = saved_errno;
    return;
  }
  report(sig, info, context);  // only when the interrupted stack runs through the shim
  chain(sig, info, context);
  errno = saved_errno;
}

bool watched(int sig) {
  if (!g_installed.load(std::memory_order_acquire)) return false;
  for (int s : kSignals)
    if (s == sig) return true;
  return false;
}

}  // namespace

void ossshim::shim::install_crash_reporter(const ossshim_net_api& api) {
  if (g_installed.load(std::memory_order_acquire)) return;
  dl_iterate_phdr(find_self, reinterpret_cast<void*>(&ossshim::shim::install_crash_reporter));
  if (g_hi == 0) return;
  g_unw_init = api.unw_init_local2;
  g_unw_get_reg = api.unw_get_reg;
  g_unw_step = api.unw_step;
  struct sigaction act = {};
  act.sa_sigaction = on_fatal;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  for (int s : kSignals) REAL(sigaction)(s, &act, &g_program[s]);
  g_installed.store(true, std::memory_order_release);
}

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
