#undef _FILE_OFFSET_BITS
// Directory streams. A virtual DIR* points into a static slot array, so telling ours from
// glibc's is one pointer-range compare with no lock and no allocation.
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "log/log.hpp"
#include "real.hpp"
#include "shim.hpp"
#include "util/forksafe.hpp"

namespace ossshim::shim {
namespace {

struct VDir {
  std::atomic<bool> used{false};
  int fd = -1;
  std::mutex mu;
  long pos = 0;              // 0: ".", 1: "..", 2 + i: entries[i]
  struct dirent64 entry {};  // {}: clang requires every member of a constinit object initialised
};

constexpr int kMaxDirs = 4096;
// Constant-initialised: a dynamic initialiser would write all 1.3 MB at every program's start.
constinit VDir g_dirs[kMaxDirs];

// Around fork, every stream in use is held (a listing may be loading under its lock), so a
// child can go on reading a stream it inherited. (A stream taken meanwhile is not yet returned to
// anyone, so nothing of it is half done.)
bool g_dir_held[kMaxDirs];  // which ones prepare locked
void lock_dirs(void*) {
  for (int i = 0; i < kMaxDirs; ++i)
    if ((g_dir_held[i] = g_dirs[i].used.load())) g_dirs[i].mu.lock();
}
void unlock_dirs(void*) {
  for (int i = 0; i < kMaxDirs; ++i)
    if (g_dir_held[i]) g_dirs[i].mu.unlock();
}
const bool g_dirs_fork_safe = (forksafe::add(forksafe::Rank::dir_streams,
                                             forksafe::Hooks{lock_dirs, unlock_dirs, unlock_dirs}, nullptr),
                               true);

bool ours(const void* d) {
  auto p = static_cast<const char*>(d);
  return p >= reinterpret_cast<const char*>(&g_dirs[0]) &&
         p < reinterpret_cast<const char*>(&g_dirs[kMaxDirs]);
}
VDir* as_vdir(void* d) {
  return static_cast<VDir*>(d);
}

DIR* new_stream(int fd) {
  auto f = lookup_file(fd);
  if (!f) return nullptr;
  if (!f->attr.dir) return (fail(ENOTDIR), nullptr);
  for (auto& d : g_dirs) {
    bool expected = false;
    if (d.used.compare_exchange_strong(expected, true)) {
      std::lock_guard lock(d.mu);
      d.fd = fd;
      d.pos = 0;
      return reinterpret_cast<DIR*>(&d);
    }
  }
  log::error("opendir " + f->display + ": more than " + std::to_string(kMaxDirs) +
             " virtual directories open");
  return (fail(EMFILE), nullptr);
}

// Entry `pos` of directory `f` as name/type/inode; false past the end.
bool entry_at(const vfs::OpenFile& f, long pos, std::string& name, unsigned char& type, ino_t& ino) {
  if (pos == 0 || pos == 1) {
    name = pos == 0 ? "." : "..";
    type = DT_DIR;
    ino = inode_of(pos == 0 ? f.display : f.display.substr(0, f.display.rfind('/')));
    return true;
  }
  auto i = static_cast<std::size_t>(pos - 2);
  if (i >= f.entries.size()) return false;
  name = f.entries[i].name;
  type = f.entries[i].dir ? DT_DIR : f.entries[i].link ? DT_LNK : DT_REG;
  ino = inode_of(f.display + "/" + name);
  return true;
}

bool load(vfs::OpenFile& f) {
  vfs::Vfs* fs = filesystem();
  if (!fs) return false;
  auto st = fs->load_entries(f);
  if (!st) return fail(st.error()), false;
  return true;
}

struct dirent64* next_entry(VDir& d) {
  auto f = lookup_file(d.fd);
  if (!f) return nullptr;
  if (!load(*f)) return nullptr;
  std::string name;
  unsigned char type;
  ino_t ino;
  for (;;) {
    if (!entry_at(*f, d.pos, name, type, ino)) return nullptr;  // end: errno untouched
    ++d.pos;
    if (name.size() < sizeof d.entry.d_name) break;
    log::warn("readdir " + f->display + ": skipping a name longer than 255 bytes: " + name.substr(0, 64) +
              "...");
  }
  d.entry.d_ino = ino;
  d.entry.d_off = d.pos;
  d.entry.d_reclen = sizeof d.entry;
  d.entry.d_type = type;
  std::memcpy(d.entry.d_name, name.c_str(), name.size() + 1);
  return &d.entry;
}

// opendir of a virtual directory.
DIR* open_stream(const vfs::VPath& p) {
  int fd = open_virtual(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* d = new_stream(fd);
  if (!d) close(fd);
  return d;
}

template <class Dirent>
int scan(const vfs::VPath& p, Dirent*** out, int (*filter)(const Dirent*),
         int (*compar)(const Dirent**, const Dirent**)) {
  DIR* dir = open_stream(p);
  if (!dir) return -1;
  std::vector<Dirent*> list;
  int saved = errno;
  errno = 0;
  while (struct dirent64* e = next_entry(*as_vdir(dir))) {
    auto* copy = static_cast<Dirent*>(std::malloc(sizeof(Dirent)));
    std::memcpy(copy, e, sizeof(Dirent));
    if (filter && !filter(copy)) {
      std::free(copy);
      continue;
    }
    list.push_back(copy);
  }
  int err = errno;
  closedir(dir);
  if (err) {
    for (auto* e : list) std::free(e);
    return fail(err);
  }
  errno = saved;
  if (compar)
    std::qsort(list.data(), list.size(), sizeof(Dirent*),
               reinterpret_cast<int (*)(const void*, const void*)>(compar));
  *out = static_cast<Dirent**>(std::malloc(sizeof(Dirent*) * (list.size() ? list.size() : 1)));
  std::memcpy(*out, list.data(), sizeof(Dirent*) * list.size());
  return static_cast<int>(list.size());
}

}  // namespace
}  // namespace ossshim::shim

using namespace ossshim::shim;
namespace vfs = ossshim::vfs;

static_assert(sizeof(struct dirent) == sizeof(struct dirent64), "LP64: one dirent layout");

extern "C" {

DIR* opendir(const char* path) {
  Target t(AT_FDCWD, path);
  if (t.handled) return open_stream(t.path);
  DIR* d = REAL(opendir)(path);
  return !d && t.via_local_link(AT_FDCWD, path) ? open_stream(t.path) : d;  // ls /tmp/link-into-prefix/
}
DIR* fdopendir(int fd) {
  if (!virtual_fd(fd)) return REAL(fdopendir)(fd);
  return new_stream(fd);
}
struct dirent* readdir(DIR* d) {
  if (!ours(d)) return REAL(readdir)(d);
  std::lock_guard lock(as_vdir(d)->mu);
  return reinterpret_cast<struct dirent*>(next_entry(*as_vdir(d)));
}
struct dirent64* readdir64(DIR* d) {
  if (!ours(d)) return REAL(readdir64)(d);
  std::lock_guard lock(as_vdir(d)->mu);
  return next_entry(*as_vdir(d));
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
int readdir_r(DIR* d, struct dirent* entry, struct dirent** result) {
  if (!ours(d)) return REAL(readdir_r)(d, entry, result);
  std::lock_guard lock(as_vdir(d)->mu);
  int saved = errno;
  errno = 0;
  struct dirent64* e = next_entry(*as_vdir(d));
  int err = errno;
  errno = saved;
  if (!e) {
    *result = nullptr;
    return err;
  }
  std::memcpy(entry, e, sizeof *entry);
  *result = entry;
  return 0;
}
int readdir64_r(DIR* d, struct dirent64* entry, struct dirent64** result) {
  return readdir_r(d, reinterpret_cast<struct dirent*>(entry), reinterpret_cast<struct dirent**>(result));
}
#pragma GCC diagnostic pop
void rewinddir(DIR* d) {
  if (!ours(d)) return REAL(rewinddir)(d);
  std::lock_guard lock(as_vdir(d)->mu);
  as_vdir(d)->pos = 0;
}
long telldir(DIR* d) {
  if (!ours(d)) return REAL(telldir)(d);
  std::lock_guard lock(as_vdir(d)->mu);
  return as_vdir(d)->pos;
}
void seekdir(DIR* d, long pos) {
  if (!ours(d)) return REAL(seekdir)(d, pos);
  std::lock_guard lock(as_vdir(d)->mu);
  as_vdir(d)->pos = pos < 0 ? 0 : pos;
}
int dirfd(DIR* d) {
  if (!ours(d)) return REAL(dirfd)(d);
  return as_vdir(d)->fd;
}
int closedir(DIR* d) {
  if (!ours(d)) return REAL(closedir)(d);
  VDir* v = as_vdir(d);
  int fd;
  {
    std::lock_guard lock(v->mu);
    fd = v->fd;
    v->fd = -1;
  }
  v->used.store(false);
  return close(fd);
}

int scandir(const char* path, struct dirent*** out, int (*filter)(const struct dirent*),
            int (*compar)(const struct dirent**, const struct dirent**)) {
  Target t(AT_FDCWD, path);
  return t.handled ? scan(t.path, out, filter, compar) : REAL(scandir)(path, out, filter, compar);
}
int scandir64(const char* path, struct dirent64*** out, int (*filter)(const struct dirent64*),
              int (*compar)(const struct dirent64**, const struct dirent64**)) {
  Target t(AT_FDCWD, path);
  return t.handled ? scan(t.path, out, filter, compar) : REAL(scandir64)(path, out, filter, compar);
}
int scandirat(int dirfd, const char* path, struct dirent*** out, int (*filter)(const struct dirent*),
              int (*compar)(const struct dirent**, const struct dirent**)) {
  Target t(dirfd, path);
  return t.handled ? scan(t.path, out, filter, compar) : REAL(scandirat)(dirfd, path, out, filter, compar);
}

// getdents64 on a virtual directory fd: the file offset counts entries.
ssize_t getdents64(int fd, void* buf, size_t size) {
  if (!virtual_fd(fd)) return REAL(getdents64)(fd, buf, size);
  auto f = lookup_file(fd);
  if (!f) return -1;
  if (!f->attr.dir) return fail(ENOTDIR);
  if (!load(*f)) return -1;
  size_t used = 0;
  std::string name;
  unsigned char type;
  ino_t ino;
  long pos = static_cast<long>(f->offset.load());
  while (entry_at(*f, pos, name, type, ino)) {
    size_t reclen = (offsetof(struct dirent64, d_name) + name.size() + 1 + 7) & ~size_t{7};
    if (used + reclen > size) {
      if (used == 0) return fail(EINVAL);
      break;
    }
    auto* e = reinterpret_cast<struct dirent64*>(static_cast<char*>(buf) + used);
    e->d_ino = ino;
    e->d_off = pos + 1;
    e->d_reclen = static_cast<unsigned short>(reclen);
    e->d_type = type;
    std::memcpy(e->d_name, name.c_str(), name.size() + 1);
    used += reclen;
    ++pos;
  }
  f->offset.store(static_cast<std::uint64_t>(pos));
  return static_cast<ssize_t>(used);
}

}  // extern "C"
