#undef _FILE_OFFSET_BITS
// Standard output and error redirected into the prefix: a shell's `cmd > /oss/...`, bash's
// `echo ... > /oss/...`, subprocess(stdout=f). glibc's stdio writes fd 1 and 2 with internal
// calls the shim never sees, so such a descriptor becomes the write end of a pipe that a thread
// of the owning process drains into the file's writer; closing the last copy waits for the drain
// and commits the file, and close() reports the outcome. Before exec, the writer is handed to the
// new program: the descriptor becomes a placeholder again, which the program adopts at start-up.
// A program that got the pipe itself (exec'd from a vfork()ed or forked child of the owner, as
// dash runs `cmd > /oss/f`) syncs through the owner: fsync connects to the sink's socket, and the
// drain answers once what was in the pipe is stored and committed.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"
#include "util/forksafe.hpp"

namespace ossshim::shim {

struct Sink {
  std::shared_ptr<vfs::OpenFile> file;
  int read_end = -1;  // non-blocking: the drain reads it only under `mu`
  // The sync socket other processes writing the pipe connect to (-1: none). Atomic: a forked
  // child closes its copy (sinks_after_fork_in_child) while the drain may be closing its own.
  std::atomic<int> listener{-1};
  pid_t owner = 0;
  int copies = 0;        // this process's descriptors that are the pipe's write end (tables().mu)
  bool handoff = false;  // exec: the new program takes the file over
  // After a hand-off, set by the drain: the offset the new program writes on from, over the
  // object now holding what this image wrote; -1 when there was nothing to keep.
  long long keep = -1;
  std::mutex mu;
  std::condition_variable cv;  // `stored` grew, or `done`
  // Bytes the drain has read from the pipe, and of those, how many it has written to the file (or
  // discarded after a failure). A sync's target is taken + the pipe's content, read together.
  std::uint64_t taken = 0;
  std::uint64_t stored = 0;
  bool done = false;
  Status status = ok_status();
};
struct SinkEnd {
  std::shared_ptr<Sink> sink;
};

namespace {
// Built on first use and never destroyed: the shim's constructor (adopting an inherited
// descriptor) may run before this file's static initialisers, and exit still needs them.
struct Tables {
  std::mutex mu;
  std::map<int, std::shared_ptr<Sink>> sinks;  // by descriptor
  std::vector<int> handed;                     // descriptors handed off by the current exec
};
Tables& tables() {
  static auto* t = new Tables;
  return *t;
}
// Around fork the table is held (forksafe.hpp). A Sink's own lock needs no hooks: a child never
// takes a parent's (release_sink and sync_sink leave other processes' sinks to the kernel), and a
// child waits for no drain thread, which exists only in the sink's owner. The child closes its
// copies of the sync sockets: with no drain to answer, a connection to one would wait for ever.
void sinks_after_fork_in_child(void*) {
  for (auto& [fd, s] : tables().sinks)
    if (int l = s->listener.exchange(-1); l >= 0) REAL(close)(l);
  tables().mu.unlock();
}
const bool g_sinks_fork_safe =
    (forksafe::add(forksafe::Rank::sink_table,
                   forksafe::Hooks{[](void*) { tables().mu.lock(); }, [](void*) { tables().mu.unlock(); },
                                   sinks_after_fork_in_child},
                   nullptr),
     true);

// The sync socket's name for the pipe `fd` belongs to: abstract, one per pipe of the node.
bool sync_address(int fd, sockaddr_un& addr, socklen_t& len) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return false;
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  int n = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "ossshim-sink-%u-%lx-%lx", ::geteuid(),
                        static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino));
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return true;
}

bool same_user(int sock) {
  struct ucred cred {};
  socklen_t n = sizeof cred;
  return ::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &n) == 0 && cred.uid == ::geteuid();
}

// A sync another process asked for: answered once `stored` reaches `target`.
struct RemoteSync {
  int conn;
  std::uint64_t target;
};

void answer(const RemoteSync& r, int err) {
  std::int32_t reply = err;
  (void)!::send(r.conn, &reply, sizeof reply, MSG_NOSIGNAL);
  REAL(close)(r.conn);
}

// Accepts one sync request (a connection is the request: the drain never waits for a peer):
// its target is what was taken plus what is in the pipe now, so every byte the requester wrote
// before connecting is counted.
void accept_sync(Sink& s, std::vector<RemoteSync>& pending) {
  int conn = ::accept4(s.listener.load(), nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return;
  if (!same_user(conn)) {
    REAL(close)(conn);
    return;
  }
  std::lock_guard lock(s.mu);
  int queued = 0;
  if (::ioctl(s.read_end, FIONREAD, &queued) != 0) queued = 0;
  pending.push_back({conn, s.taken + static_cast<std::uint64_t>(queued)});
}

// Waits until the pipe has bytes (or every write end is closed), then reads them under the
// sink's lock: sync_sink's snapshot then counts each byte exactly once, in `taken` or in the pipe.
// Meanwhile accepts sync requests of other processes into `pending`. Returns the bytes read, 0
// at the end, -1 on an error.
ssize_t take(Sink& s, std::vector<char>& buf, std::vector<RemoteSync>& pending) {
  for (;;) {
    int listener = s.listener.load();
    struct pollfd ready[2] = {{s.read_end, POLLIN, 0}, {listener, POLLIN, 0}};
    if (::poll(ready, listener >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) return -1;
    if (listener >= 0 && (ready[1].revents & POLLIN)) {
      accept_sync(s, pending);
      if (!(ready[0].revents & (POLLIN | POLLHUP | POLLERR))) return -2;  // nothing to read yet
    }
    std::lock_guard lock(s.mu);
    ssize_t n = REAL(read)(s.read_end, buf.data(), buf.size());
    if (n > 0) s.taken += static_cast<std::uint64_t>(n);
    if (n >= 0 || (errno != EAGAIN && errno != EINTR)) return n;
  }
}

void mark_stored(Sink& s, std::size_t n) {
  {
    std::lock_guard lock(s.mu);
    s.stored += n;
  }
  s.cv.notify_all();
}

void drain(std::shared_ptr<Sink> s) {
  vfs::Vfs* fs = filesystem();
  vfs::OpenFile& f = *s->file;
  std::vector<char> buf(1 << 20);
  std::uint64_t off = (f.status_flags.load() & O_APPEND) ? fs->size_of(f) : f.offset.load();
  Status outcome = ok_status();  // the first write failure
  std::vector<RemoteSync> pending;
  // Answers the requests whose bytes are all stored: committed (or failed) now.
  auto serve = [&](bool all) {
    if (pending.empty()) return;
    std::uint64_t stored;
    {
      std::lock_guard lock(s->mu);
      stored = s->stored;
    }
    if (!all && stored < pending.front().target) return;
    Status st = outcome ? fs->sync(f) : outcome;
    std::erase_if(pending, [&](const RemoteSync& r) {
      if (!all && stored < r.target) return false;
      answer(r, st ? 0 : (st.error().err ? st.error().err : EIO));
      return true;
    });
  };
  for (;;) {
    ssize_t n = take(*s, buf, pending);
    if (n == -2) {
      serve(false);
      continue;
    }
    if (n <= 0) break;
    for (std::size_t done = 0; outcome && done < static_cast<std::size_t>(n);) {
      auto w = fs->write(f, buf.data() + done, static_cast<std::size_t>(n) - done, off + done);
      if (!w) {
        outcome = w.error();  // keep draining, so the writer never blocks on a full pipe
        log::error(w.error().to_string() + " -- writes to descriptor redirected into " + f.display +
                   " are discarded; nothing will be stored");
        break;
      }
      done += *w;
    }
    off += static_cast<std::uint64_t>(n);
    f.offset.store(off);
    mark_stored(*s, static_cast<std::size_t>(n));
    serve(false);
  }
  f.offset.store(off);
  REAL(close)(s->read_end);
  if (int l = s->listener.exchange(-1); l >= 0) REAL(close)(l);
  Status st = outcome;
  if (s->handoff) {
    // The new program writes on where this image stopped, as the same open file description
    // would (`sh -c 'echo a; exec cat x' > /oss/f` holds "a" and x): what this image wrote is
    // stored first, and the new program keeps it. An empty file has nothing to keep: the new
    // program's open truncates it as this one's did, and nothing is stored here.
    if (!st || fs->size_of(f) == 0) {
      (void)f.writer->truncate(0);
      f.writer_pid = 0;  // nobody here commits it
      if (!st)
        log::error(st.error().to_string() + " -- the program exec'd with " + f.display +
                   " as its output starts it anew");
    } else if ((st = fs->close_file(f))) {
      std::lock_guard lock(s->mu);
      s->keep = static_cast<long long>(off);
    } else {
      log::error(st.error().to_string() + " -- what was written to " + f.display +
                 " before exec was not stored; the program exec'd with it starts it anew");
    }
  } else if (st) {
    st = fs->close_file(f);
  } else {
    f.writer_pid = 0;  // a failed file is not committed (its upload is aborted when it goes)
  }
  f.descriptors.fetch_sub(1);
  std::lock_guard lock(s->mu);
  s->status = st;
  s->done = true;
  s->cv.notify_all();
  // Handed to a new program, this image's bytes are not what gets stored: no success to report.
  int err = s->handoff ? EIO : st ? 0 : (st.error().err ? st.error().err : EIO);
  for (auto& r : pending) answer(r, err);
}

// The sync socket of the sink whose pipe's write end is `fd`; -1 when it cannot be made (another
// user's socket squats the name): then only this process can sync the sink.
int make_listener(int fd) {
  sockaddr_un addr;
  socklen_t len;
  if (!sync_address(fd, addr, len)) return -1;
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) return -1;
  if (::bind(sock, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(sock, 16) != 0) {
    REAL(close)(sock);
    return -1;
  }
  return sock;
}

// fsync of a pipe that is another process's sink: asks the owner's drain (1: `fd` is no such pipe).
int sync_through_owner(int fd) {
  sockaddr_un addr;
  socklen_t len;
  if (!sync_address(fd, addr, len)) return 1;
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return 1;
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), len) != 0 || !same_user(sock)) {
    REAL(close)(sock);
    return 1;
  }
  std::int32_t reply = EIO;
  bool answered = ::recv(sock, &reply, sizeof reply, MSG_WAITALL) == static_cast<ssize_t>(sizeof reply);
  REAL(close)(sock);
  if (!answered) reply = EIO;  // the owner went away before storing everything
  if (reply != 0) return fail(reply);
  return 0;
}

void forget_locked(int fd) {
  tables().sinks.erase(fd);
  if (globals().fd_kind[fd].exchange(kPlain) != kPlain) globals().virtual_fds.fetch_sub(1);
}

void wait_done(Sink& s) {
  std::unique_lock lock(s.mu);
  s.cv.wait(lock, [&] { return s.done; });
}
}  // namespace

bool make_sink(int fd, const std::shared_ptr<vfs::OpenFile>& file) {
  if (!filesystem() || !file->writer) return false;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  REAL(fcntl)(p[0], F_SETFL, O_NONBLOCK);  // the read end only: the program's writes still block
  int fd_flags = REAL(fcntl)(fd, F_GETFD);
  if (REAL(dup3)(p[1], fd, fd_flags > 0 && (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
    REAL(close)(p[0]);
    REAL(close)(p[1]);
    return false;
  }
  REAL(close)(p[1]);
  auto s = std::make_shared<Sink>();
  s->file = file;
  s->read_end = p[0];
  s->owner = ::getpid();
  s->copies = 1;
  s->listener = make_listener(p[0]);  // (fd's own stat would still be the virtual file's)
  file->descriptors.fetch_add(1);     // the sink's; then fd's own virtual entry (if any) goes
  (void)detach(fd);
  {
    std::lock_guard lock(tables().mu);
    tables().sinks[fd] = s;
    if (globals().fd_kind[fd].exchange(kSink) == kPlain) globals().virtual_fds.fetch_add(1);
  }
  std::thread(drain, s).detach();
  return true;
}

void sink_copied(int oldfd, int newfd) {
  if (newfd < 0 || newfd >= kMaxFds) return;
  std::lock_guard lock(tables().mu);
  auto it = tables().sinks.find(oldfd);
  if (it == tables().sinks.end()) return;
  auto s = it->second;
  tables().sinks[newfd] = s;
  if (s->owner == ::getpid()) ++s->copies;
  if (globals().fd_kind[newfd].exchange(kSink) == kPlain) globals().virtual_fds.fetch_add(1);
}

SinkEnd* release_sink(int fd) {
  std::lock_guard lock(tables().mu);
  auto it = tables().sinks.find(fd);
  if (it == tables().sinks.end()) return nullptr;
  auto s = it->second;
  forget_locked(fd);
  // A forked child's copies are the parent's business: closing them only closes the pipe end.
  if (s->owner != ::getpid() || --s->copies > 0) return nullptr;
  return new SinkEnd{std::move(s)};
}

int finish_sink(SinkEnd* end, int result) {
  if (!end) return result;
  wait_done(*end->sink);
  Status st = end->sink->status;
  delete end;
  if (!st) {
    errno = st.error().err ? st.error().err : EIO;
    return -1;
  }
  return result;
}

int sync_sink(int fd) {
  std::shared_ptr<Sink> s;
  {
    std::lock_guard lock(tables().mu);
    auto it = tables().sinks.find(fd);
    if (it != tables().sinks.end()) s = it->second;
  }
  if (!s || s->owner != ::getpid()) return sync_plain(fd, false);  // a forked child: through the owner
  // Everything written so far must have passed through the drain before the commit: it has been
  // taken (counted) or is still in the pipe, and the drain cannot move bytes between the two
  // while this holds its lock.
  {
    std::unique_lock lock(s->mu);
    int queued = 0;
    if (::ioctl(fd, FIONREAD, &queued) != 0) queued = 0;
    std::uint64_t target = s->taken + static_cast<std::uint64_t>(queued);
    s->cv.wait(lock, [&] { return s->stored >= target || s->done; });
  }
  auto st = filesystem()->sync(*s->file);
  if (!st) return fail(st.error());
  return 0;
}

int sync_plain(int fd, bool data_only) {
  int r = data_only ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
  if (r == 0 || errno != EINVAL) return r;
  int err = errno;  // EINVAL: a pipe, perhaps another process's sink
  int remote = sync_through_owner(fd);
  if (remote != 1) return remote;
  errno = err;
  return r;
}

void sinks_before_exec() {
  std::vector<std::shared_ptr<Sink>> handed;
  std::vector<std::pair<int, std::shared_ptr<Sink>>> placed;  // descriptors given a placeholder
  {
    std::lock_guard lock(tables().mu);
    tables().handed.clear();
    for (auto it = tables().sinks.begin(); it != tables().sinks.end();) {
      auto [fd, s] = *it;
      if (s->owner != ::getpid()) {
        ++it;
        continue;
      }
      s->handoff = true;
      // The placeholder takes the descriptor's number; the pipe's write end closes.
      int cloexec = REAL(fcntl)(fd, F_GETFD);
      int holder = register_file(s->file, false);
      if (holder >= 0) {
        (void)detach(holder);  // only its kernel object is wanted
        REAL(dup3)(holder, fd, cloexec > 0 && (cloexec & FD_CLOEXEC) ? O_CLOEXEC : 0);
        REAL(close)(holder);
        placed.emplace_back(fd, s);
      }
      tables().handed.push_back(fd);
      if (--s->copies == 0) handed.push_back(s);
      it = tables().sinks.erase(it);
      if (globals().fd_kind[fd].exchange(kPlain) != kPlain) globals().virtual_fds.fetch_sub(1);
    }
  }
  for (auto& s : handed) wait_done(*s);
  // The records once the drains are done: where each new writer starts (Sink::keep).
  for (auto& [fd, s] : placed) {
    long long keep;
    {
      std::lock_guard lock(s->mu);
      keep = s->done ? s->keep : -1;
    }
    note_handoff(fd, *s->file, keep);
  }
}

void sinks_after_failed_exec() {
  std::vector<int> fds;
  {
    std::lock_guard lock(tables().mu);
    fds.swap(tables().handed);
  }
  for (int fd : fds) adopt_fd(fd);  // the placeholders are ours again: new writers, new sinks
}

void sinks_at_exit(bool flush_stdio) {
  if (flush_stdio) std::fflush(nullptr);
  std::vector<int> fds;
  {
    std::lock_guard lock(tables().mu);
    for (auto& [fd, s] : tables().sinks)
      if (s->owner == ::getpid()) fds.push_back(fd);
  }
  int null = REAL(open)("/dev/null", O_WRONLY | O_CLOEXEC);
  for (int fd : fds) {
    SinkEnd* end = release_sink(fd);
    // Later output (other atexit handlers) goes nowhere rather than failing.
    if (null >= 0)
      REAL(dup2)(null, fd);
    else
      REAL(close)(fd);
    if (finish_sink(end, 0) != 0) std::_Exit(1);  // the file was not stored: the exit status says so
  }
  if (null >= 0) REAL(close)(null);
}

}  // namespace ossshim::shim

using namespace ossshim::shim;

namespace {
bool any_sinks() {
  return globals().virtual_fds.load(std::memory_order_relaxed) > 0 && !in_vfork_child();
}
// `call` receives the environment the new program gets: `envp` with the records of the
// virtual fds it inherits (see inheritance_env).
template <class Call>
int exec_with_handoff(char* const envp[], Call call) {
  if (globals().virtual_fds.load(std::memory_order_relaxed) == 0) return call(envp);
  if (in_vfork_child()) {  // the tables are the parent's: only the records are added
    std::string records = inheritance_env();
    auto env = environment_with(envp, records);
    return call(env.data());
  }
  sinks_before_exec();
  std::string records = inheritance_env();
  auto env = environment_with(envp, records);
  int r = call(env.data());
  int err = errno;
  sinks_after_failed_exec();
  errno = err;
  return r;
}
std::vector<char*> collect_args(const char* first, va_list ap, char*** envp) {
  std::vector<char*> args{const_cast<char*>(first)};
  while (char* a = va_arg(ap, char*)) args.push_back(a);
  args.push_back(nullptr);
  if (envp) *envp = va_arg(ap, char**);
  return args;
}
}  // namespace

extern "C" {

int execve(const char* path, char* const argv[], char* const envp[]) {
  return exec_with_handoff(envp, [&](char* const* env) { return REAL(execve)(path, argv, env); });
}
int execv(const char* path, char* const argv[]) {
  return exec_with_handoff(environ, [&](char* const* env) { return REAL(execve)(path, argv, env); });
}
int execvp(const char* file, char* const argv[]) {
  return exec_with_handoff(environ, [&](char* const* env) { return REAL(execvpe)(file, argv, env); });
}
int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return exec_with_handoff(envp, [&](char* const* env) { return REAL(execvpe)(file, argv, env); });
}
int fexecve(int fd, char* const argv[], char* const envp[]) {
  return exec_with_handoff(envp, [&](char* const* env) { return REAL(fexecve)(fd, argv, env); });
}
// posix_spawn runs the new program from glibc's own clone, out of the shim's sight: only the
// records of the descriptors it inherits are added (sinks stay the parent's pipes, drained here).
int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (!any_sinks()) return REAL(posix_spawn)(pid, path, actions, attr, argv, envp);
  std::string records = inheritance_env();
  auto env = environment_with(envp, records);
  return REAL(posix_spawn)(pid, path, actions, attr, argv, env.data());
}
int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (!any_sinks()) return REAL(posix_spawnp)(pid, file, actions, attr, argv, envp);
  std::string records = inheritance_env();
  auto env = environment_with(envp, records);
  return REAL(posix_spawnp)(pid, file, actions, attr, argv, env.data());
}
// The execl family: glibc's versions call its internal execve, out of the shim's sight.
int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  auto args = collect_args(arg, ap, nullptr);
  va_end(ap);
  return execv(path, args.data());
}
int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  auto args = collect_args(arg, ap, nullptr);
  va_end(ap);
  return execvp(file, args.data());
}
int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** envp = nullptr;
  auto args = collect_args(arg, ap, &envp);
  va_end(ap);
  return execve(path, args.data(), envp);
}

}  // extern "C"
