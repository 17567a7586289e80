// Locks across fork(): one registry of (prepare, parent, child) hooks, run in one global lock
// order. A forked child has only the thread that called fork; a lock another thread held at that
// moment would stay held in the child for ever, and the data it guarded could be half-changed.
// So prepare takes every registered lock (waiting for their holders to finish), and parent and
// child release them: the child starts with every structure consistent and every lock free.
//
// Deadlock freedom rests on one rule: a thread holding a lock of rank R takes only locks of
// higher ranks (and unregistered ones). prepare acquires in ascending rank, so while it waits
// for a lock of rank R it holds only lower ranks, none of which the holder of R can be waiting
// for. Registering (add/remove) must happen under no registered lock: prepare holds the
// registry's own lock throughout.
//
// What is not registered, on purpose: locks a child never takes (a parent's sink, a Writer's
// parts, a worker's job), the node-wide cache's process-shared mutex (shared memory: the child
// waits for the parent's holder like any other process) and libraries' own locks.
#pragma once

#include <cstdint>
#include <mutex>

namespace ossshim::forksafe {

// The global lock order, outermost first. Gaps leave room; equal ranks run in registration order.
enum class Rank : int {
  stdio_feeders = 10,    // shim/stdio.cpp: freopen'ed streams' feeder table
  sink_table = 20,       // shim/sinks.cpp: redirected stdout/stderr
  dir_streams = 25,      // shim/dirs.cpp: each open DIR stream (held while a listing loads)
  open_files = 30,       // vfs: the live OpenFile set; each file's offset_mu and dir_mu
  writers = 40,          // upload: the live Writer set; each Writer's operation lock
  open_file_state = 50,  // vfs: each file's cache_mu and lock_mu
  vfs_tables = 60,       // vfs: files being written, attribute cache, private chunk cache, CRC checks
  whole_crc = 65,        // vfs: each live whole-object CRC64 check (whole_crc.cpp)
  vfs_warnings = 68,     // vfs: the causes already warned about
  mappings = 70,         // shim/files.cpp: the shared-cache mappings
  cwd = 75,              // shim: the virtual current directory
  cache_handles = 80,    // cache: this process's object handles
  uploader = 90,         // upload: the in-flight budget
  fetcher = 100,         // fetch: worker pools' queues
  transport = 110,       // http: the connection pool
  fd_table = 200,        // shim: the descriptor table's gate (innermost: taken inside all others)
};

using Fn = void (*)(void* ctx);
struct Hooks {
  Fn prepare = nullptr;  // acquire (may block until holders finish)
  Fn parent = nullptr;   // release, in the parent
  Fn child = nullptr;    // release or re-initialise, in the child (its only thread)
};

// Registers hooks; returns an id for remove(). Not under any registered lock.
std::uint64_t add(Rank rank, Hooks hooks, void* ctx);
void remove(std::uint64_t id);

// A mutex that lives for ever (a static), locked before fork and unlocked after it.
void add_mutex(Rank rank, std::mutex& mu);

// A mutex locked before fork and unlocked after it in parent and child, for the lifetime of this
// object (declare it right after the mutex it guards).
class Guard {
 public:
  Guard(Rank rank, std::mutex& mu);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  std::uint64_t id_;
};

// Objects of one kind whose locks are taken around fork: each is a member of the set for its
// lifetime. Constant-initialised, so usable before any constructor runs. The set's hooks iterate
// it under `mu` (held from the first prepare hook of the set to its release).
class Set {
 public:
  struct Member {
    Member* prev = nullptr;
    Member* next = nullptr;
    void* owner = nullptr;
  };
  constexpr Set() = default;
  void insert(Member& m, void* owner);
  void erase(Member& m);
  // Calls f(owner) for every member; the caller holds `mu` (from a fork hook).
  template <class F>
  void each(F f) {
    for (Member* m = head_; m; m = m->next) f(m->owner);
  }
  std::mutex mu;

 private:
  Member* head_ = nullptr;
};

// Run around fork(): install() registers them with pthread_atfork once (the shim calls them from
// its own handlers instead, to keep its start-up lock outermost).
void prepare();
void parent();
void child();
void install();

}  // namespace ossshim::forksafe
