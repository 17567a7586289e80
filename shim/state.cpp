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
#include "util/forksafe.hpp"

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

// Start-up of the file system, once. Not a std::once_flag: a child forked while another thread
// was initialising would wait for ever on the flag; fork takes this mutex first instead (it is
// outside the forksafe registry because initialising registers locks there).
constinit std::mutex g_init_mu;
std::atomic<bool> g_init_done{false};
constinit thread_local bool t_initialising = false;
vfs::Vfs* g_vfs = nullptr;

// The fd table's fork gate (see exchange_file): how many threads are inside an access, and
// whether a fork is waiting for them to leave (then no new access starts).
std::atomic<int> g_fd_users{0};
std::atomic<int> g_fd_gate_closed{0};

class FdTableAccess {
 public:
  FdTableAccess() {
    for (;;) {
      g_fd_users.fetch_add(1);
      if (!g_fd_gate_closed.load()) return;
      leave();
      g_fd_gate_closed.wait(1);
    }
  }
  ~FdTableAccess() { leave(); }
  FdTableAccess(const FdTableAccess&) = delete;
  FdTableAccess& operator=(const FdTableAccess&) = delete;

 private:
  static void leave() {
    if (g_fd_users.fetch_sub(1) == 1 && g_fd_gate_closed.load()) g_fd_users.notify_all();
  }
};

void close_fd_gate(void*) {
  g_fd_gate_closed.store(1);
  for (int n = g_fd_users.load(); n != 0; n = g_fd_users.load()) g_fd_users.wait(n);
}
void open_fd_gate_in_parent(void*) {
  g_fd_gate_closed.store(0);
  g_fd_gate_closed.notify_all();
}
void open_fd_gate_in_child(void*) {
  g_fd_users.store(0);  // the waiting threads are the parent's
  g_fd_gate_closed.store(0);
}

// A default for a variable of the environment, without allocating: setenv would (glibc's environ
// array), and the first malloc of a program that never allocates (/bin/true) costs three system
// calls (tcache's getrandom, two brk). Instead environ points to a static copy with the entry
// added, which glibc's setenv/putenv/unsetenv handle like any program-provided environ (a later
// addition copies it to the heap). Only at start-up, single-threaded; a huge environment falls
// back to setenv.
constexpr std::size_t kEnvSlots = 1024;
constinit char* g_env[kEnvSlots] = {};
char g_uv_io_uring[] = "UV_USE_IO_URING=0";

void default_env(char* entry) {
  const char* eq = std::strchr(entry, '=');
  std::size_t name_len = static_cast<std::size_t>(eq - entry);
  std::size_t n = 0;
  for (; environ && environ[n]; ++n)
    if (std::strncmp(environ[n], entry, name_len) == 0 && environ[n][name_len] == '=') return;  // the user's
  if (n + 2 > kEnvSlots) {
    std::string name(entry, name_len);
    setenv(name.c_str(), eq + 1, 0);
    return;
  }
  if (n) std::memcpy(g_env, environ, n * sizeof *g_env);
  g_env[n] = entry;
  g_env[n + 1] = nullptr;
  environ = g_env;
}

void init_filesystem() {
  OwnCall own;  // configuration files, the log file, the cache: the shim's own calls pass through
  auto config = load_config(process_env());
  if (!config) {
    log::error(config.error().to_string() + " -- paths under " + std::string(g_globals.prefix) +
               " will fail with EIO");
    return;
  }
  std::string why;
  if (!log::configure(config->log_level, config->log_file, &why, config->log_file_size)) log::warn(why);
  for (const auto& w : unknown_settings(environ)) log::warn(w);
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

// Around fork: start-up first (a child must not inherit it half done), then every registered lock
// in rank order (forksafe.hpp). Released in reverse in parent and child.
void before_fork() {
  g_init_mu.lock();
  forksafe::prepare();
}

void after_fork_in_parent() {
  forksafe::parent();
  g_init_mu.unlock();
}

void after_fork_in_child() {
  g_globals.pid = static_cast<pid_t>(syscall(SYS_getpid));  // first: close() tells vfork children by it
  forksafe::child();
  g_init_mu.unlock();
  if (g_globals.cwd_checked.load() == 1) g_globals.cwd_checked.store(0);  // the parent's thread was looking
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
  default_env(g_uv_io_uring);
  forksafe::add(forksafe::Rank::fd_table,
                forksafe::Hooks{close_fd_gate, open_fd_gate_in_parent, open_fd_gate_in_child}, nullptr);
  forksafe::add_mutex(forksafe::Rank::cwd, g_globals.cwd_mu);
  pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  // The virtual cwd inherited through a marker directory is looked for on first need
  // (cwd_is_virtual: one getcwd), not here: every program starts without a system call of the shim's.
  adopt_inherited_fds();
  adopt_std_streams();
}
}  // namespace

Globals& globals() {
  return g_globals;
}

std::shared_ptr<vfs::OpenFile> lookup_file(int fd) {
  bool listed = fd >= 0 && fd < kMaxFds && g_globals.fd_kind[fd].load(std::memory_order_acquire) == kVirtual;
  std::shared_ptr<vfs::OpenFile> f;
  if (listed) {
    FdTableAccess access;
    f = g_globals.fd_file[fd].load(std::memory_order_acquire);
  }
  if (!f) errno = EBADF;
  return f;
}

std::shared_ptr<vfs::OpenFile> exchange_file(int fd, std::shared_ptr<vfs::OpenFile> file) {
  FdTableAccess access;
  return g_globals.fd_file[fd].exchange(std::move(file), std::memory_order_acq_rel);
}

vfs::Vfs* filesystem() {
  if (!g_init_done.load(std::memory_order_acquire)) {
    // Re-entered from start-up itself (a configured path under the prefix): not available yet.
    if (t_initialising) return errno = EIO, nullptr;
    std::lock_guard lock(g_init_mu);
    if (!g_init_done.load(std::memory_order_relaxed)) {
      t_initialising = true;
      init_filesystem();
      t_initialising = false;
      g_init_done.store(true, std::memory_order_release);
    }
  }
  if (!g_vfs) errno = EIO;
  return g_vfs;
}

void check_inherited_cwd() {
  std::atomic<int>& state = g_globals.cwd_checked;
  int s = 0;
  if (state.compare_exchange_strong(s, 1)) {
    // A chdir into the prefix made since start-up supersedes whatever was inherited.
    if (!g_globals.cwd_virtual.load()) restore_virtual_cwd();
    state.store(2, std::memory_order_release);
    state.notify_all();
    return;
  }
  for (; s != 2; s = state.load(std::memory_order_acquire)) state.wait(s);
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
