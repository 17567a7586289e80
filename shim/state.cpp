#undef _FILE_OFFSET_BITS
#include "state.hpp"

#include "guard.hpp"
#include "net.hpp"
#include "shim.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "auth/credentials.hpp"
#include "config/config.hpp"
#include "log/log.hpp"

namespace ossshim::shim {

namespace {
// Constant-initialised: usable by calls that arrive before any constructor has run. Never
// destroyed: threads and atexit handlers may use it while the process exits, and a destructor
// would walk its 1 MB descriptor table at every program's exit.
union Immortal {
  Globals value;
  constexpr Immortal() : value() {}
  ~Immortal() {}
};
constinit Immortal g_immortal;
Globals& g_globals = g_immortal.value;

std::once_flag g_init_once;
vfs::Vfs* g_vfs = nullptr;

void init_filesystem() {
  OwnCall own;  // configuration files, the log file, the cache: the shim's own calls pass through
  auto config = load_config(process_env());
  if (!config) {
    log::error(config.error().to_string() + " -- paths under " + std::string(g_globals.prefix) +
               " will fail with EIO");
    return;
  }
  std::string why;
  if (!log::configure(config->log_level, config->log_file, &why)) log::warn(why);
  // libcurl, OpenSSL, ISA-L and libunwind: loaded now, the first time the prefix is used.
  const ossshim_net_api* net = load_net(&why);
  if (!net) {
    log::error(why + " -- paths under " + config->prefix + " will fail with EIO");
    return;
  }
  install_crash_reporter(*net);
  auto creds = auth::credentials_from_env(config->signature, process_env());
  if (!creds) {
    log::error(creds.error().to_string() + " -- paths under " + config->prefix + " will fail with EIO");
    return;
  }
  auto fs = vfs::Vfs::create(config.value(), creds->creds);
  if (!fs) {
    log::error(fs.error().to_string());
    return;
  }
  g_vfs = fs.value().release();  // lives until exit: threads of any kind may still use it
  // At exit: stdio buffers reach their files first (glibc flushes only after atexit handlers),
  // then files still open for writing are committed and the shared cache is left.
  std::atexit([] { leave_at_exit(true); });
  log::info("ossshim: " + config->prefix + " -> " + config->endpoint + " (credentials from " + creds->source +
            ")");
}

void after_fork_in_child() {
  g_globals.pid = static_cast<pid_t>(syscall(SYS_getpid));
  if (!g_vfs) return;
  // The child inherits the parent's mappings: it pins them in its own name.
  auto pins = mapping_pins();
  g_vfs->after_fork_child(pins);
  set_mapping_pins(pins);
}

__attribute__((constructor)) void shim_constructor() {
  if (const char* p = std::getenv("OSSSHIM_PREFIX");
      p && p[0] == '/' && std::strlen(p) < sizeof g_globals.prefix) {
    std::size_t n = std::strlen(p);
    while (n > 1 && p[n - 1] == '/') --n;
    std::memcpy(g_globals.prefix, p, n);
    g_globals.prefix[n] = '\0';
    g_globals.prefix_len = n;
  }
  g_globals.pid = static_cast<pid_t>(syscall(SYS_getpid));
  // libuv 1.45 and later submit file operations to io_uring, which the shim cannot see (on a
  // virtual fd they fail with EBADF): unless the user chose, they go through libc (syscall.cpp).
  setenv("UV_USE_IO_URING", "0", 0);
  pthread_atfork(nullptr, nullptr, &after_fork_in_child);
  restore_virtual_cwd();
  adopt_inherited_fds();
  adopt_std_streams();
}
}  // namespace

Globals& globals() {
  return g_globals;
}

std::shared_ptr<vfs::OpenFile> lookup_file(int fd) {
  bool listed = fd >= 0 && fd < kMaxFds && g_globals.fd_kind[fd].load(std::memory_order_acquire) == kVirtual;
  auto f = listed ? g_globals.fd_file[fd].load(std::memory_order_acquire) : nullptr;
  if (!f) errno = EBADF;
  return f;
}

vfs::Vfs* filesystem() {
  std::call_once(g_init_once, init_filesystem);
  if (!g_vfs) errno = EIO;
  return g_vfs;
}

void leave_at_exit(bool flush_stdio) {
  static std::atomic<bool> left{false};
  if (!g_vfs || in_vfork_child() || left.exchange(true)) return;
  sinks_at_exit(flush_stdio);  // redirected stdout/stderr are committed
  g_vfs->detach();             // then files still open for writing; the shared cache is left
}

bool in_vfork_child() {
  return static_cast<pid_t>(syscall(SYS_getpid)) != g_globals.pid;
}

}  // namespace ossshim::shim
