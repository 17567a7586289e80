// Helpers shared by the interposed functions: path resolution, the virtual fd registry and
// error reporting. Everything here runs only once a call is known (or likely) to be virtual.
#pragma once

#include <fcntl.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "state.hpp"
#include "util/error.hpp"
#include "vfs/path.hpp"
#include "vfs/vfs.hpp"

namespace ossshim::shim {

// A relative path that could climb into the prefix from a real directory above it: its first
// component (after "./") is the prefix's first one ("oss/b/f" from "/") or "..". Then resolve
// looks at the real directory; every other relative path passes through on this test alone.
inline bool may_lead_into_prefix(const char* path) {
  while (path[0] == '.' && path[1] == '/') path += 2;
  if (path[0] == '.' && path[1] == '.' && (path[2] == '/' || path[2] == '\0')) return true;
  const Globals& g = globals();
  const char* first = g.prefix + 1;
  std::size_t n = std::strcspn(first, "/");
  return std::strncmp(path, first, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

// Cheap test for the pass-through path: could (dirfd, path) name a virtual file? Absolute paths
// compare the prefix; relative ones are virtual under a virtual cwd or a virtual dirfd, or when
// they may climb into the prefix from a real ancestor directory (rsync opens "/" and walks down).
inline bool maybe_virtual(int dirfd, const char* path) {
  if (path == nullptr) return false;
  if (path[0] == '/') return is_virtual_path(path);
  if (dirfd == AT_FDCWD ? !in_own_call() && cwd_is_virtual() : virtual_fd(dirfd)) return true;
  return !in_own_call() && may_lead_into_prefix(path);
}

// Resolves (dirfd, path) to a virtual path; false when it is not ours after all (for example
// "/oss/../etc/passwd"). The caller then passes the call through.
bool resolve(int dirfd, const char* path, vfs::VPath& out);

// After a real call on (dirfd, path) failed with ENOENT: true when the path goes through a local
// symlink into the prefix (ln -s /oss/b/f /tmp/l; cat /tmp/l), with `out` the virtual path
// reached. A readlink per component, paid only by calls that failed with ENOENT; errno kept.
bool through_local_link(int dirfd, const char* path, vfs::VPath& out);

// (dirfd, path) resolved once: `handled` false means the call is not ours (pass it through).
struct Target {
  bool handled = false;
  vfs::VPath path;
  Target(int dirfd, const char* p) {
    if (maybe_virtual(dirfd, p)) handled = resolve(dirfd, p, path);
  }
  // The real call failed: is it ours after all, through a local symlink?
  bool via_local_link(int dirfd, const char* p) {
    if (errno != ENOENT || p == nullptr || p[0] == '\0') return false;
    return handled = through_local_link(dirfd, p, path);
  }
};
inline bool call_failed(long r) {
  return r < 0;
}
inline bool call_failed(const void* r) {
  return r == nullptr;
}

// The absolute virtual path a virtual fd was opened with ("/oss/bucket/dir").
std::string display_of(int fd);

// Opens (dirfd, path) for the shim with open(2) flags; returns the new virtual fd or -1/errno.
int open_virtual(const vfs::VPath& p, int flags);

// Registers an open file under a fresh kernel-reserved descriptor (an O_PATH placeholder whose
// fstat tells the truth and on which any escaped read/write/mmap fails with EBADF; fds.cpp).
// Returns the fd or -1/errno.
int register_file(std::shared_ptr<vfs::OpenFile> file, bool cloexec);
// At start-up: takes over virtual fds inherited across exec (their records survive in the kernel).
void adopt_inherited_fds();
// Takes over one such descriptor; false if it is not a placeholder of this prefix.
bool adopt_fd(int fd);
// Exec hand-off. A placeholder carries type, size, mode and mtime (fstat); the rest of what the
// new program needs (path, etag, writer flags) travels in an environment variable, one record
// per inherited placeholder keyed by its (st_dev, st_ino). note_handoff adds a placeholder that
// is not in the table (a sink's, sinks_before_exec); inheritance_env returns the variable's
// "NAME=records" entry (empty: nothing inherited) for every descriptor without FD_CLOEXEC;
// environment_with gives `envp` with that entry instead of any inherited one.
// `keep`: the offset to write on from over the stored object, or -1 (see Record in fds.cpp).
void note_handoff(int fd, const vfs::OpenFile& file, long long keep);
std::string inheritance_env();
std::vector<char*> environment_with(char* const envp[], const std::string& entry);

// After the kernel answered a pass-through call on `fd` with an error a placeholder gives (the
// shim had forgotten fd, whose close had begun): whether fd is a placeholder or gone. Then the
// call raced a close by another thread, and its answer is EBADF.
bool raced_close(int fd);

// Standard output and error redirected into the prefix (sinks.cpp). glibc's stdio writes them
// with internal calls the shim never sees, so such a descriptor (1 or 2) becomes a pipe that a
// thread drains into the file's writer. make_sink replaces `fd` (a virtual writer's or an
// inherited placeholder) with the pipe; false (nothing changed) when that is impossible.
bool make_sink(int fd, const std::shared_ptr<vfs::OpenFile>& file);
// `newfd` became a copy of sink `oldfd` (dup, dup2, F_DUPFD).
void sink_copied(int oldfd, int newfd);
// The sink descriptor `fd` is going away (close, or replaced by dup2): call before the kernel
// call, then pass the result to finish_sink after it. The last copy's finish waits for the
// drain and commits the file: its result is close's.
struct SinkEnd;
SinkEnd* release_sink(int fd);
int finish_sink(SinkEnd* end, int result);
// fsync of a sink: waits until the drain has taken everything written, then commits the file.
int sync_sink(int fd);
// fsync (fdatasync) of any other descriptor: the kernel's, except for a pipe that is another
// process's sink (a program exec'd by a shell's vfork()ed child with `> /oss/f`): the owner's drain
// stores and commits everything written before, then answers.
int sync_plain(int fd, bool data_only);
// Before exec: every sink of this process becomes a placeholder again (its writer is handed to
// the new program, which adopts it); after a failed exec they are taken back.
void sinks_before_exec();
void sinks_after_failed_exec();
// At exit: stdio is flushed (not at _exit), sinks closed, their files committed.
void sinks_at_exit(bool flush_stdio);
// At exit() and _exit(), once, in the process itself (not a vfork child): sinks and files still
// open for writing are committed, the shared cache is left.
void leave_at_exit(bool flush_stdio);
// Then points stdin at a shim stream when fd 0 is virtual (stdio.cpp).
void adopt_std_streams();
// Makes `fd` (already a kernel descriptor) refer to `file`.
void attach(int fd, std::shared_ptr<vfs::OpenFile> file);
// Forgets `fd` (before the kernel descriptor is closed). Returns its open file when this was the
// file's last descriptor and the file was open for writing: pass it to finish_close.
std::shared_ptr<vfs::OpenFile> detach(int fd);
// After the kernel descriptor is closed: commits `last` (if any); `result` or -1/errno.
int finish_close(const std::shared_ptr<vfs::OpenFile>& last, int result);

// Sets errno and returns -1; logs `e` (ENOENT at debug level: programs probe for files).
int fail(const Error& e);
inline int fail(int err) {
  errno = err;
  return -1;
}

// Fills a stat/stat64-like structure from attributes.
template <class St>
void fill_stat(const std::string& display, const vfs::Attr& a, St* st);

// Reads from a virtual descriptor at `off` (or at and advancing the file offset when off < 0).
ssize_t virtual_read(int fd, void* buf, size_t len, off_t off);

// Writes to a virtual descriptor at `off` (or at and advancing the file offset when off < 0).
ssize_t virtual_write(int fd, const void* buf, size_t len, off_t off);

// lseek on a virtual descriptor.
off_t virtual_seek(int fd, off_t off, int whence);

// Stable, distinct inode numbers per path (stat and readdir agree), so fts/find/du cycle checks work.
ino_t inode_of(const std::string& display);

// Shared-cache mappings (files.cpp): whether any exist (munmap's fast test), dropping those
// inside [addr, addr+len), and their pins across fork.
bool mapped_any();
void forget_mappings(void* addr, size_t len);
std::vector<std::uint32_t> mapping_pins();
void set_mapping_pins(const std::vector<std::uint32_t>& pins);

// stat of a virtual path, with errors reported; 0 or -1/errno.
int stat_virtual(const vfs::VPath& p, vfs::Attr& out);

// The virtual current directory (cwd.cpp): set by chdir/fchdir into the prefix; restored at
// start-up when the process was exec'd with its real cwd in a marker directory.
void set_virtual_cwd(const std::string& display);
void restore_virtual_cwd();

}  // namespace ossshim::shim
