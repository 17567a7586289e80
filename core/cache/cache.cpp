#include "cache/cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <tuple>

#include "cache/budget.hpp"
#include "cache/guard.hpp"
#include "log/log.hpp"
#include "util/crc64.hpp"
#include "util/encode.hpp"
#include "util/size.hpp"

namespace ossshim::cache {

const char* const kSpaceAdvice =
    "give the container a larger /dev/shm (docker run --shm-size=16g, or --ipc=host), or set "
    "OSSSHIM_CACHE_DIR to another tmpfs or a local disk";

namespace {
using namespace layout;  // the shared records: Header, *Entry, k* constants

constexpr std::uint32_t kObjectCapacity = 4096;
constexpr std::uint32_t kProcessCapacity = 1024;
constexpr std::uint32_t kPinCapacity = 8192;
constexpr std::uint64_t kPage = 4096;
constexpr int kWaitSliceMs = 50;  // a dead fetcher is noticed within this

std::uint64_t round_page(std::uint64_t n) {
  return (n + kPage - 1) / kPage * kPage;
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// A 128-bit identity hash of a byte string: two independent 64-bit lanes. Not OpenSSL's SHA-256 on
// purpose: reads from atexit handlers and static destructors may come after OpenSSL's clean-up.
}  // namespace

// Shared with node.cpp.
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

namespace {

std::uint64_t monotonic_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

// Liveness is a kernel-held lock, not a pid: byte `slot` of the `procs` file is OFD-write-locked by
// the process in that slot. The kernel releases it when the process exits (before it is reaped, so a
// zombie is dead), and OFD locks ignore pids, so it holds across PID namespaces and containers.
struct flock slot_lock(short type, std::uint32_t slot) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = static_cast<off_t>(slot);
  l.l_len = 1;
  return l;
}
bool try_hold_slot(int procs_fd, std::uint32_t slot) {
  struct flock l = slot_lock(F_WRLCK, slot);
  return ::fcntl(procs_fd, F_OFD_SETLK, &l) == 0;
}
void release_slot(int procs_fd, std::uint32_t slot) {
  struct flock l = slot_lock(F_UNLCK, slot);
  ::fcntl(procs_fd, F_OFD_SETLK, &l);
}
bool slot_held_by_other(int procs_fd, std::uint32_t slot) {
  struct flock l = slot_lock(F_WRLCK, slot);
  if (::fcntl(procs_fd, F_OFD_GETLK, &l) != 0) return true;  // cannot tell: never take over a live one
  return l.l_type != F_UNLCK;
}
int open_procs(const std::string& dir) {
  return ::open((dir + "/procs").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

// Shared with budget.cpp: every cache error has the same shape (op "cache", the place, why).
Error cache_error(const std::string& target, int err, const std::string& message) {
  Error e;
  e.err = err;
  e.op = "cache";
  e.target = target;
  e.message = message;
  return e;
}

// Creates `dir` (mode 0700) if missing and insists it is ours alone: a cache another user can
// write could feed us wrong bytes, one they can read leaks our data.
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

namespace {

// The namespace: processes share a cache when they talk to the same store with the same chunking.
std::string namespace_of(const Config& config) {
  std::uint8_t id[16];
  identity_hash(config.endpoint + "\n" + std::to_string(config.chunk_size), id);
  return util::hex_lower(std::string_view(reinterpret_cast<const char*>(id), 8));
}

struct Sizes {
  std::uint32_t chunk_capacity;
  std::uint64_t objects_at, chunks_at, processes_at, pins_at, total;
};

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

// Why a control file cannot be trusted; empty when it can.
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

// Removes every file of a cache directory except the lock.
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

// A held flock on the directory's lock file (released on close, and by the kernel on death).
struct DirLock {
  int fd = -1;
  explicit DirLock(const std::string& dir) {
    fd = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) ::flock(fd, LOCK_EX);
  }
  ~DirLock() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

Object::~Object() {
  if (fd >= 0) ::close(fd);
}

class Cache::Lock {
 public:
  explicit Lock(const Cache& c) : c_(const_cast<Cache&>(c)) {
    int r = pthread_mutex_lock(&c_.header_->mutex);
    if (r == EOWNERDEAD) {
      // A process died inside a critical section: make the mutex usable and re-derive what it
      // may have left half-updated.
      pthread_mutex_consistent(&c_.header_->mutex);
      log::warn("cache " + c_.dir_ + ": a process died while updating the shared table; repairing it");
      c_.repair_locked();
    }
  }
  ~Lock() { pthread_mutex_unlock(&c_.header_->mutex); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  Cache& c_;
};

layout::ObjectEntry* Cache::objects() const {
  return reinterpret_cast<ObjectEntry*>(reinterpret_cast<char*>(header_) +
                                        sizes_for(header_->chunk_capacity).objects_at);
}
layout::ChunkEntry* Cache::chunks() const {
  return reinterpret_cast<ChunkEntry*>(reinterpret_cast<char*>(header_) +
                                       sizes_for(header_->chunk_capacity).chunks_at);
}
layout::ProcessEntry* Cache::processes() const {
  return reinterpret_cast<ProcessEntry*>(reinterpret_cast<char*>(header_) +
                                         sizes_for(header_->chunk_capacity).processes_at);
}
layout::PinEntry* Cache::pins() const {
  return reinterpret_cast<PinEntry*>(reinterpret_cast<char*>(header_) +
                                     sizes_for(header_->chunk_capacity).pins_at);
}

Result<std::unique_ptr<Cache>> Cache::attach(const Config& config) {
  std::string root = root_directory(config);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (auto st = own_directory(root); !st) return st.error();
  std::string dir = root + "/" + namespace_of(config);
  if (auto st = own_directory(dir); !st) return st.error();

  auto chosen = choose_budget(config.cache_size, config.chunk_size, dir);
  if (!chosen) return chosen.error();
  std::uint64_t budget = chosen->bytes;

  std::unique_ptr<Cache> c(new Cache());
  c->dir_ = dir;
  c->chunk_size_ = config.chunk_size;
  c->persist_ = config.cache_persist;
  c->lease_ms_ = config.fetch_lease_ms;
  identity_hash(config.endpoint, c->endpoint_id_);

  DirLock lock(dir);
  if (lock.fd < 0)
    return cache_error(dir + "/lock", errno, "cannot open the cache lock: " + errno_text(errno));
  c->procs_fd_ = open_procs(dir);
  if (c->procs_fd_ < 0)
    return cache_error(dir + "/procs", errno, "cannot open the cache's liveness file: " + errno_text(errno));
  std::string control = dir + "/control";
  int fd = ::open(control.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st;
    std::string why;
    if (::fstat(fd, &st) != 0 || st.st_uid != ::geteuid() ||
        static_cast<std::size_t>(st.st_size) < sizeof(Header)) {
      why = "not ours or too short";
    } else {
      void* m =
          ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) {
        why = "cannot be mapped: " + errno_text(errno);
      } else {
        auto* h = static_cast<Header*>(m);
        why = invalid_header(*h, static_cast<std::uint64_t>(st.st_size), config.chunk_size);
        if (why.empty()) {
          c->header_ = h;
          c->map_bytes_ = static_cast<std::size_t>(st.st_size);
        } else {
          ::munmap(m, static_cast<std::size_t>(st.st_size));
        }
      }
    }
    ::close(fd);
    if (!c->header_) {
      log::warn("cache " + dir + ": discarding the shared control file (" + why +
                ") and its data; rebuilding");
      remove_contents(dir);
    } else {
      report_kept_budget(dir, c->header_->budget, *chosen, config.cache_size != 0);
    }
  } else if (errno != ENOENT) {
    return cache_error(control, errno, "cannot open the cache's control file: " + errno_text(errno));
  } else {
    remove_contents(dir);  // data files of a control file someone deleted: not this table's
  }

  if (!c->header_) {
    // Create under a temporary name and publish by rename: no one ever maps a half-made table.
    std::uint64_t want = std::max<std::uint64_t>(8192, 4 * (budget / config.chunk_size));
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
    void* m = ::mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_SHARED, nfd, 0);
    ::close(nfd);
    if (m == MAP_FAILED) return cache_error(temp, errno, "cannot map the control file: " + errno_text(errno));
    auto* h = static_cast<Header*>(m);
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
    h->chunk_size = config.chunk_size;
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
      ::munmap(m, s.total);
      return cache_error(control, err, "cannot publish the control file: " + errno_text(err));
    }
    c->header_ = h;
    c->map_bytes_ = s.total;
  }
  guard_mapping(c->header_, c->map_bytes_, &c->broken_);
  c->budget_source_ = kept_budget_source(c->header_->budget, *chosen);
  {
    Lock locked(*c);
    c->repair_locked();  // never trust what others left: drop entries that do not add up
    if (auto st = c->register_process_locked(); !st) return st.error();
  }
  return c;
}

Result<std::unique_ptr<Cache>> Cache::inspect(const Config& config) {
  std::string root = root_directory(config);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string dir = root + "/" + namespace_of(config);
  std::string control = dir + "/control";
  int fd = ::open(control.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return cache_error(dir, errno, "no cache here: " + errno_text(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < sizeof(Header)) {
    ::close(fd);
    return cache_error(control, EINVAL, "control file too short");
  }
  void* m = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return cache_error(control, errno, "cannot map: " + errno_text(errno));
  std::unique_ptr<Cache> c(new Cache());
  c->dir_ = dir;
  c->chunk_size_ = config.chunk_size;
  c->header_ = static_cast<Header*>(m);
  c->map_bytes_ = static_cast<std::size_t>(st.st_size);
  c->read_only_ = true;
  c->procs_fd_ = open_procs(dir);
  std::string why = invalid_header(*c->header_, st.st_size, config.chunk_size);
  if (!why.empty()) return cache_error(control, EINVAL, "inconsistent control file: " + why);
  // Not stored in the shared table: recomputed as this process would choose it.
  auto chosen = choose_budget(config.cache_size, config.chunk_size, dir);
  c->budget_source_ =
      chosen ? kept_budget_source(c->header_->budget, *chosen)
             : "set by the process that created the cache (here: " + chosen.error().to_string() + ")";
  return c;
}

Cache::~Cache() {
  detach();
  if (header_) {
    unguard_mapping(header_);
    ::munmap(header_, map_bytes_);
  }
  if (procs_fd_ >= 0) ::close(procs_fd_);
}

Status Cache::register_process_locked() {
  ProcessEntry* p = processes();
  pid_t self = static_cast<pid_t>(::getpid());
  for (std::uint32_t i = 0; i < kProcessCapacity; ++i) {
    if (!try_hold_slot(procs_fd_, i)) continue;  // a live process holds it
    // A free slot, or a dead process's: take back whatever it left.
    ChunkEntry* c = chunks();
    for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) {
      std::uint32_t s = c[k].state.load();
      if (s == (kFetching | i)) drop_locked(c[k], true);
    }
    PinEntry* pin = pins();
    for (std::uint32_t k = 0; k < kPinCapacity; ++k)
      if (pin[k].used && pin[k].process == i) pin[k].used = 0;
    p[i].progress_ms = monotonic_ms();
    p[i].pid = self;
    process_ = i;
    return ok_status();
  }
  return cache_error(dir_, EAGAIN, "all " + std::to_string(kProcessCapacity) + " process slots are in use");
}

bool Cache::unusable() const {
  if (!broken_.load(std::memory_order_relaxed)) return false;
  if (!broken_told_.exchange(true))
    log::error(
        "cache " + dir_ +
        ": its control file was truncated while this process used it; reading past the shared cache from "
        "now on (each process fetches its own copy); restart the program to use the cache again");
  return true;
}

bool Cache::alive_locked(std::uint32_t process) const {
  if (process >= kProcessCapacity) return false;
  if (process == process_ && !read_only_) return true;
  return slot_held_by_other(procs_fd_, process);
}

bool Cache::stalled_locked(std::uint32_t process, const layout::ChunkEntry& c) const {
  std::uint64_t last = std::max(processes()[process].progress_ms.load(), c.since_ms);
  return monotonic_ms() > last + lease_ms_;
}

void Cache::progress() {
  if (header_ && !read_only_)
    processes()[process_].progress_ms.store(monotonic_ms(), std::memory_order_relaxed);
}

std::uint64_t Cache::chunk_bytes(const Object& o, std::uint64_t index) const {
  return std::min<std::uint64_t>(chunk_size_, o.key.size - index * chunk_size_);
}

std::string Cache::data_path(const std::uint8_t* id) const {
  std::uint64_t nonce = header_->nonce;
  return dir_ + "/o-" + util::hex_lower(std::string_view(reinterpret_cast<const char*>(&nonce), 8)) + "-" +
         util::hex_lower(std::string_view(reinterpret_cast<const char*>(id), 16));
}

int Cache::data_fd_locked(std::uint32_t object) {
  return ::open(data_path(objects()[object].id).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
}

layout::ChunkEntry* Cache::find_locked(std::uint32_t object, std::uint32_t generation,
                                       std::uint64_t index) const {
  ChunkEntry* c = chunks();
  std::uint64_t mask = header_->chunk_capacity - 1;
  std::uint64_t h = mix((static_cast<std::uint64_t>(object) << 32 | generation) ^ mix(index)) & mask;
  for (std::uint64_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    std::uint32_t s = c[h].state.load();
    if (s == kFree) return nullptr;
    if (s != kTomb && c[h].object == object && c[h].generation == generation && c[h].index == index)
      return &c[h];
  }
  return nullptr;
}

layout::ChunkEntry* Cache::insert_locked(std::uint32_t object, std::uint32_t generation,
                                         std::uint64_t index) {
  if (header_->chunk_count + header_->chunk_tombs + 1 > header_->chunk_capacity / 4 * 3) rehash_locked();
  ChunkEntry* c = chunks();
  std::uint64_t mask = header_->chunk_capacity - 1;
  std::uint64_t h = mix((static_cast<std::uint64_t>(object) << 32 | generation) ^ mix(index)) & mask;
  for (std::uint64_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    std::uint32_t s = c[h].state.load();
    if (s != kFree && s != kTomb) continue;
    if (s == kTomb) --header_->chunk_tombs;
    ++header_->chunk_count;
    c[h].object = object;
    c[h].generation = generation;
    c[h].index = index;
    c[h].stamp = ++header_->clock;
    c[h].seq.fetch_add(1);
    return &c[h];
  }
  return nullptr;  // unreachable: make_room keeps the table under 3/4
}

void Cache::rehash_locked() {
  // Tombstones make probes long; rebuild the table in place. Entries move, so every seq changes
  // (readers recheck) and waiters on a moved entry's word notice within a wait slice.
  ChunkEntry* c = chunks();
  struct Live {
    std::uint32_t state, object, generation;
    std::uint64_t index, bytes, stamp, crc64;
  };
  std::vector<Live> live;
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) {
    std::uint32_t s = c[k].state.load();
    if (s != kFree && s != kTomb)
      live.push_back({s, c[k].object, c[k].generation, c[k].index, c[k].bytes, c[k].stamp, c[k].crc64});
    c[k].seq.fetch_add(1);
    c[k].state.store(kFree);
  }
  header_->chunk_count = 0;
  header_->chunk_tombs = 0;
  std::uint64_t mask = header_->chunk_capacity - 1;
  for (const Live& e : live) {
    std::uint64_t h = mix((static_cast<std::uint64_t>(e.object) << 32 | e.generation) ^ mix(e.index)) & mask;
    while (c[h].state.load() != kFree) h = (h + 1) & mask;
    c[h].object = e.object;
    c[h].generation = e.generation;
    c[h].index = e.index;
    c[h].bytes = e.bytes;
    c[h].stamp = e.stamp;
    c[h].crc64 = e.crc64;
    c[h].state.store(e.state);
    ++header_->chunk_count;
  }
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) futex_wake(&c[k].state);
}

void Cache::repair_locked() {
  // Re-derive every total from the entries; drop entries that point nowhere.
  ObjectEntry* o = objects();
  ChunkEntry* c = chunks();
  for (std::uint32_t i = 0; i < kObjectCapacity; ++i) {
    if (o[i].used > 2) o[i].used = 2;
    o[i].chunk_entries = 0;
    o[i].ready_chunks = 0;
    o[i].ready_bytes = 0;
  }
  std::uint64_t used = 0;
  std::uint32_t count = 0, tombs = 0;
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) {
    std::uint32_t s = c[k].state.load();
    if (s == kFree) continue;
    if (s == kTomb) {
      ++tombs;
      continue;
    }
    bool sane = c[k].object < kObjectCapacity && o[c[k].object].used == 1 &&
                o[c[k].object].generation == c[k].generation && c[k].bytes > 0 && c[k].bytes <= chunk_size_ &&
                c[k].index * chunk_size_ + c[k].bytes <= o[c[k].object].size &&
                (s == kReady || (s & kFetching && (s & ~kFetching) < kProcessCapacity));
    if (!sane) {
      c[k].seq.fetch_add(1);
      c[k].state.store(kTomb);
      ++tombs;
      continue;
    }
    ++count;
    used += round_page(c[k].bytes);
    ObjectEntry& obj = o[c[k].object];
    ++obj.chunk_entries;
    if (s == kReady) {
      ++obj.ready_chunks;
      obj.ready_bytes += c[k].bytes;
    }
  }
  header_->used_bytes = used;
  header_->chunk_count = count;
  header_->chunk_tombs = tombs;
}

namespace {
std::atomic<TestHook> test_hook{nullptr};
}  // namespace
void set_test_hook(TestHook hook) {
  test_hook.store(hook);
}

void Cache::drop_locked(layout::ChunkEntry& c, bool punch) {
  // Invalidate, then punch: a reader validates (seq) after copying, so one that copied punched
  // zeros sees the new seq and copies again. Nobody maps a dropped chunk: mapped chunks are pinned.
  std::uint32_t s = c.state.load();
  ObjectEntry& o = objects()[c.object];
  std::uint64_t at = c.index * chunk_size_, bytes = c.bytes;
  c.seq.fetch_add(1, std::memory_order_seq_cst);
  c.state.store(kTomb, std::memory_order_seq_cst);
  if (auto hook = test_hook.load(std::memory_order_relaxed); hook && punch) hook("evict:invalidated");
  if (punch) {
    int fd = data_fd_locked(c.object);
    if (fd >= 0) {
      ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
                  static_cast<off_t>(bytes));
      ::close(fd);
    }
  }
  if (o.chunk_entries) --o.chunk_entries;
  if (s == kReady) {
    if (o.ready_chunks) --o.ready_chunks;
    o.ready_bytes -= std::min(o.ready_bytes, c.bytes);
  }
  header_->used_bytes -= std::min(header_->used_bytes, round_page(c.bytes));
  --header_->chunk_count;
  ++header_->chunk_tombs;
  futex_wake(&c.state);
}

void Cache::drop_chunks_locked(const Object& o, bool punch) {
  const ObjectEntry& e = objects()[o.slot];
  for (std::uint64_t i = 0; i < o.chunks && e.chunk_entries; ++i)
    if (ChunkEntry* k = find_locked(o.slot, o.generation, i)) drop_locked(*k, punch);
}

bool Cache::make_room_locked(std::uint64_t bytes) {
  auto fits = [&] {
    return header_->used_bytes + bytes <= header_->budget &&
           header_->chunk_count + 1 <= header_->chunk_capacity / 2;
  };
  if (fits()) return true;
  // Live pins, gathered once: a mapped chunk is never evicted.
  std::vector<const PinEntry*> live;
  PinEntry* pin = pins();
  for (std::uint32_t k = 0; k < kPinCapacity; ++k)
    if (pin[k].used && alive_locked(pin[k].process)) live.push_back(&pin[k]);
  auto pinned = [&](const ChunkEntry& c) {
    for (const PinEntry* p : live)
      if (p->object == c.object && p->generation == c.generation && p->first <= c.index && c.index <= p->last)
        return true;
    return false;
  };
  // Least recently used first.
  ChunkEntry* c = chunks();
  std::vector<std::pair<std::uint64_t, std::uint32_t>> candidates;
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)
    if (c[k].state.load() == kReady && !pinned(c[k])) candidates.emplace_back(c[k].stamp, k);
  std::sort(candidates.begin(), candidates.end());
  for (auto& [stamp, k] : candidates) {
    if (fits()) break;
    header_->counters.evicted_bytes += c[k].bytes;
    drop_locked(c[k], true);
  }
  return fits();
}

Result<std::shared_ptr<Object>> Cache::object(const ObjectKey& key) {
  if (unusable()) return cache_error(dir_, EIO, "the control file was truncated while in use");
  // The ETag without quotes or W/: HEAD and listings may spell the same version differently.
  std::string etag = key.etag;
  if (etag.starts_with("W/")) etag.erase(0, 2);
  std::erase(etag, '"');
  std::string material = std::string(reinterpret_cast<const char*>(endpoint_id_), 16) + key.bucket + '\0' +
                         key.key + '\0' + etag + '\0' + std::to_string(key.size);
  if (material.size() > layout::kIdentityBytes)
    return cache_error(key.display, ENAMETOOLONG, "the object's name is too long for the cache's table");
  std::uint8_t id[16];
  identity_hash(material, id);
  auto same = [&](const ObjectEntry& e) {  // the hash, then every byte of what it hashes
    return std::memcmp(e.id, id, sizeof id) == 0 && e.identity_len == material.size() &&
           std::memcmp(e.identity, material.data(), material.size()) == 0;
  };

  std::lock_guard handles_lock(objects_mu_);
  auto handle = std::make_shared<Object>();
  handle->key = key;
  handle->chunks = (key.size + chunk_size_ - 1) / chunk_size_;
  std::uint64_t recorded_inode = 0;
  std::vector<std::string> forgotten;  // data files of objects dropped from the table
  {
    Lock locked(*this);
    for (auto it = handles_.begin(); it != handles_.end();) {
      auto h = it->lock();
      if (!h) {
        it = handles_.erase(it);
        continue;
      }
      const ObjectEntry& slot = objects()[h->slot];
      if (slot.used == 1 && slot.generation == h->generation && slot.data_inode == h->inode && same(slot)) {
        objects()[h->slot].last_use = ++header_->clock;
        return h;
      }
      ++it;
    }
    auto slot = find_object_locked(id, same, forgotten);
    if (!slot)
      return cache_error(dir_, ENOSPC,
                         "the object table (" + std::to_string(kObjectCapacity) +
                             " objects) is full of objects in use (mapped or being fetched)");
    ObjectEntry& e = objects()[*slot];
    if (e.used != 1) {  // a new entry
      e.used = 1;
      ++e.generation;
      std::memcpy(e.id, id, sizeof id);
      e.identity_len = static_cast<std::uint32_t>(material.size());
      std::memcpy(e.identity, material.data(), material.size());
      e.size = key.size;
      e.crc64 = 0;
      e.has_crc = 0;
      e.chunk_entries = e.ready_chunks = e.crc_verified = e.crc_failed = 0;
      e.data_inode = 0;
      e.origin_bytes = 0;
      e.served_bytes = 0;
      e.ready_bytes = e.unique_bytes = 0;
      std::memset(e.seen, 0, sizeof e.seen);
      std::snprintf(e.name, sizeof e.name, "%s", key.display.c_str());
    }
    e.last_use = ++header_->clock;
    handle->slot = *slot;
    handle->generation = e.generation;
    recorded_inode = e.data_inode;
  }
  // File work happens outside the node lock: unlinking dropped objects' files (their pages go with
  // the last mapping), opening and sizing this one.
  for (const auto& path : forgotten) ::unlink(path.c_str());
  std::string path = data_path(id);
  handle->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (handle->fd < 0)
    return cache_error(path, errno, "cannot open the object's cache file: " + errno_text(errno));
  struct stat st;
  if (::fstat(handle->fd, &st) != 0)
    return cache_error(path, errno, "cannot inspect the object's cache file: " + errno_text(errno));
  bool resized = static_cast<std::uint64_t>(st.st_size) != key.size;
  handle->inode = static_cast<std::uint64_t>(st.st_ino);
  // The chunks the table lists are only in the file it recorded: a data file deleted, replaced or
  // truncated behind the table's back (a tmp cleaner, a user's rm) loses them, never serves zeros.
  // A truncated file's chunks are invalidated before it is sized again: sizing turns what was cut
  // off into holes that read as zeros. (The table records a file only once it is sized, so a file
  // another process is still setting up is not taken for a truncated one.)
  auto forget_chunks_locked = [&](ObjectEntry& e) {
    if (e.chunk_entries != 0)
      log::warn("cache " + dir_ + ": the data file of " + key.display +
                " was removed or truncated behind the cache's back; dropping its cached chunks (they are "
                "fetched again)");
    drop_chunks_locked(*handle, false);
  };
  auto entry_locked = [&]() -> ObjectEntry* {
    ObjectEntry& e = objects()[handle->slot];
    return e.used == 1 && e.generation == handle->generation ? &e : nullptr;
  };
  if (resized) {
    {
      Lock locked(*this);
      ObjectEntry* e = entry_locked();
      if (!e) return cache_error(dir_, ENOSPC, "the object's table entry was reused while opening it");
      if (e->data_inode == handle->inode) forget_chunks_locked(*e);
    }
    if (::ftruncate(handle->fd, static_cast<off_t>(key.size)) != 0)
      return cache_error(path, errno, "cannot size the object's cache file: " + errno_text(errno));
  }
  if (recorded_inode != handle->inode || resized) {
    Lock locked(*this);
    ObjectEntry* e = entry_locked();
    if (!e) return cache_error(dir_, ENOSPC, "the object's table entry was reused while opening it");
    if (e->data_inode != handle->inode) {
      if (e->data_inode != 0) forget_chunks_locked(*e);
      e->data_inode = handle->inode;
    }
  }
  handles_.push_back(handle);
  return handle;
}

std::optional<std::uint32_t> Cache::find_object_locked(const std::uint8_t* id,
                                                       const std::function<bool(const ObjectEntry&)>& same,
                                                       std::vector<std::string>& forgotten) {
  ObjectEntry* o = objects();
  std::uint32_t mask = kObjectCapacity - 1;
  std::uint32_t h = static_cast<std::uint32_t>(mix(*reinterpret_cast<const std::uint64_t*>(id))) & mask;
  std::optional<std::uint32_t> hole;
  std::uint32_t in_use = 0;
  for (std::uint32_t n = 0; n <= mask; ++n, h = (h + 1) & mask) {
    if (o[h].used == 0) {
      if (!hole) hole = h;
      break;
    }
    if (o[h].used == 2) {
      if (!hole) hole = h;
      continue;
    }
    ++in_use;
    if (same(o[h])) return h;
  }
  if (hole && in_use <= kObjectCapacity / 4 * 3) return hole;
  // The table is crowded: forget the least recently used eighth of the objects that no live
  // mapping pins and nobody is fetching, with their chunks (one warning for the first time).
  std::vector<bool> busy(kObjectCapacity, false);
  PinEntry* pin = pins();
  for (std::uint32_t p = 0; p < kPinCapacity; ++p)
    if (pin[p].used && pin[p].generation == o[pin[p].object].generation && alive_locked(pin[p].process))
      busy[pin[p].object] = true;
  ChunkEntry* c = chunks();
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)
    if (c[k].state.load() & kFetching) busy[c[k].object] = true;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> idle;
  for (std::uint32_t i = 0; i < kObjectCapacity; ++i)
    if (o[i].used == 1 && !busy[i]) idle.emplace_back(o[i].last_use, i);
  std::sort(idle.begin(), idle.end());
  idle.resize(std::min<std::size_t>(idle.size(), kObjectCapacity / 8));
  std::vector<bool> dropping(kObjectCapacity, false);
  for (auto [stamp, i] : idle) dropping[i] = true;
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)  // one pass over the chunks
    if (c[k].state.load() == kReady && dropping[c[k].object] &&
        c[k].generation == o[c[k].object].generation) {
      header_->counters.evicted_bytes += c[k].bytes;
      drop_locked(c[k], false);  // the file goes as a whole, below
    }
  for (auto [stamp, i] : idle) {
    forgotten.push_back(data_path(o[i].id));
    o[i].used = 2;
    if (!hole) hole = i;
  }
  static std::atomic<bool> told{false};
  if (!idle.empty() && !told.exchange(true))
    log::info("cache " + dir_ + ": the object table holds " + std::to_string(kObjectCapacity) +
              " objects; forgetting the least recently used (their chunks are fetched again when read)");
  return hole;
}

Claim Cache::claim(Object& o, std::uint64_t index, ChunkRef& ref) {
  if (unusable()) return Claim::uncached;
  std::uint64_t bytes = chunk_bytes(o, index);
  {
    Lock locked(*this);
    ObjectEntry& e = objects()[o.slot];
    if (e.used != 1 || e.generation != o.generation) return Claim::uncached;  // forgotten meanwhile
    if (e.crc_failed) return Claim::damaged;
    if (e.data_inode != o.inode) return Claim::uncached;  // our file is no longer the table's
    if (ChunkEntry* c = find_locked(o.slot, o.generation, index)) {
      std::uint32_t s = c->state.load();
      if (s != kReady) return Claim::busy;
      c->stamp = ++header_->clock;
      e.last_use = header_->clock;
      ref.slot = static_cast<std::uint32_t>(c - chunks());
      ref.seq = c->seq.load();
      ref.crc64 = c->crc64;
      return Claim::ready;
    }
    if (!make_room_locked(round_page(bytes))) return Claim::uncached;
    ChunkEntry* c = insert_locked(o.slot, o.generation, index);
    if (!c) return Claim::uncached;
    c->bytes = bytes;
    c->crc64 = 0;
    c->ticket = ++header_->clock;
    c->since_ms = monotonic_ms();
    c->state.store(kFetching | process_);
    ref.ticket = c->ticket;
    ++e.chunk_entries;
    header_->used_bytes += round_page(bytes);
  }
  header_->counters.requests++;
  header_->counters.inflight_requests++;
  // Reserve the memory before any byte arrives: a full tmpfs fails here, not as SIGBUS.
  if (int err = ::posix_fallocate(o.fd, static_cast<off_t>(index * chunk_size_), static_cast<off_t>(bytes));
      err != 0) {
    static std::atomic<bool> told{false};
    if (!told.exchange(true))
      log::error("cache " + dir_ + ": cannot reserve " + util::format_size(bytes) + " for " + o.key.display +
                 ": " + errno_text(err) +
                 "; reading past the cache instead (slower, every process fetches its own copy); " +
                 kSpaceAdvice);
    abandon(o, index, ref);
    return Claim::uncached;
  }
  return Claim::claimed;
}

Claim Cache::take_over_locked(Object& o, std::uint64_t index, layout::ChunkEntry& c, ChunkRef& ref,
                              const char* why) {
  // A new claim: the old fetcher's complete/abandon (ticket) no longer count. Its late bytes, if
  // it ever resumes, are this version's same bytes (every GET is pinned to the ETag); a resumed
  // fetcher whose bytes' CRC differs from the chunk's drops the chunk (complete()).
  std::uint32_t owner = c.state.load() & ~kFetching;
  c.state.store(kFetching | process_);
  c.ticket = ++header_->clock;
  c.since_ms = monotonic_ms();
  c.seq.fetch_add(1);
  ref.ticket = c.ticket;
  header_->counters.takeovers++;
  header_->counters.requests++;
  header_->counters.inflight_requests++;
  log::warn("cache " + dir_ + ": took over chunk " + std::to_string(index) + " of " + o.key.display +
            " from process slot " + std::to_string(owner) + " (pid " +
            std::to_string(processes()[owner].pid) + " in its namespace), which " + why);
  return Claim::claimed;
}

Claim Cache::wait(Object& o, std::uint64_t index, ChunkRef& ref) {
  if (unusable()) return Claim::uncached;
  for (;;) {
    std::atomic<std::uint32_t>* word = nullptr;
    std::uint32_t seen = 0;
    {
      Lock locked(*this);
      ObjectEntry& e = objects()[o.slot];
      if (e.used != 1 || e.generation != o.generation) return Claim::uncached;
      if (e.crc_failed) return Claim::damaged;
      ChunkEntry* c = find_locked(o.slot, o.generation, index);
      if (c) {
        seen = c->state.load();
        if (seen == kReady) {
          c->stamp = ++header_->clock;
          ref.slot = static_cast<std::uint32_t>(c - chunks());
          ref.seq = c->seq.load();
          ref.crc64 = c->crc64;
          return Claim::ready;
        }
        std::uint32_t owner = seen & ~kFetching;
        if (owner != process_) {
          if (!alive_locked(owner)) return take_over_locked(o, index, *c, ref, "has exited");
          if (stalled_locked(owner, *c))
            return take_over_locked(
                o, index, *c, ref,
                ("made no progress for " + std::to_string(lease_ms_ / 1000) + " s (stopped or stuck)")
                    .c_str());
        }
        word = &c->state;
      }
    }
    if (!word) {
      Claim r = claim(o, index, ref);
      if (r != Claim::busy) return r;
      continue;
    }
    futex_wait(word, seen, kWaitSliceMs);
  }
}

Status Cache::complete(Object& o, std::uint64_t index, const ChunkRef& claim, std::uint64_t crc) {
  if (unusable()) return ok_status();
  header_->counters.inflight_requests--;
  std::optional<Error> mismatch;
  {
    Lock locked(*this);
    ChunkEntry* c = find_locked(o.slot, o.generation, index);
    if (!c) return ok_status();
    if (c->state.load() != (kFetching | process_) || c->ticket != claim.ticket) {
      // Superseded (taken over while we were stalled). If the chunk is ready and our bytes, which
      // went into the same file, differ from the ones it was verified with, it can't be trusted.
      if (c->state.load() == kReady && c->crc64 != crc) {
        log::warn("cache " + dir_ + ": a superseded fetch of chunk " + std::to_string(index) + " of " +
                  o.key.display + " received different bytes; dropping the chunk");
        drop_locked(*c, true);
      }
      return ok_status();
    }
    ObjectEntry& e = objects()[o.slot];
    c->crc64 = crc;
    c->stamp = ++header_->clock;
    c->state.store(kReady, std::memory_order_release);
    futex_wake(&c->state);
    ++e.ready_chunks;
    e.ready_bytes += c->bytes;
    e.origin_bytes += c->bytes;
    header_->counters.origin_bytes += c->bytes;
    if (index >= kUniqueBits) {
      e.unique_bytes += c->bytes;
    } else if (!(e.seen[index / 64] & (1ull << (index % 64)))) {
      e.seen[index / 64] |= 1ull << (index % 64);
      e.unique_bytes += c->bytes;
    }
    if (e.ready_chunks == o.chunks && e.has_crc.load() && !e.crc_verified) {
      // The object is whole: its CRC64, combined from the chunks', must be the server's.
      std::uint64_t whole = 0;
      bool complete_set = true;
      for (std::uint64_t i = 0; i < o.chunks && complete_set; ++i) {
        ChunkEntry* k = find_locked(o.slot, o.generation, i);
        if (!k || k->state.load() != kReady)
          complete_set = false;
        else
          whole = util::crc64_combine(whole, k->crc64, k->bytes);
      }
      if (complete_set && whole == e.crc64.load()) {
        e.crc_verified = 1;
        header_->counters.crc_checked++;
      } else if (complete_set) {
        // Sticky: every later read of this version fails too, in every process (a reopen after
        // the object changes is a new version).
        header_->counters.crc_mismatches++;
        e.crc_failed = 1;
        drop_chunks_locked(o, true);
        Error err = cache_error(o.key.display, EIO,
                                "CRC64 of the bytes received (" + std::to_string(whole) +
                                    ") differs from the server's x-oss-hash-crc64ecma (" +
                                    std::to_string(e.crc64.load()) +
                                    "); the cached copy was dropped and this version's reads fail");
        err.op = "GetObject";
        mismatch = err;
      }
    }
  }
  if (mismatch) return *mismatch;
  return ok_status();
}

void Cache::abandon(Object& o, std::uint64_t index, const ChunkRef& claim) {
  if (unusable()) return;
  header_->counters.inflight_requests--;
  Lock locked(*this);
  ChunkEntry* c = find_locked(o.slot, o.generation, index);
  if (c && c->state.load() == (kFetching | process_) && c->ticket == claim.ticket) drop_locked(*c, true);
}

bool Cache::intact(Object& o, std::uint64_t off, std::uint64_t len) {
  if (unusable()) return false;
  // Chunks are fallocated at claim and written whole, and eviction invalidates before punching,
  // so a hole in a valid chunk means the file was truncated (and extended again) behind our back.
  off_t hole = ::lseek(o.fd, static_cast<off_t>(off), SEEK_HOLE);
  if (hole < 0 || static_cast<std::uint64_t>(hole) >= off + len) return true;
  Lock locked(*this);
  ObjectEntry& e = objects()[o.slot];
  if (e.used != 1 || e.generation != o.generation) return false;
  log::warn("cache " + dir_ + ": the data file of " + o.key.display +
            " was truncated behind the cache's back; dropping its cached chunks (they are fetched again)");
  drop_chunks_locked(o, false);
  return false;
}

bool Cache::still_valid(const ChunkRef& ref) const {
  if (unusable()) return false;
  // A seqlock read: the no-op read-modify-write keeps the copy's loads before it (a plain load
  // could be reordered ahead of them). Eviction changes seq before it punches the hole.
  ChunkEntry& c = chunks()[ref.slot];
  std::uint32_t seq = c.seq.fetch_add(0, std::memory_order_acq_rel);
  return seq == ref.seq && c.state.load(std::memory_order_acquire) == kReady;
}

void Cache::note_crc(Object& o, std::uint64_t crc) {
  if (unusable()) return;
  ObjectEntry& e = objects()[o.slot];
  if (e.has_crc.load() || e.generation != o.generation) return;
  Lock locked(*this);
  if (e.has_crc.load() || e.generation != o.generation) return;
  e.crc64 = crc;
  e.has_crc = 1;
}

std::optional<std::uint64_t> Cache::server_crc(const Object& o) const {
  if (unusable()) return std::nullopt;
  const ObjectEntry& e = objects()[o.slot];
  if (!e.has_crc.load(std::memory_order_acquire)) return std::nullopt;
  std::uint64_t crc = e.crc64.load(std::memory_order_acquire);
  Lock locked(*this);
  if (e.used != 1 || e.generation != o.generation) return std::nullopt;  // the slot was reused
  return crc;
}

bool Cache::verified(const Object& o) const {
  if (unusable()) return false;
  Lock locked(*this);
  const ObjectEntry& e = objects()[o.slot];
  return e.used == 1 && e.generation == o.generation && e.crc_verified;
}

void Cache::mark_damaged(Object& o) {
  if (unusable()) return;
  Lock locked(*this);
  ObjectEntry& e = objects()[o.slot];
  if (e.used != 1 || e.generation != o.generation || e.crc_failed) return;
  header_->counters.crc_mismatches++;
  e.crc_failed = 1;
  drop_chunks_locked(o, true);
}

void Cache::count_served(Object& o, std::uint64_t bytes, bool waited) {
  if (unusable()) return;
  header_->counters.served_bytes += bytes;
  if (waited) header_->counters.waited_bytes += bytes;
  ObjectEntry& e = objects()[o.slot];
  if (e.generation == o.generation) e.served_bytes += bytes;
}

void Cache::count_uncached(std::uint64_t bytes) {
  header_->counters.uncached_bytes += bytes;
}

void Cache::count_error() {
  header_->counters.fetch_errors++;
}

std::optional<std::uint32_t> Cache::pin(Object& o, std::uint64_t first, std::uint64_t last) {
  if (unusable()) return std::nullopt;
  Lock locked(*this);
  ObjectEntry& e = objects()[o.slot];
  if (e.used != 1 || e.generation != o.generation) return std::nullopt;
  // Room: the chunks all live pins hold, with this range, must leave a working margin in the
  // budget. Eight ranks mapping one shard pin its chunks once.
  PinEntry* pin = pins();
  std::optional<std::uint32_t> slot;
  for (std::uint32_t k = 0; k < kPinCapacity && !slot; ++k)
    if (!pin[k].used || !alive_locked(pin[k].process)) slot = k;
  PinEntry wanted{};
  wanted.object = o.slot;
  wanted.generation = o.generation;
  wanted.first = first;
  wanted.last = last;
  if (!slot || pinned_bytes_locked(&wanted) + 2 * chunk_size_ > header_->budget) return std::nullopt;
  PinEntry& p = pin[*slot];
  p.process = process_;
  p.object = o.slot;
  p.generation = o.generation;
  p.first = first;
  p.last = last;
  p.used = 1;
  return slot;
}

std::uint64_t Cache::pinned_bytes_locked(const layout::PinEntry* extra) const {
  // The union of the live pins' chunk ranges (plus `extra`), per object version.
  struct Range {
    std::uint32_t object, generation;
    std::uint64_t first, last;
    bool operator<(const Range& o) const {
      return std::tie(object, generation, first, last) < std::tie(o.object, o.generation, o.first, o.last);
    }
  };
  std::vector<Range> ranges;
  const PinEntry* pin = pins();
  for (std::uint32_t k = 0; k < kPinCapacity; ++k)
    if (pin[k].used && alive_locked(pin[k].process))
      ranges.push_back({pin[k].object, pin[k].generation, pin[k].first, pin[k].last});
  if (extra) ranges.push_back({extra->object, extra->generation, extra->first, extra->last});
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t chunks = 0;
  for (std::size_t i = 0; i < ranges.size();) {
    Range r = ranges[i++];
    while (i < ranges.size() && ranges[i].object == r.object && ranges[i].generation == r.generation &&
           ranges[i].first <= r.last + 1)
      r.last = std::max(r.last, ranges[i++].last);
    chunks += r.last - r.first + 1;
  }
  return chunks * chunk_size_;
}

void Cache::unpin(std::uint32_t slot) {
  if (unusable()) return;
  Lock locked(*this);
  PinEntry& p = pins()[slot];
  if (p.used && p.process == process_) p.used = 0;
}

Stats Cache::stats(bool per_object) const {
  Stats s;
  Lock locked(*this);
  const Header& h = *header_;
  s.budget = h.budget;
  s.budget_source = budget_source_;
  s.used = h.used_bytes;
  s.chunk_size = h.chunk_size;
  s.origin = h.counters.origin_bytes;
  s.served = h.counters.served_bytes;
  s.waited = h.counters.waited_bytes;
  s.uncached = h.counters.uncached_bytes;
  s.evicted = h.counters.evicted_bytes;
  s.requests = h.counters.requests;
  s.inflight = h.counters.inflight_requests;
  s.errors = h.counters.fetch_errors;
  s.takeovers = h.counters.takeovers;
  s.crc_ok = h.counters.crc_checked;
  s.crc_bad = h.counters.crc_mismatches;
  s.pinned = pinned_bytes_locked(nullptr);
  const ObjectEntry* o = objects();
  for (std::uint32_t i = 0; i < kObjectCapacity; ++i) {
    if (o[i].used != 1) continue;
    s.unique += o[i].unique_bytes;
    if (per_object)
      s.objects.push_back({o[i].name, o[i].size, o[i].ready_bytes, o[i].origin_bytes.load(),
                           o[i].served_bytes.load(), o[i].crc_verified != 0});
  }
  const ProcessEntry* p = processes();
  for (std::uint32_t i = 0; i < kProcessCapacity; ++i)
    if (p[i].pid != 0 && alive_locked(i)) s.processes.push_back(p[i].pid);
  return s;
}

Status Cache::clear(const Config& config) {
  std::string root = root_directory(config);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string dir = root + "/" + namespace_of(config);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return ok_status();  // nothing to clear
  if (auto owned = own_directory(dir); !owned) return owned.error();
  DirLock lock(dir);
  auto existing = inspect(config);
  if (existing) {
    auto s = (*existing)->stats(false);
    std::erase(s.processes, static_cast<pid_t>(::getpid()));
    if (!s.processes.empty()) {
      std::string who;
      for (pid_t pid : s.processes) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
        std::string comm;
        std::getline(in, comm);
        who += (who.empty() ? "" : ", ") + std::to_string(pid) + (comm.empty() ? "" : " (" + comm + ")");
      }
      return cache_error(dir, EBUSY, "in use by pid " + who + "; stop them first");
    }
  }
  remove_contents(dir);
  return ok_status();
}

void Cache::after_fork_child(std::vector<std::uint32_t>& inherited) {
  if (unusable()) return;
  new (&objects_mu_) std::mutex;
  // Our copy of the parent's `procs` descriptor shares its lock: were we to keep it, the parent
  // would look alive after its death for as long as we live. Take a slot of our own instead.
  if (procs_fd_ >= 0) ::close(procs_fd_);
  procs_fd_ = open_procs(dir_);
  Lock locked(*this);
  std::uint32_t parent = process_;
  if (procs_fd_ < 0 || !register_process_locked()) return;
  PinEntry* pin = pins();
  for (auto& slot : inherited) {
    for (std::uint32_t k = 0; k < kPinCapacity; ++k) {
      if (pin[k].used) continue;
      pin[k] = pin[slot];
      pin[k].process = process_;
      slot = k;
      break;
    }
  }
  (void)parent;
}

void Cache::detach() {
  if (read_only_ || !header_ || detached_) return;
  if (unusable()) {
    detached_ = true;  // the table is gone: nothing of ours to release in it
    return;
  }
  detached_ = true;
  bool last = false;
  std::optional<DirLock> dir_lock;  // before the mutex, as in attach: no one joins while we leave
  if (!persist_) dir_lock.emplace(dir_);
  {
    Lock locked(*this);
    ChunkEntry* c = chunks();
    for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)
      if (c[k].state.load() == (kFetching | process_)) drop_locked(c[k], true);
    PinEntry* pin = pins();
    for (std::uint32_t k = 0; k < kPinCapacity; ++k)
      if (pin[k].used && pin[k].process == process_) pin[k].used = 0;
    processes()[process_].pid = 0;
    release_slot(procs_fd_, process_);
    last = true;
    for (std::uint32_t i = 0; i < kProcessCapacity && last; ++i)
      if (processes()[i].pid != 0 && alive_locked(i)) last = false;
  }
  if (!persist_ && last) remove_contents(dir_);
}

}  // namespace ossshim::cache
