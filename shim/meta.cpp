#undef _FILE_OFFSET_BITS
// Metadata: the stat family, access, realpath, readlink, extended attributes, statfs, and the
// current directory (chdir into the prefix makes relative paths virtual); namespace changes
// (mkdir, unlink, rmdir, rename, truncate) and the attribute changes downloaders make (times,
// modes, owners: accepted, OSS keeps none of them).
#include <fcntl.h>
#include <linux/limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "real.hpp"
#include "shim.hpp"

extern "C" {
char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen);
char* __getcwd_chk(char* buf, size_t size, size_t buflen);
ssize_t __readlink_chk(const char* path, char* buf, size_t len, size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t len, size_t buflen);
int __xstat(int ver, const char* path, struct stat* st);
int __xstat64(int ver, const char* path, struct stat64* st);
int __lxstat(int ver, const char* path, struct stat* st);
int __lxstat64(int ver, const char* path, struct stat64* st);
int __fxstat(int ver, int fd, struct stat* st);
int __fxstat64(int ver, int fd, struct stat64* st);
int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags);
int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags);
[[noreturn]] void __chk_fail(void);
}

namespace ossshim::shim {
namespace {

int change(const Status& st);

// AT_EMPTY_PATH calls may pass "" or (statx, recent kernels) NULL.
bool empty_path(const char* p) {
  return p == nullptr || p[0] == '\0';
}

// follow false: lstat (a symlink described, not followed).
template <class St>
int stat_path(const vfs::VPath& p, St* st, bool follow = true) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  vfs::VPath real;  // the inode number is the target's: stat of a link and of its target agree
  auto r = follow ? fs->stat(p, &real) : fs->lstat(p, &real);
  if (!r) return fail(r.error());
  fill_stat(fs->display(real), r.value(), st);
  return 0;
}
template <class St>
int lstat_path(const vfs::VPath& p, St* st) {
  return stat_path(p, st, false);
}

template <class St>
int stat_fd(int fd, St* st) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  vfs::Attr a = f->attr;
  if (vfs::Vfs* fs = filesystem(); fs && !a.dir) a.size = fs->size_of(*f);  // a writer's: so far
  fill_stat(f->display, a, st);
  return 0;
}

int fill_statx(int fd, const vfs::VPath* p, struct statx* stx, bool follow = true) {
  struct stat st;
  int r = p ? stat_path(*p, &st, follow) : stat_fd(fd, &st);
  if (r != 0) return r;
  std::memset(stx, 0, sizeof *stx);
  stx->stx_mask = STATX_BASIC_STATS;
  stx->stx_blksize = static_cast<std::uint32_t>(st.st_blksize);
  stx->stx_nlink = static_cast<std::uint32_t>(st.st_nlink);
  stx->stx_uid = st.st_uid;
  stx->stx_gid = st.st_gid;
  stx->stx_mode = static_cast<std::uint16_t>(st.st_mode);
  stx->stx_ino = st.st_ino;
  stx->stx_size = static_cast<std::uint64_t>(st.st_size);
  stx->stx_blocks = static_cast<std::uint64_t>(st.st_blocks);
  stx->stx_atime.tv_sec = stx->stx_mtime.tv_sec = stx->stx_ctime.tv_sec = st.st_mtim.tv_sec;
  stx->stx_dev_major = major(st.st_dev);
  stx->stx_dev_minor = minor(st.st_dev);
  return 0;
}

int access_virtual(const vfs::VPath& p, int mode) {
  vfs::Attr a;
  if (stat_virtual(p, a) != 0) return -1;
  if (vfs::Vfs* fs = filesystem(); (mode & W_OK) && fs && fs->config().read_only) return fail(EROFS);
  if ((mode & X_OK) && !a.dir) return fail(EACCES);
  return 0;
}

// realpath for a virtual path: symlink objects followed, and the result must exist.
char* realpath_virtual(const vfs::VPath& p, char* resolved) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return nullptr;
  vfs::VPath real;
  auto r = fs->stat(p, &real);
  if (!r) return (fail(r.error()), nullptr);
  std::string full = fs->display(real);
  if (full.size() >= PATH_MAX) return (fail(ENAMETOOLONG), nullptr);
  if (resolved == nullptr) return strdup(full.c_str());
  std::memcpy(resolved, full.c_str(), full.size() + 1);
  return resolved;
}

// A symlink object's text, relative to its directory; truncated to len, no NUL (as readlink(2)).
ssize_t readlink_virtual(const vfs::VPath& p, char* buf, size_t len) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  auto r = fs->readlink(p);
  if (!r && r.error().err == EINVAL) return fail(EINVAL);  // not a link: realpath(1) asks every component
  if (!r) return fail(r.error());
  if (len == 0) return fail(EINVAL);
  size_t n = std::min(len, r->size());
  std::memcpy(buf, r->data(), n);
  return static_cast<ssize_t>(n);
}

// symlink(2) with the link under the prefix: an OSS symlink object.
int symlink_virtual(const char* text, const vfs::VPath& link) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  if (text == nullptr) return fail(EFAULT);
  return change(fs->symlink(text, link));
}

constexpr long kFsMagic = 0x4f535321;  // "OSS!": no local file system type
constexpr unsigned long kFsBlock = 1 << 20;

template <class Sfs>
void fill_statfs(Sfs* s) {
  std::memset(s, 0, sizeof *s);
  s->f_type = kFsMagic;
  s->f_bsize = kFsBlock;
  s->f_frsize = kFsBlock;
  s->f_blocks = 1ull << 30;  // 1 PiB: an object store does not run out the way a disk does
  s->f_bfree = s->f_bavail = 1ull << 30;
  s->f_files = s->f_ffree = 1ull << 40;
  s->f_namelen = 1023;  // OSS's key length limit
  s->f_flags = ST_NOSUID | ST_NODEV;
}
template <class Svfs>
void fill_statvfs(Svfs* s) {
  std::memset(s, 0, sizeof *s);
  s->f_bsize = kFsBlock;
  s->f_frsize = kFsBlock;
  s->f_blocks = 1ull << 30;
  s->f_bfree = s->f_bavail = 1ull << 30;
  s->f_files = s->f_ffree = s->f_favail = 1ull << 40;
  s->f_namemax = 1023;
  s->f_flag = ST_NOSUID | ST_NODEV;
}

int chdir_virtual(const std::string& display, bool dir) {
  if (!dir) return fail(ENOTDIR);
  set_virtual_cwd(display);
  return 0;
}

void leave_virtual_cwd() {
  Globals& g = globals();
  if (!g.cwd_virtual.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(g.cwd_mu);
  g.cwd_virtual.store(false);
}

char* getcwd_virtual(char* buf, size_t size) {
  Globals& g = globals();
  std::string cwd;
  {
    std::lock_guard lock(g.cwd_mu);
    cwd = *g.cwd;
  }
  if (buf == nullptr) {
    size_t n = size ? size : cwd.size() + 1;
    if (n < cwd.size() + 1) return (fail(ERANGE), nullptr);
    buf = static_cast<char*>(std::malloc(n));
    if (!buf) return (fail(ENOMEM), nullptr);
  } else if (size == 0) {
    return (fail(EINVAL), nullptr);
  } else if (size < cwd.size() + 1) {
    return (fail(ERANGE), nullptr);
  }
  std::memcpy(buf, cwd.c_str(), cwd.size() + 1);
  return buf;
}

// Runs a namespace change; 0 or -1/errno (logged).
int change(const Status& st) {
  return st ? 0 : fail(st.error());
}

// rename with either side under the prefix: EXDEV across the boundary (programs then copy and
// delete, as between two file systems).
bool rename_virtual(int fromfd, const char* from, int tofd, const char* to, unsigned flags, int& result) {
  Target a(fromfd, from), b(tofd, to);
  if (!a.handled && !b.handled) return false;
  if (a.handled != b.handled) {
    result = fail(EXDEV);
  } else if (flags & ~RENAME_NOREPLACE) {
    result = fail(EINVAL);  // RENAME_EXCHANGE, RENAME_WHITEOUT: no such thing in OSS
  } else if (vfs::Vfs* fs = filesystem(); !fs) {
    result = -1;
  } else if (vfs::Attr existing; (flags & RENAME_NOREPLACE) && stat_virtual(b.path, existing) == 0) {
    result = fail(EEXIST);
  } else {
    result = change(fs->rename(a.path, b.path));
  }
  return true;
}

// Times, modes and owners: accepted when the path exists (tar, cp -p, shutil.copy2 and
// downloaders set them); OSS keeps none of them.
// follow false (lchown, lutimes, AT_SYMLINK_NOFOLLOW): a symlink itself, dangling or not.
// read_only: an attribute change on a virtual fd is EROFS, as on a read-only mount; else accepted.
int accept_fd_attribute_change() {
  vfs::Vfs* fs = filesystem();
  return fs && fs->config().read_only ? fail(EROFS) : 0;
}

int accept_attribute_change(const vfs::VPath& p, bool follow = true) {
  if (vfs::Vfs* fs = filesystem(); fs && fs->config().read_only) {
    auto ro = fs->refuse_if_read_only("change attributes of", p);
    return fail(ro.error());
  }
  if (follow) {
    vfs::Attr a;
    return stat_virtual(p, a);
  }
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  auto r = fs->lstat(p);
  return r ? 0 : fail(r.error());
}

int unlink_virtual(const vfs::VPath& p, bool dir) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  return change(dir ? fs->rmdir(p) : fs->unlink(p));
}

int mkdir_virtual(const vfs::VPath& p) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  return change(fs->mkdir(p));
}

int truncate_virtual(const vfs::VPath& p, off_t len) {
  if (len < 0) return fail(EINVAL);
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  return change(fs->truncate(p, static_cast<std::uint64_t>(len)));
}

int sync_virtual(int fd) {
  auto f = lookup_file(fd);
  if (!f) return -1;
  vfs::Vfs* fs = filesystem();
  if (!fs) return -1;
  return change(fs->sync(*f));  // a writer's object is complete in OSS when this returns
}
}  // namespace
}  // namespace ossshim::shim

using namespace ossshim::shim;
namespace vfs = ossshim::vfs;

#define WITH_TARGET(dirfd, path, virtual_call, real_call) \
  do {                                                    \
    Target t(dirfd, path);                                \
    if (t.handled) return virtual_call;                   \
    return real_call;                                     \
  } while (0)
// The same, and a real call that failed with ENOENT is tried again through a local symlink into
// the prefix (calls that follow symlinks only).
#define WITH_TARGET_LINKED_IF(follows, dirfd, path, virtual_call, real_call)               \
  do {                                                                                     \
    Target t(dirfd, path);                                                                 \
    if (t.handled) return virtual_call;                                                    \
    auto r = real_call;                                                                    \
    if (call_failed(r) && (follows) && t.via_local_link(dirfd, path)) return virtual_call; \
    return r;                                                                              \
  } while (0)
#define WITH_TARGET_LINKED(dirfd, path, virtual_call, real_call) \
  WITH_TARGET_LINKED_IF(true, dirfd, path, virtual_call, real_call)

extern "C" {

int stat(const char* path, struct stat* st) {
  WITH_TARGET_LINKED(AT_FDCWD, path, stat_path(t.path, st), REAL(stat)(path, st));
}
int stat64(const char* path, struct stat64* st) {
  WITH_TARGET_LINKED(AT_FDCWD, path, stat_path(t.path, st), REAL(stat64)(path, st));
}
int lstat(const char* path, struct stat* st) {
  WITH_TARGET(AT_FDCWD, path, lstat_path(t.path, st), REAL(lstat)(path, st));
}
int lstat64(const char* path, struct stat64* st) {
  WITH_TARGET(AT_FDCWD, path, lstat_path(t.path, st), REAL(lstat64)(path, st));
}
int fstat(int fd, struct stat* st) {
  if (!virtual_fd(fd)) {
    FdIdentity before = identity_now(fd);
    return passed_fstat(fd, before, REAL(fstat)(fd, st), st);
  }
  return stat_fd(fd, st);
}
int fstat64(int fd, struct stat64* st) {
  if (!virtual_fd(fd)) {
    FdIdentity before = identity_now(fd);
    return passed_fstat(fd, before, REAL(fstat64)(fd, st), st);
  }
  return stat_fd(fd, st);
}
int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  if ((flags & AT_EMPTY_PATH) && empty_path(path)) {
    if (virtual_fd(dirfd)) return stat_fd(dirfd, st);
    FdIdentity before = identity_now(dirfd);
    return passed_fstat(dirfd, before, REAL(fstatat)(dirfd, path, st, flags), st);
  }
  WITH_TARGET_LINKED_IF(!(flags & AT_SYMLINK_NOFOLLOW), dirfd, path,
                        stat_path(t.path, st, !(flags & AT_SYMLINK_NOFOLLOW)),
                        REAL(fstatat)(dirfd, path, st, flags));
}
int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  if ((flags & AT_EMPTY_PATH) && empty_path(path)) {
    if (virtual_fd(dirfd)) return stat_fd(dirfd, st);
    FdIdentity before = identity_now(dirfd);
    return passed_fstat(dirfd, before, REAL(fstatat64)(dirfd, path, st, flags), st);
  }
  WITH_TARGET_LINKED_IF(!(flags & AT_SYMLINK_NOFOLLOW), dirfd, path,
                        stat_path(t.path, st, !(flags & AT_SYMLINK_NOFOLLOW)),
                        REAL(fstatat64)(dirfd, path, st, flags));
}
int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* stx) {
  if ((flags & AT_EMPTY_PATH) && empty_path(path) && virtual_fd(dirfd))
    return fill_statx(dirfd, nullptr, stx);
  WITH_TARGET_LINKED_IF(!(flags & AT_SYMLINK_NOFOLLOW), dirfd, path,
                        fill_statx(-1, &t.path, stx, !(flags & AT_SYMLINK_NOFOLLOW)),
                        REAL(statx)(dirfd, path, flags, mask, stx));
}
// The pre-2.33 names, still called by binaries built against older glibc.
int __xstat(int ver, const char* path, struct stat* st) {
  WITH_TARGET_LINKED(AT_FDCWD, path, stat_path(t.path, st), REAL(__xstat)(ver, path, st));
}
int __xstat64(int ver, const char* path, struct stat64* st) {
  WITH_TARGET_LINKED(AT_FDCWD, path, stat_path(t.path, st), REAL(__xstat64)(ver, path, st));
}
int __lxstat(int ver, const char* path, struct stat* st) {
  WITH_TARGET(AT_FDCWD, path, lstat_path(t.path, st), REAL(__lxstat)(ver, path, st));
}
int __lxstat64(int ver, const char* path, struct stat64* st) {
  WITH_TARGET(AT_FDCWD, path, lstat_path(t.path, st), REAL(__lxstat64)(ver, path, st));
}
int __fxstat(int ver, int fd, struct stat* st) {
  if (!virtual_fd(fd)) {
    FdIdentity before = identity_now(fd);
    return passed_fstat(fd, before, REAL(__fxstat)(ver, fd, st), st);
  }
  return stat_fd(fd, st);
}
int __fxstat64(int ver, int fd, struct stat64* st) {
  if (!virtual_fd(fd)) {
    FdIdentity before = identity_now(fd);
    return passed_fstat(fd, before, REAL(__fxstat64)(ver, fd, st), st);
  }
  return stat_fd(fd, st);
}
int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) {
  WITH_TARGET(dirfd, path, stat_path(t.path, st, !(flags & AT_SYMLINK_NOFOLLOW)),
              REAL(__fxstatat)(ver, dirfd, path, st, flags));
}
int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags) {
  WITH_TARGET(dirfd, path, stat_path(t.path, st, !(flags & AT_SYMLINK_NOFOLLOW)),
              REAL(__fxstatat64)(ver, dirfd, path, st, flags));
}

int access(const char* path, int mode) {
  WITH_TARGET_LINKED(AT_FDCWD, path, access_virtual(t.path, mode), REAL(access)(path, mode));
}
int faccessat(int dirfd, const char* path, int mode, int flags) {
  WITH_TARGET(dirfd, path, access_virtual(t.path, mode), REAL(faccessat)(dirfd, path, mode, flags));
}
int euidaccess(const char* path, int mode) {
  WITH_TARGET_LINKED(AT_FDCWD, path, access_virtual(t.path, mode), REAL(euidaccess)(path, mode));
}
int eaccess(const char* path, int mode) {
  WITH_TARGET_LINKED(AT_FDCWD, path, access_virtual(t.path, mode), REAL(eaccess)(path, mode));
}

char* realpath(const char* path, char* resolved) {
  WITH_TARGET_LINKED(AT_FDCWD, path, realpath_virtual(t.path, resolved), REAL(realpath)(path, resolved));
}
char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen) {
  if (resolvedlen < PATH_MAX) __chk_fail();
  WITH_TARGET(AT_FDCWD, path, realpath_virtual(t.path, resolved),
              REAL(__realpath_chk)(path, resolved, resolvedlen));
}
char* canonicalize_file_name(const char* path) {
  WITH_TARGET_LINKED(AT_FDCWD, path, realpath_virtual(t.path, nullptr), REAL(canonicalize_file_name)(path));
}
ssize_t readlink(const char* path, char* buf, size_t len) {
  WITH_TARGET(AT_FDCWD, path, readlink_virtual(t.path, buf, len), REAL(readlink)(path, buf, len));
}
ssize_t readlinkat(int dirfd, const char* path, char* buf, size_t len) {
  WITH_TARGET(dirfd, path, readlink_virtual(t.path, buf, len), REAL(readlinkat)(dirfd, path, buf, len));
}
ssize_t __readlink_chk(const char* path, char* buf, size_t len, size_t buflen) {
  WITH_TARGET(AT_FDCWD, path, readlink_virtual(t.path, buf, len),
              REAL(__readlink_chk)(path, buf, len, buflen));
}
ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t len, size_t buflen) {
  WITH_TARGET(dirfd, path, readlink_virtual(t.path, buf, len),
              REAL(__readlinkat_chk)(dirfd, path, buf, len, buflen));
}

int symlink(const char* target, const char* linkpath) {
  WITH_TARGET(AT_FDCWD, linkpath, symlink_virtual(target, t.path), REAL(symlink)(target, linkpath));
}
int symlinkat(const char* target, int dirfd, const char* linkpath) {
  WITH_TARGET(dirfd, linkpath, symlink_virtual(target, t.path), REAL(symlinkat)(target, dirfd, linkpath));
}

// No extended attributes: reading one is ENODATA, listing them empty (ls and tar ask for ACLs
// and capabilities).
extern "C++" {
static ssize_t no_xattr(const vfs::VPath& p) {
  vfs::Attr a;
  return stat_virtual(p, a) != 0 ? -1 : fail(ENODATA);
}
static ssize_t no_xattr_list(const vfs::VPath& p) {
  vfs::Attr a;
  return stat_virtual(p, a) != 0 ? -1 : 0;
}
}  // extern "C++"
ssize_t getxattr(const char* path, const char* name, void* value, size_t size) {
  WITH_TARGET_LINKED(AT_FDCWD, path, no_xattr(t.path), REAL(getxattr)(path, name, value, size));
}
ssize_t lgetxattr(const char* path, const char* name, void* value, size_t size) {
  WITH_TARGET(AT_FDCWD, path, no_xattr(t.path), REAL(lgetxattr)(path, name, value, size));
}
ssize_t fgetxattr(int fd, const char* name, void* value, size_t size) {
  if (!virtual_fd(fd)) return REAL(fgetxattr)(fd, name, value, size);
  return fail(ENODATA);
}
ssize_t listxattr(const char* path, char* list, size_t size) {
  WITH_TARGET_LINKED(AT_FDCWD, path, no_xattr_list(t.path), REAL(listxattr)(path, list, size));
}
ssize_t llistxattr(const char* path, char* list, size_t size) {
  WITH_TARGET(AT_FDCWD, path, no_xattr_list(t.path), REAL(llistxattr)(path, list, size));
}
ssize_t flistxattr(int fd, char* list, size_t size) {
  if (!virtual_fd(fd)) return REAL(flistxattr)(fd, list, size);
  return 0;
}

// Setting or removing one is accepted and not kept, as chmod is: cp -a/-p, install and mv set
// ACLs (system.posix_acl_access) on what they copy, and fail when that fails.
int setxattr(const char* path, const char* name, const void* value, size_t size, int flags) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path),
              REAL(setxattr)(path, name, value, size, flags));
}
int lsetxattr(const char* path, const char* name, const void* value, size_t size, int flags) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path, false),
              REAL(lsetxattr)(path, name, value, size, flags));
}
int fsetxattr(int fd, const char* name, const void* value, size_t size, int flags) {
  if (!virtual_fd(fd)) return REAL(fsetxattr)(fd, name, value, size, flags);
  return accept_fd_attribute_change();
}
int removexattr(const char* path, const char* name) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path), REAL(removexattr)(path, name));
}
int lremovexattr(const char* path, const char* name) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path, false), REAL(lremovexattr)(path, name));
}
int fremovexattr(int fd, const char* name) {
  if (!virtual_fd(fd)) return REAL(fremovexattr)(fd, name);
  return accept_fd_attribute_change();
}

extern "C++" {
static void fill_fs(struct statfs* s) {
  fill_statfs(s);
}
static void fill_fs(struct statfs64* s) {
  fill_statfs(s);
}
static void fill_fs(struct statvfs* s) {
  fill_statvfs(s);
}
static void fill_fs(struct statvfs64* s) {
  fill_statvfs(s);
}
static int statfs_path(const vfs::VPath& p, auto* out) {
  vfs::Attr a;
  if (stat_virtual(p, a) != 0) return -1;
  fill_fs(out);
  return 0;
}
}  // extern "C++"
int statfs(const char* path, struct statfs* s) {
  WITH_TARGET(AT_FDCWD, path, statfs_path(t.path, s), REAL(statfs)(path, s));
}
int statfs64(const char* path, struct statfs64* s) {
  WITH_TARGET(AT_FDCWD, path, statfs_path(t.path, s), REAL(statfs64)(path, s));
}
int statvfs(const char* path, struct statvfs* s) {
  WITH_TARGET(AT_FDCWD, path, statfs_path(t.path, s), REAL(statvfs)(path, s));
}
int statvfs64(const char* path, struct statvfs64* s) {
  WITH_TARGET(AT_FDCWD, path, statfs_path(t.path, s), REAL(statvfs64)(path, s));
}
int fstatfs(int fd, struct statfs* s) {
  if (!virtual_fd(fd)) return REAL(fstatfs)(fd, s);
  return fill_statfs(s), 0;
}
int fstatfs64(int fd, struct statfs64* s) {
  if (!virtual_fd(fd)) return REAL(fstatfs64)(fd, s);
  return fill_statfs(s), 0;
}
int fstatvfs(int fd, struct statvfs* s) {
  if (!virtual_fd(fd)) return REAL(fstatvfs)(fd, s);
  return fill_statvfs(s), 0;
}
int fstatvfs64(int fd, struct statvfs64* s) {
  if (!virtual_fd(fd)) return REAL(fstatvfs64)(fd, s);
  return fill_statvfs(s), 0;
}

int chdir(const char* path) {
  Target t(AT_FDCWD, path);
  int r = t.handled ? -1 : REAL(chdir)(path);
  if (t.handled || (r != 0 && t.via_local_link(AT_FDCWD, path))) {  // also cd /tmp/link-into-prefix
    vfs::Vfs* fs = filesystem();
    if (!fs) return -1;
    vfs::VPath real;
    auto a = fs->stat(t.path, &real);
    if (!a) return fail(a.error());
    return chdir_virtual(fs->display(real), a->dir);
  }
  if (r == 0) leave_virtual_cwd();
  return r;
}
int fchdir(int fd) {
  if (virtual_fd(fd)) {
    auto f = lookup_file(fd);
    return f ? chdir_virtual(f->display, f->attr.dir) : -1;
  }
  int r = REAL(fchdir)(fd);
  if (r == 0) leave_virtual_cwd();
  if (r != 0 && errno == ENOTDIR && raced_close(fd)) errno = EBADF;  // a placeholder's answer
  return r;
}
char* getcwd(char* buf, size_t size) {
  if (!cwd_is_virtual()) return REAL(getcwd)(buf, size);
  return getcwd_virtual(buf, size);
}
char* __getcwd_chk(char* buf, size_t size, size_t buflen) {
  if (!cwd_is_virtual()) return REAL(__getcwd_chk)(buf, size, buflen);
  if (size > buflen) __chk_fail();
  return getcwd_virtual(buf, size);
}
char* get_current_dir_name(void) {
  if (!cwd_is_virtual()) return REAL(get_current_dir_name)();
  return getcwd_virtual(nullptr, 0);
}

int fsync(int fd) {
  if (!virtual_fd(fd)) return sink_fd(fd) ? sync_sink(fd) : sync_plain(fd, false);
  return sync_virtual(fd);
}
int fdatasync(int fd) {
  if (!virtual_fd(fd)) return sink_fd(fd) ? sync_sink(fd) : sync_plain(fd, true);
  return sync_virtual(fd);
}

int mkdir(const char* path, mode_t mode) {
  WITH_TARGET(AT_FDCWD, path, mkdir_virtual(t.path), REAL(mkdir)(path, mode));
}
int mkdirat(int dirfd, const char* path, mode_t mode) {
  WITH_TARGET(dirfd, path, mkdir_virtual(t.path), REAL(mkdirat)(dirfd, path, mode));
}
int unlink(const char* path) {
  WITH_TARGET(AT_FDCWD, path, unlink_virtual(t.path, false), REAL(unlink)(path));
}
int unlinkat(int dirfd, const char* path, int flags) {
  WITH_TARGET(dirfd, path, unlink_virtual(t.path, flags & AT_REMOVEDIR), REAL(unlinkat)(dirfd, path, flags));
}
int rmdir(const char* path) {
  WITH_TARGET(AT_FDCWD, path, unlink_virtual(t.path, true), REAL(rmdir)(path));
}
int remove(const char* path) {
  // glibc's remove calls unlink and rmdir internally, out of the shim's sight.
  Target t(AT_FDCWD, path);
  if (!t.handled) return REAL(remove)(path);
  vfs::Attr a;
  if (stat_virtual(t.path, a) != 0) return -1;
  return unlink_virtual(t.path, a.dir);
}
int rename(const char* from, const char* to) {
  int r;
  return rename_virtual(AT_FDCWD, from, AT_FDCWD, to, 0, r) ? r : REAL(rename)(from, to);
}
int renameat(int fromfd, const char* from, int tofd, const char* to) {
  int r;
  return rename_virtual(fromfd, from, tofd, to, 0, r) ? r : REAL(renameat)(fromfd, from, tofd, to);
}
int renameat2(int fromfd, const char* from, int tofd, const char* to, unsigned flags) {
  int r;
  return rename_virtual(fromfd, from, tofd, to, flags, r) ? r
                                                          : REAL(renameat2)(fromfd, from, tofd, to, flags);
}
int truncate(const char* path, off_t len) {
  WITH_TARGET(AT_FDCWD, path, truncate_virtual(t.path, len), REAL(truncate)(path, len));
}
int truncate64(const char* path, off64_t len) {
  WITH_TARGET(AT_FDCWD, path, truncate_virtual(t.path, len), REAL(truncate64)(path, len));
}

// Attribute changes: no-ops on virtual paths and descriptors.
int chmod(const char* path, mode_t mode) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path), REAL(chmod)(path, mode));
}
int fchmodat(int dirfd, const char* path, mode_t mode, int flags) {
  WITH_TARGET(dirfd, path, accept_attribute_change(t.path, !(flags & AT_SYMLINK_NOFOLLOW)),
              REAL(fchmodat)(dirfd, path, mode, flags));
}
int fchmod(int fd, mode_t mode) {
  if (!virtual_fd(fd)) return REAL(fchmod)(fd, mode);
  return accept_fd_attribute_change();
}
int chown(const char* path, uid_t uid, gid_t gid) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path), REAL(chown)(path, uid, gid));
}
int lchown(const char* path, uid_t uid, gid_t gid) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path, false), REAL(lchown)(path, uid, gid));
}
int fchownat(int dirfd, const char* path, uid_t uid, gid_t gid, int flags) {
  WITH_TARGET(dirfd, path, accept_attribute_change(t.path, !(flags & AT_SYMLINK_NOFOLLOW)),
              REAL(fchownat)(dirfd, path, uid, gid, flags));
}
int fchown(int fd, uid_t uid, gid_t gid) {
  if (!virtual_fd(fd)) return REAL(fchown)(fd, uid, gid);
  return accept_fd_attribute_change();
}
int utime(const char* path, const struct utimbuf* times) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path), REAL(utime)(path, times));
}
int utimes(const char* path, const struct timeval times[2]) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path), REAL(utimes)(path, times));
}
int lutimes(const char* path, const struct timeval times[2]) {
  WITH_TARGET(AT_FDCWD, path, accept_attribute_change(t.path, false), REAL(lutimes)(path, times));
}
int futimes(int fd, const struct timeval times[2]) {
  if (!virtual_fd(fd)) return REAL(futimes)(fd, times);
  return accept_fd_attribute_change();
}
int futimens(int fd, const struct timespec times[2]) {
  if (!virtual_fd(fd)) return REAL(futimens)(fd, times);
  return accept_fd_attribute_change();
}
int utimensat(int dirfd, const char* path, const struct timespec times[2], int flags) {
  // futimens reaches here with a null path in some glibc versions (declared nonnull, hence the
  // volatile read).
  const char* volatile checked = path;
  if (checked == nullptr)
    return virtual_fd(dirfd) ? accept_fd_attribute_change() : REAL(utimensat)(dirfd, path, times, flags);
  WITH_TARGET(dirfd, path, accept_attribute_change(t.path, !(flags & AT_SYMLINK_NOFOLLOW)),
              REAL(utimensat)(dirfd, path, times, flags));
}

}  // extern "C"
