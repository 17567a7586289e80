#include "cache/cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <tuple>

#include "cache/budget.hpp"
#include "cache/control.hpp"
#include "cache/eviction.hpp"
#include "cache/guard.hpp"
#include "cache/table.hpp"
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

constexpr int kWaitSliceMs = 50;  // a dead fetcher is noticed within this

std::string errno_text(int err) {
  return std::strerror(err);
}
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

Result<std::unique_ptr<Cache>> Cache::attach(const Config& config) {
  std::string dir = cache_directory(config);
  if (auto st = own_directory(dir.substr(0, dir.rfind('/'))); !st) return st.error();
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

  control::DirLock lock(dir);
  if (lock.fd < 0)
    return cache_error(dir + "/lock", errno, "cannot open the cache lock: " + errno_text(errno));
  c->live_ = Liveness(Liveness::open_file(dir));
  if (c->live_.fd() < 0)
    return cache_error(dir + "/procs", errno, "cannot open the cache's liveness file: " + errno_text(errno));
  std::string path = dir + "/control";
  std::string why;
  int err = 0;
  control::Mapping m = control::open_existing(path, config.chunk_size, why, err);
  if (m.header) {
    report_kept_budget(dir, m.header->budget, *chosen, config.cache_size != 0);
  } else if (err == ENOENT) {
    control::remove_contents(dir);  // data files of a control file someone deleted: not this table's
  } else if (err != 0) {
    return cache_error(path, err, "cannot open the cache's control file: " + errno_text(err));
  } else {
    log::warn("cache " + dir + ": discarding the shared control file (" + why + ") and its data; rebuilding");
    control::remove_contents(dir);
  }
  if (!m.header) {
    auto made = control::create(path, config.chunk_size, budget);
    if (!made) return made.error();
    m = *made;
  }
  c->header_ = m.header;
  c->map_bytes_ = m.bytes;
  c->r_ = Region::of(c->header_, c->chunk_size_);
  guard_mapping(c->header_, c->map_bytes_, &c->broken_);
  c->budget_source_ = kept_budget_source(c->header_->budget, *chosen);
  Batch left;  // evictions a dead process left half done in the slot we take
  {
    Lock locked(*c);
    c->repair_locked();  // never trust what others left: drop entries that do not add up
    if (auto st = c->register_process_locked(left); !st) return st.error();
  }
  c->finish_evictions(left);
  return c;
}

Result<std::unique_ptr<Cache>> Cache::inspect(const Config& config) {
  std::string dir = cache_directory(config);
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
  c->live_ = Liveness(Liveness::open_file(dir));
  std::string why = control::invalid_header(*c->header_, st.st_size, config.chunk_size);
  if (!why.empty()) return cache_error(control, EINVAL, "inconsistent control file: " + why);
  c->r_ = Region::of(c->header_, c->chunk_size_);
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
  if (live_.fd() >= 0) ::close(live_.fd());
}

Status Cache::register_process_locked(Batch& left) {
  ProcessEntry* p = processes();
  pid_t self = static_cast<pid_t>(::getpid());
  for (std::uint32_t i = 0; i < kProcessCapacity; ++i) {
    if (!live_.hold(i)) continue;  // a live process holds it
    process_ = i;
    // A free slot, or a dead process's: take back whatever it left. Its evictions are ours now
    // (same slot): the caller finishes them once the node lock is released.
    ChunkEntry* c = chunks();
    for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) {
      std::uint32_t s = c[k].state.load();
      if (s == (kFetching | i)) drop_locked(c[k], &left);
      if (s == (kEvicting | i)) left.push_back(pending_locked(c[k]));
    }
    PinEntry* pin = pins();
    for (std::uint32_t k = 0; k < kPinCapacity; ++k)
      if (pin[k].used && pin[k].process == i) pin[k].used = 0;
    p[i].progress_ms = monotonic_ms();
    p[i].pid = self;
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
  return live_.held_by_other(process);
}

bool Cache::stalled_locked(std::uint32_t process, const layout::ChunkEntry& c) const {
  return Liveness::stalled(processes()[process].progress_ms.load(), c.since_ms, lease_ms_, monotonic_ms());
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

layout::ChunkEntry* Cache::find_locked(std::uint32_t object, std::uint32_t generation,
                                       std::uint64_t index) const {
  return table::find(r_, object, generation, index);
}

void Cache::repair_locked() {
  control::repair(r_);
}

namespace {
std::atomic<TestHook> test_hook{nullptr};
void at(const char* point) {
  if (auto hook = test_hook.load(std::memory_order_relaxed)) hook(point);
}
}  // namespace
void set_test_hook(TestHook hook) {
  test_hook.store(hook);
}

// ---- Eviction ----
//
// Dropping a chunk whose bytes may be in the data file (eviction, an abandoned or superseded
// fetch, a damaged object) takes three steps, so that no hole is punched and no file is opened
// while the node mutex is held:
//
//   1. Under the mutex: bump seq, then set the state to kEvicting | our slot (invalidate()).
//      From here no reader accepts the chunk: one that copied it before validates seq after the
//      copy and sees the bump; a new claim finds a chunk that is not ready and waits for it (or
//      finishes it, below). Its space stays counted in used_bytes, so the budget is never
//      overcommitted while the pages still exist. Everything the next step needs (the data
//      file's path and inode, the range) is copied out here.
//   2. Without the mutex: open the data file, check it is still the inode the table recorded
//      (a replaced file is another version's: its pages are not ours to punch), punch the hole.
//      Nobody else touches the range: the entry stays kEvicting, so no one claims the chunk
//      again, and no one maps it (mapped chunks are pinned and never chosen).
//   3. Under the mutex again: if the entry (looked up by object, generation and index: a
//      rehash may have moved it) is still kEvicting | our slot, it becomes a tombstone and its
//      space is freed (release()); waiters on its state word are woken.
//
// A crash between the steps leaves a kEvicting entry whose owner slot is dead. Its bytes are
// never served (step 1 already invalidated it), and its space is still counted, so the
// accounting is right. The next process that finds it finishes it: a reader that waits on it
// (wait()), an evictor scanning for victims (claim()), or the process that takes the dead slot
// (attach()). A live owner that stops between the steps (SIGSTOP) is never finished by others
// (its late punch could hit a newer fetch of the range): readers of those chunks read past the
// cache once its lease runs out.

Cache::Pending Cache::pending_locked(const layout::ChunkEntry& c) const {
  const ObjectEntry& o = objects()[c.object];
  return Pending{c.object, c.generation, c.index,        c.index * chunk_size_,
                 c.bytes,  o.data_inode, data_path(o.id)};
}

void Cache::drop_locked(layout::ChunkEntry& c, Batch* punch_later) {
  if (!punch_later) {  // the file goes as a whole, or its bytes are gone already
    eviction::release(r_, c);
    return;
  }
  eviction::invalidate(r_, c, kEvicting | process_);
  c.since_ms = monotonic_ms();
  punch_later->push_back(pending_locked(c));
}

void Cache::drop_chunks_locked(const Object& o, Batch* punch_later) {
  const ObjectEntry& e = objects()[o.slot];
  for (std::uint64_t i = 0; i < o.chunks && e.chunk_entries; ++i)
    if (ChunkEntry* k = find_locked(o.slot, o.generation, i); k && !is_evicting(k->state.load()))
      drop_locked(*k, punch_later);
}

void Cache::finish_evictions(Batch& batch) {
  if (batch.empty()) return;
  at("evict:invalidated");
  // Step 2: punch, outside the node lock. One open per data file of the batch.
  std::string open_path;
  int fd = -1;
  for (const Pending& v : batch) {
    if (v.path != open_path) {
      if (fd >= 0) ::close(fd);
      open_path = v.path;
      fd = ::open(v.path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      struct stat st;
      if (fd >= 0 && (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_ino) != v.inode)) {
        ::close(fd);  // not the file the chunk was in: its pages went with that file
        fd = -1;
      }
    }
    if (fd >= 0)
      ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(v.at),
                  static_cast<off_t>(v.bytes));
  }
  if (fd >= 0) ::close(fd);
  at("evict:punched");
  // Step 3: free the entries that are still ours.
  {
    Lock locked(*this);
    for (const Pending& v : batch)
      if (ChunkEntry* c = find_locked(v.object, v.generation, v.index);
          c && c->state.load() == (kEvicting | process_))
        eviction::release(r_, *c);
  }
  at("evict:freed");
  batch.clear();
}

bool Cache::make_room_locked(std::uint64_t bytes, Batch& batch) {
  if (eviction::fits(r_, bytes)) return true;
  auto alive = [this](std::uint32_t p) { return alive_locked(p); };
  eviction::Pins live(r_, alive);
  ChunkEntry* c = chunks();
  // Evictions that a dead process left half done: ours to finish.
  for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)
    if (std::uint32_t s = c[k].state.load(); is_evicting(s) && !alive_locked(owner_of(s))) {
      c[k].state.store(kEvicting | process_);
      batch.push_back(pending_locked(c[k]));
    }
  for (std::uint32_t k : eviction::choose(r_, live, bytes)) {
    header_->counters.evicted_bytes += c[k].bytes;
    drop_locked(c[k], &batch);
  }
  return false;
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
      // generation and crc_verified are read without the lock (verified(), server_crc()): the
      // generation changes first, so a reader never pairs the old version's flag with a new one.
      __atomic_store_n(&e.generation, e.generation + 1, __ATOMIC_RELEASE);
      __atomic_store_n(&e.crc_verified, 0u, __ATOMIC_RELEASE);
      std::memcpy(e.id, id, sizeof id);
      e.identity_len = static_cast<std::uint32_t>(material.size());
      std::memcpy(e.identity, material.data(), material.size());
      e.size = key.size;
      e.crc64 = 0;
      e.has_crc = 0;
      e.chunk_entries = e.ready_chunks = e.crc_failed = 0;
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
    drop_chunks_locked(*handle, nullptr);
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
    if (std::uint32_t s = c[k].state.load(); is_fetching(s) || is_evicting(s)) busy[c[k].object] = true;
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
      drop_locked(c[k], nullptr);  // the file goes as a whole, below
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
  // At most one eviction batch per claim: when the room it made is gone again (others took it),
  // or nothing could be evicted (pinned or in flight), the chunk is read past the cache.
  for (int round = 0;; ++round) {
    Batch batch;
    bool room = false;
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
      room = make_room_locked(round_page(bytes), batch);
      if (room) {
        ChunkEntry* c = table::insert(r_, o.slot, o.generation, index);
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
    }
    if (room) break;
    bool evicted = !batch.empty();
    finish_evictions(batch);
    if (!evicted || round > 0) return Claim::uncached;
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
  std::uint32_t owner = owner_of(c.state.load());
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
    Batch left;  // an eviction whose owner died: ours to finish
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
        std::uint32_t owner = owner_of(seen);
        if (is_evicting(seen)) {
          if (owner != process_ && !alive_locked(owner)) {
            c->state.store(kEvicting | process_);
            left.push_back(pending_locked(*c));
          } else if (owner != process_ && stalled_locked(owner, *c)) {
            return Claim::uncached;  // a stopped evictor's range is never punched by another
          }
        } else if (owner != process_) {
          if (!alive_locked(owner)) return take_over_locked(o, index, *c, ref, "has exited");
          if (stalled_locked(owner, *c))
            return take_over_locked(o, index, *c, ref,
                                    ("made no progress for " +
                                     (lease_ms_ % 1000 ? std::to_string(lease_ms_) + " ms"
                                                       : std::to_string(lease_ms_ / 1000) + " s") +
                                     " (stopped or stuck)")
                                        .c_str());
        }
        word = &c->state;
      }
    }
    if (!left.empty()) {
      finish_evictions(left);
      continue;
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
  Batch dropped;
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
        drop_locked(*c, &dropped);
      }
    } else {
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
          __atomic_store_n(&e.crc_verified, 1u, __ATOMIC_RELEASE);
          header_->counters.crc_checked++;
        } else if (complete_set) {
          // Sticky: every later read of this version fails too, in every process (a reopen after
          // the object changes is a new version).
          header_->counters.crc_mismatches++;
          e.crc_failed = 1;
          drop_chunks_locked(o, &dropped);
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
  }
  finish_evictions(dropped);
  if (mismatch) return *mismatch;
  return ok_status();
}

void Cache::abandon(Object& o, std::uint64_t index, const ChunkRef& claim) {
  if (unusable()) return;
  header_->counters.inflight_requests--;
  Batch dropped;
  {
    Lock locked(*this);
    ChunkEntry* c = find_locked(o.slot, o.generation, index);
    if (c && c->state.load() == (kFetching | process_) && c->ticket == claim.ticket)
      drop_locked(*c, &dropped);
  }
  finish_evictions(dropped);
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
  drop_chunks_locked(o, nullptr);
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
  if (e.has_crc.load() || __atomic_load_n(&e.generation, __ATOMIC_ACQUIRE) != o.generation) return;
  Lock locked(*this);
  if (e.has_crc.load() || e.generation != o.generation) return;
  e.crc64 = crc;
  e.has_crc = 1;
}

std::optional<std::uint64_t> Cache::server_crc(const Object& o) const {
  if (unusable()) return std::nullopt;
  // Lock-free (every read of an object not yet verified asks): the CRC is published before
  // has_crc, and the generation, read last, says the slot still holds this version.
  const ObjectEntry& e = objects()[o.slot];
  if (!e.has_crc.load(std::memory_order_acquire)) return std::nullopt;
  std::uint64_t crc = e.crc64.load(std::memory_order_acquire);
  if (__atomic_load_n(&e.generation, __ATOMIC_ACQUIRE) != o.generation) return std::nullopt;  // reused
  return crc;
}

bool Cache::verified(const Object& o) const {
  // Asked on every read: lock-free, and once true it stays true for this handle (this version's
  // bytes matched the server's CRC64 as a whole; a later damage report fails claims instead).
  if (o.verified.load(std::memory_order_relaxed)) return true;
  if (unusable()) return false;
  const ObjectEntry& e = objects()[o.slot];
  bool yes = __atomic_load_n(&e.crc_verified, __ATOMIC_ACQUIRE) != 0 &&
             __atomic_load_n(&e.generation, __ATOMIC_ACQUIRE) == o.generation;
  if (yes) o.verified.store(true, std::memory_order_relaxed);
  return yes;
}

void Cache::mark_damaged(Object& o) {
  if (unusable()) return;
  Batch dropped;
  {
    Lock locked(*this);
    ObjectEntry& e = objects()[o.slot];
    if (e.used != 1 || e.generation != o.generation || e.crc_failed) return;
    header_->counters.crc_mismatches++;
    e.crc_failed = 1;
    drop_chunks_locked(o, &dropped);
  }
  finish_evictions(dropped);
}

void Cache::count_served(Object& o, std::uint64_t bytes, bool waited) {
  if (unusable()) return;
  header_->counters.served_bytes += bytes;
  if (waited) header_->counters.waited_bytes += bytes;
  ObjectEntry& e = objects()[o.slot];
  if (__atomic_load_n(&e.generation, __ATOMIC_ACQUIRE) == o.generation) e.served_bytes += bytes;
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
  return eviction::pinned_bytes(
      r_, [this](std::uint32_t p) { return alive_locked(p); }, extra);
}

void Cache::unpin(std::uint32_t slot) {
  if (unusable()) return;
  Lock locked(*this);
  PinEntry& p = pins()[slot];
  if (p.used && p.process == process_) p.used = 0;
}

Cache::VerifyReport Cache::verify() {
  VerifyReport report;
  if (unusable() || read_only_) return report;
  struct Item {
    Pending where;
    std::uint32_t slot, seq;
    std::uint64_t crc;
    std::string name;
  };
  std::vector<Item> items;
  {
    Lock locked(*this);
    for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k) {
      ChunkEntry& c = chunks()[k];
      if (c.state.load() != kReady) continue;
      items.push_back({pending_locked(c), k, c.seq.load(), c.crc64, objects()[c.object].name});
    }
  }
  // Reading and hashing happen outside the node lock; a chunk evicted or refetched meanwhile
  // (seq changed) is not judged.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.where.path, a.where.at) < std::tie(b.where.path, b.where.at);
  });
  std::vector<char> buf(chunk_size_);
  std::string open_path;
  int fd = -1;
  for (const Item& it : items) {
    if (it.where.path != open_path) {
      if (fd >= 0) ::close(fd);
      open_path = it.where.path;
      fd = ::open(it.where.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      struct stat st;
      if (fd >= 0 && (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_ino) != it.where.inode)) {
        ::close(fd);  // replaced behind the table's back: object() drops those chunks on next use
        fd = -1;
      }
    }
    if (fd < 0) continue;
    ssize_t got = ::pread(fd, buf.data(), it.where.bytes, static_cast<off_t>(it.where.at));
    std::uint64_t crc = got > 0 ? util::crc64_update(0, buf.data(), static_cast<std::size_t>(got)) : 0;
    ChunkRef ref{it.slot, it.seq, 0, it.crc};
    if (!still_valid(ref)) continue;
    ++report.chunks;
    report.bytes += it.where.bytes;
    if (got == static_cast<ssize_t>(it.where.bytes) && crc == it.crc) continue;
    Batch dropped;
    {
      Lock locked(*this);
      ChunkEntry* c = find_locked(it.where.object, it.where.generation, it.where.index);
      if (c && c->state.load() == kReady && c->seq.load() == it.seq) {
        ++report.mismatches;
        report.dropped.push_back(it.name + " chunk " + std::to_string(it.where.index));
        log::warn("cache " + dir_ + ": chunk " + std::to_string(it.where.index) + " of " + it.name +
                  " differs from the bytes its fetcher stored (the data file was overwritten); dropping it "
                  "(fetched again when read)");
        drop_locked(*c, &dropped);
      }
    }
    finish_evictions(dropped);
  }
  if (fd >= 0) ::close(fd);
  return report;
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
  std::string dir = cache_directory(config);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return ok_status();  // nothing to clear
  if (auto owned = own_directory(dir); !owned) return owned.error();
  control::DirLock lock(dir);
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
  control::remove_contents(dir);
  return ok_status();
}

void Cache::after_fork_child(std::vector<std::uint32_t>& inherited) {
  if (unusable()) return;
  new (&objects_mu_) std::mutex;
  // Our copy of the parent's `procs` descriptor shares its lock: were we to keep it, the parent
  // would look alive after its death for as long as we live. Take a slot of our own instead.
  if (live_.fd() >= 0) ::close(live_.fd());
  live_ = Liveness(Liveness::open_file(dir_));
  Batch left;
  {
    Lock locked(*this);
    if (live_.fd() < 0 || !register_process_locked(left)) return;
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
  }
  finish_evictions(left);
}

void Cache::detach() {
  if (read_only_ || !header_ || detached_) return;
  if (unusable()) {
    detached_ = true;  // the table is gone: nothing of ours to release in it
    return;
  }
  detached_ = true;
  bool last = false;
  std::optional<control::DirLock> dir_lock;  // before the mutex, as in attach: no one joins while we leave
  if (!persist_) dir_lock.emplace(dir_);
  {
    // Our fetches in flight are dropped while we still hold our slot: once it is released, another
    // process may take it, and our evictions with it.
    Batch dropped;
    {
      Lock locked(*this);
      ChunkEntry* c = chunks();
      for (std::uint32_t k = 0; k < header_->chunk_capacity; ++k)
        if (c[k].state.load() == (kFetching | process_)) drop_locked(c[k], &dropped);
    }
    finish_evictions(dropped);
  }
  {
    Lock locked(*this);
    PinEntry* pin = pins();
    for (std::uint32_t k = 0; k < kPinCapacity; ++k)
      if (pin[k].used && pin[k].process == process_) pin[k].used = 0;
    processes()[process_].pid = 0;
    live_.release(process_);
    last = true;
    for (std::uint32_t i = 0; i < kProcessCapacity && last; ++i)
      if (processes()[i].pid != 0 && alive_locked(i)) last = false;
  }
  if (!persist_ && last) control::remove_contents(dir_);
}

}  // namespace ossshim::cache
