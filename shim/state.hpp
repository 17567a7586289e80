// The shim's process-wide state: the prefix test, the virtual fd and DIR tables, and the lazily
// created file system. Pass-through callers only ever touch `is_virtual_path` and `virtual_fd`.
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "guard.hpp"
#include "vfs/vfs.hpp"

namespace ossshim::shim {

constexpr int kMaxFds = 1 << 16;
enum FdKind : std::uint8_t { kPlain = 0, kVirtual = 1, kSink = 2 };

struct Globals {
  char prefix[256] = "/oss";
  std::size_t prefix_len = 4;
  pid_t pid = 0;
  // What the shim knows of each descriptor: kPlain (nothing), kVirtual (a virtual file: calls on
  // it go to the shim) or kSink (a pipe the shim drains into a file open for writing: calls on
  // it go to glibc, only closing it concerns the shim).
  std::atomic<std::uint8_t> fd_kind[kMaxFds];
  // Read and changed only through lookup_file and exchange_file (the fork gate).
  std::atomic<std::shared_ptr<vfs::OpenFile>> fd_file[kMaxFds];
  std::atomic<int> virtual_fds{0};  // how many entries of fd_kind are not kPlain
  // The kernel identity (st_dev, st_ino) of each virtual fd's placeholder, recorded when it was
  // attached: a close the shim did not see (a raw syscall) leaves an entry whose number the
  // kernel may hand out again; the identity tells the old placeholder from the new file.
  std::atomic<std::uint64_t> fd_dev[kMaxFds];
  std::atomic<std::uint64_t> fd_ino[kMaxFds];
  // A chdir() into the prefix makes the cwd virtual: relative paths then resolve against `cwd`.
  std::atomic<bool> cwd_virtual{false};
  // Whether the cwd a program started in was looked at (a marker directory, cwd.cpp): 0 not yet,
  // 1 being looked at, 2 done. On first need, not at start-up (cwd_is_virtual).
  std::atomic<int> cwd_checked{0};
  std::mutex cwd_mu;
  std::string* cwd = nullptr;  // guarded by cwd_mu; allocated on first virtual chdir
};
Globals& globals();

// Looks, once, whether the process started in a virtual cwd (one getcwd; the marker's file when
// the cwd is a marker directory). Other threads asking meanwhile wait for the answer.
void check_inherited_cwd();

// Is the current directory virtual (relative paths are then the shim's)? Every reader of
// `cwd_virtual` asks here: the first time, the cwd inherited across exec is looked at.
inline bool cwd_is_virtual() {
  Globals& g = globals();
  if (g.cwd_checked.load(std::memory_order_acquire) != 2) check_inherited_cwd();
  return g.cwd_virtual.load(std::memory_order_relaxed);
}

// One prefix compare: is this absolute path under the virtual prefix? Never for the shim's own
// calls (guard.hpp).
inline bool is_virtual_path(const char* path) {
  const Globals& g = globals();
  if (path == nullptr || path[0] != '/') return false;
  if (std::strncmp(path, g.prefix, g.prefix_len) != 0) return false;
  char next = path[g.prefix_len];
  return (next == '\0' || next == '/') && !in_own_call();
}

// Whether virtual fd `fd` still names its placeholder (one fstat). When it does not (closed by a
// raw syscall, the number perhaps reused), the stale entry is dropped, a writer committed as
// close would, and false returned: the call then goes to the kernel.
bool placeholder_intact(int fd);

// One array lookup (and, for a virtual fd, the identity check): is this descriptor one of ours?
// Never for the shim's own calls (guard.hpp).
inline bool virtual_fd(int fd) {
  return fd >= 0 && fd < kMaxFds && globals().fd_kind[fd].load(std::memory_order_acquire) == kVirtual &&
         !in_own_call() && placeholder_intact(fd);
}

// Does closing or replacing this descriptor concern the shim?
inline bool shim_fd(int fd) {
  if (fd < 0 || fd >= kMaxFds) return false;
  std::uint8_t kind = globals().fd_kind[fd].load(std::memory_order_acquire);
  return kind == kSink || (kind == kVirtual && placeholder_intact(fd));
}
// A descriptor the kernel just handed out for a call passed through: if the table still thinks
// that number is virtual, its old placeholder was closed unseen; the check drops the entry.
inline int fresh_fd(int fd) {
  if (fd >= 0 && fd < kMaxFds && globals().fd_kind[fd].load(std::memory_order_acquire) == kVirtual)
    (void)placeholder_intact(fd);
  return fd;
}
// The close window: close() forgets a virtual fd just before the kernel closes its placeholder
// (an O_PATH memfd). A call passed through meanwhile reaches the placeholder; the kernel's answer
// for a descriptor being closed is EBADF, not the placeholder's stat. True when (dev, ino), a
// pass-through answer on `fd`, is the identity recorded for fd's placeholder. No system call: the
// identity stays in the table after the entry is dropped, until a new virtual fd takes the number.
struct FdIdentity {
  std::uint64_t dev = 0, ino = 0;
};
// The identity recorded for `fd` now (taken before a pass-through call, see closing_placeholder).
inline FdIdentity identity_now(int fd) {
  if (fd < 0 || fd >= kMaxFds) return {};
  const Globals& g = globals();
  return {g.fd_dev[fd].load(std::memory_order_relaxed), g.fd_ino[fd].load(std::memory_order_relaxed)};
}
// `before`: the identity recorded when the call began (a dup2 onto the number may record a new
// one while the call runs).
inline bool closing_placeholder(int fd, FdIdentity before, std::uint64_t dev, std::uint64_t ino) {
  if (fd < 0 || fd >= kMaxFds || in_own_call() || ino == 0) return false;
  if (before.ino == ino && before.dev == dev) return true;
  FdIdentity now = identity_now(fd);
  return now.ino == ino && now.dev == dev;
}
// Before dup2/dup3 of virtual `from` onto `to`: the kernel puts from's placeholder at `to` before
// the table lists it, so `to` is given from's identity first; a call passed through in between
// then answers EBADF (closing_placeholder), not the placeholder's stat. Not over a virtual entry,
// whose identity still tells its own placeholder from a foreign file (placeholder_intact).
inline void preset_identity(int from, int to) {
  Globals& g = globals();
  if (from < 0 || from >= kMaxFds || to < 0 || to >= kMaxFds || g.fd_kind[to].load() == kVirtual) return;
  g.fd_dev[to].store(g.fd_dev[from].load());
  g.fd_ino[to].store(g.fd_ino[from].load());
}
// A passed-through fstat's result: EBADF instead of a closing placeholder's stat.
template <class St>
inline int passed_fstat(int fd, FdIdentity before, int r, const St* st) {
  if (r == 0 && closing_placeholder(fd, before, static_cast<std::uint64_t>(st->st_dev),
                                    static_cast<std::uint64_t>(st->st_ino))) {
    errno = EBADF;
    return -1;
  }
  return r;
}
// A new descriptor `r` made from `oldfd` by dup, dup2, dup3 or F_DUPFD, checked against the close
// window: with `f` (oldfd's file, looked up before the call) r must be oldfd's placeholder and
// oldfd still `f`'s (else the number was closed, perhaps reused by another file, meanwhile);
// without, r must not be a placeholder (`before`: oldfd's identity when the call began). Otherwise
// r is closed and EBADF returned. One fstat, only for numbers that were ever virtual (and a
// readlink when the stat is of an unlinked file, as placeholders are).
int checked_dup(int oldfd, FdIdentity before, int r, const std::shared_ptr<vfs::OpenFile>& f);

inline bool sink_fd(int fd) {
  return fd >= 0 && fd < kMaxFds && globals().fd_kind[fd].load(std::memory_order_acquire) == kSink;
}

// The open file of descriptor `fd`, or nullptr with errno EBADF when `fd` is not (or no longer)
// virtual (its table entry only: callers test virtual_fd first, which checks the identity). Every lookup of a
// descriptor's file goes through here and checks the result: another thread may close `fd` between a caller's
// virtual_fd() test and this lookup, and the kernel's answer to a call on a closed descriptor is EBADF, not a
// crash.
std::shared_ptr<vfs::OpenFile> lookup_file(int fd);
// Replaces descriptor `fd`'s file (0 <= fd < kMaxFds); returns the old one. An atomic shared_ptr
// takes an internal lock bit that a thread inside it when another forks would leave set in the
// child for ever, so these two are the only accesses, and fork waits until none is in progress.
std::shared_ptr<vfs::OpenFile> exchange_file(int fd, std::shared_ptr<vfs::OpenFile> file);

// The file system, created on first use; nullptr (errno EIO, one log line) if configuration or
// credentials are unusable.
vfs::Vfs* filesystem();

// True in a vfork()ed child, which shares the parent's memory until exec: such code must not
// change shared state.
bool in_vfork_child();

}  // namespace ossshim::shim
