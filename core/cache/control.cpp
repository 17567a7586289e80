#include "cache/control.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "util/encode.hpp"

namespace ossshim::cache {

using namespace layout;

extern const char* const kSpaceAdvice;

std::uint64_t monotonic_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

Sizes sizes_for(std::uint32_t chunk_capacity) {
  Sizes s;
  s.chunk_capacity = chunk_capacity;
  s.objects_at = round_page(sizeof(Header));
  s.chunks_at = round_page(s.objects_at + sizeof(ObjectEntry) * kObjectCapacity);
  s.processes_at = round_page(s.chunks_at + sizeof(ChunkEntry) * chunk_capacity);
  s.pins_at = round_page(s.processes_at + sizeof(ProcessEntry) * kProcessCapacity);
  s.total = round_page(s.pins_at + sizeof(PinEntry) * kPinCapacity);
  return s;
}

Region Region::of(Header* h, std::uint64_t chunk_size) {
  Region r;
  r.header = h;
  r.chunk_size = chunk_size;
  Sizes s = sizes_for(h->chunk_capacity);
  char* base = reinterpret_cast<char*>(h);
  r.objects = reinterpret_cast<ObjectEntry*>(base + s.objects_at);
  r.chunks = reinterpret_cast<ChunkEntry*>(base + s.chunks_at);
  r.processes = reinterpret_cast<ProcessEntry*>(base + s.processes_at);
  r.pins = reinterpret_cast<PinEntry*>(base + s.pins_at);
  return r;
}

namespace {
std::string errno_text(int err) {
  return std::strerror(err);
}
}  // namespace

void identity_hash(std::string_view data, std::uint8_t out[16]) {
  std::uint64_t a = 0x9e3779b97f4a7c15ull ^ data.size(), b = 0xd6e8feb86659fd93ull + data.size();
  for (unsigned char ch : data) {
    a = (a ^ ch) * 0x100000001b3ull;                       // FNV-1a step
    b = (b + ch + 1) * 0xff51afd7ed558ccdull + (b >> 29);  // a multiplicative lane
  }
  a = mix(a ^ mix(b));
  b = mix(b ^ 0x2545f4914f6cdd1dull);
  std::memcpy(out, &a, 8);
  std::memcpy(out + 8, &b, 8);
}

Error cache_error(const std::string& target, int err, const std::string& message) {
  Error e;
  e.err = err;
  e.op = "cache";
  e.target = target;
  e.message = message;
  return e;
}

// A cache another user can write could feed us wrong bytes, one they can read leaks our data.
Status own_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    if (errno == ENOENT) {  // create the parents first (for a configured location)
      auto slash = dir.rfind('/');
      if (slash != std::string::npos && slash > 0) {
        std::string parent = dir.substr(0, slash);
        if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
          return cache_error(parent, errno, "cannot create the cache directory: " + errno_text(errno));
        if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return own_directory(dir);
      }
    }
    return cache_error(dir, errno, "cannot create the cache directory: " + errno_text(errno));
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0)
    return cache_error(dir, errno, "cannot inspect the cache directory: " + errno_text(errno));
  if (!S_ISDIR(st.st_mode))
    return cache_error(dir, ENOTDIR, "the cache location is not a directory (a symlink is refused too)");
  if (st.st_uid != ::geteuid())
    return cache_error(dir, EACCES,
                       "the cache directory belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                           std::to_string(::geteuid()) +
                           "; refusing to share cached bytes with another user");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return cache_error(dir, EACCES,
                       std::string("the cache directory has mode ") + mode +
                           "; it must be 0700 (others could read or alter cached bytes): chmod 700 it or "
                           "remove it");
  }
  return ok_status();
}

std::string root_directory(const Config& config) {
  return config.cache_dir.empty() ? "/dev/shm/ossshim-" + std::to_string(::geteuid()) : config.cache_dir;
}

std::string cache_directory(const Config& config) {
  std::string root = root_directory(config);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  // The namespace: processes share a cache when they talk to the same store with the same chunking.
  std::uint8_t id[16];
  identity_hash(config.endpoint + "\n" + std::to_string(config.chunk_size), id);
  return root + "/" + util::hex_lower(std::string_view(reinterpret_cast<const char*>(id), 8));
}

namespace control {

std::string invalid_header(const Header& h, std::uint64_t file_bytes, std::uint64_t chunk_size) {
  if (h.magic != kMagic) return "bad magic";
  if (h.version != kVersion)
    return "version " + std::to_string(h.version) + ", expected " + std::to_string(kVersion);
  if (h.header_bytes != sizeof(Header) || h.object_bytes != sizeof(ObjectEntry) ||
      h.chunk_bytes != sizeof(ChunkEntry) || h.process_bytes != sizeof(ProcessEntry) ||
      h.pin_bytes != sizeof(PinEntry))
    return "record sizes differ from this build's";
  if (h.object_capacity != kObjectCapacity || h.process_capacity != kProcessCapacity ||
      h.pin_capacity != kPinCapacity || h.chunk_capacity < 1024 || h.chunk_capacity > (1u << 24) ||
      (h.chunk_capacity & (h.chunk_capacity - 1)) != 0)
    return "table capacities out of range";
  if (h.file_bytes != file_bytes || sizes_for(h.chunk_capacity).total != file_bytes)
    return "file size " + std::to_string(file_bytes) + " does not match its layout";
  if (h.chunk_size != chunk_size) return "chunk size differs";
  if (h.budget == 0) return "zero budget";
  return "";
}

void remove_contents(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "lock" || name == "procs") continue;
    ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

DirLock::DirLock(const std::string& dir) {
  fd = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) ::flock(fd, LOCK_EX);
}
DirLock::~DirLock() {
  if (fd >= 0) ::close(fd);
}

Mapping open_existing(const std::string& path, std::uint64_t chunk_size, std::string& why, int& err) {
  Mapping m;
  why.clear();
  err = 0;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    err = errno;
    why = errno_text(err);
    return m;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_uid != ::geteuid() ||
      static_cast<std::size_t>(st.st_size) < sizeof(Header)) {
    why = "not ours or too short";
  } else {
    void* p =
        ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      why = "cannot be mapped: " + errno_text(errno);
    } else {
      auto* h = static_cast<Header*>(p);
      why = invalid_header(*h, static_cast<std::uint64_t>(st.st_size), chunk_size);
      if (why.empty()) {
        m.header = h;
        m.bytes = static_cast<std::size_t>(st.st_size);
      } else {
        ::munmap(p, static_cast<std::size_t>(st.st_size));
      }
    }
  }
  ::close(fd);
  return m;
}

Result<Mapping> create(const std::string& control, std::uint64_t chunk_size, std::uint64_t budget) {
  std::uint64_t want = std::max<std::uint64_t>(8192, 4 * (budget / chunk_size));
  std::uint32_t capacity = 1024;
  while (capacity < want && capacity < (1u << 24)) capacity <<= 1;
  Sizes s = sizes_for(capacity);
  std::string temp = control + ".new";
  ::unlink(temp.c_str());
  int nfd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (nfd < 0) return cache_error(temp, errno, "cannot create the control file: " + errno_text(errno));
  if (::ftruncate(nfd, static_cast<off_t>(s.total)) != 0) {
    int err = errno;
    ::close(nfd);
    ::unlink(temp.c_str());
    return cache_error(temp, err, "cannot size the control file: " + errno_text(err));
  }
  // Touch every page now: a full file system must fail here, not as SIGBUS later.
  if (int err = ::posix_fallocate(nfd, 0, static_cast<off_t>(s.total)); err != 0) {
    ::close(nfd);
    ::unlink(temp.c_str());
    return cache_error(temp, err,
                       "cannot allocate the control file: " + errno_text(err) + "; " + kSpaceAdvice);
  }
  void* p = ::mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_SHARED, nfd, 0);
  ::close(nfd);
  if (p == MAP_FAILED) return cache_error(temp, errno, "cannot map the control file: " + errno_text(errno));
  auto* h = static_cast<Header*>(p);
  h->version = kVersion;
  h->header_bytes = sizeof(Header);
  h->object_bytes = sizeof(ObjectEntry);
  h->chunk_bytes = sizeof(ChunkEntry);
  h->process_bytes = sizeof(ProcessEntry);
  h->pin_bytes = sizeof(PinEntry);
  h->object_capacity = kObjectCapacity;
  h->chunk_capacity = capacity;
  h->process_capacity = kProcessCapacity;
  h->pin_capacity = kPinCapacity;
  h->chunk_size = chunk_size;
  h->budget = budget;
  h->file_bytes = s.total;
  if (::getrandom(&h->nonce, sizeof h->nonce, 0) != sizeof h->nonce)
    h->nonce = static_cast<std::uint64_t>(monotonic_ms()) ^ (static_cast<std::uint64_t>(::getpid()) << 32);
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&h->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);  // last: the table is complete
  if (::rename(temp.c_str(), control.c_str()) != 0) {
    int err = errno;
    ::munmap(p, s.total);
    return cache_error(control, err, "cannot publish the control file: " + errno_text(err));
  }
  return Mapping{h, s.total};
}

void repair(Region& r) {
  ObjectEntry* o = r.objects;
  ChunkEntry* c = r.chunks;
  Header& hd = *r.header;
  std::uint64_t cs = r.chunk_size;
  for (std::uint32_t i = 0; i < kObjectCapacity; ++i) {
    if (o[i].used > 2) o[i].used = 2;
    o[i].chunk_entries = 0;
    o[i].ready_chunks = 0;
    o[i].ready_bytes = 0;
  }
  std::uint64_t used = 0;
  std::uint32_t count = 0, tombs = 0;
  for (std::uint32_t k = 0; k < hd.chunk_capacity; ++k) {
    std::uint32_t s = c[k].state.load();
    if (s == kFree) continue;
    if (s == kTomb) {
      ++tombs;
      continue;
    }
    bool owned = (is_fetching(s) || is_evicting(s)) && (s & ~(kFetching | kEvicting)) < kProcessCapacity;
    bool sane = c[k].object < kObjectCapacity && o[c[k].object].used == 1 &&
                o[c[k].object].generation == c[k].generation && c[k].bytes > 0 && c[k].bytes <= cs &&
                c[k].index * cs + c[k].bytes <= o[c[k].object].size && (s == kReady || owned);
    if (!sane) {
      c[k].seq.fetch_add(1);
      c[k].state.store(kTomb);
      ++tombs;
      continue;
    }
    ++count;
    used += round_page(c[k].bytes);  // an evicting chunk's space is counted until it is freed
    ObjectEntry& obj = o[c[k].object];
    ++obj.chunk_entries;
    if (s == kReady) {
      ++obj.ready_chunks;
      obj.ready_bytes += c[k].bytes;
    }
  }
  hd.used_bytes = used;
  hd.chunk_count = count;
  hd.chunk_tombs = tombs;
}

}  // namespace control
}  // namespace ossshim::cache
