#include "util/forksafe.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstddef>

namespace ossshim::forksafe {

namespace {
struct Entry {
  int rank;
  std::uint64_t id;
  Hooks hooks;
  void* ctx;
};
// Constant-initialised and never destroyed (fork and exit can come in any order with other
// libraries' destructors). The entries registered at load (a few dozen) fit the static array: a
// process that never allocates (/bin/true) is not made to start malloc (3 system calls: tcache's
// getrandom and two brk) by preloading the shim. Beyond it, a heap array that doubles.
constexpr std::size_t kFixed = 64;
constinit std::mutex g_mu;
constinit Entry g_fixed[kFixed] = {};
Entry* g_entries = g_fixed;  // ascending rank, then registration order
std::size_t g_count = 0, g_capacity = kFixed;
std::uint64_t g_next_id = 1;
}  // namespace

std::uint64_t add(Rank rank, Hooks hooks, void* ctx) {
  std::lock_guard lock(g_mu);
  if (g_count == g_capacity) {
    auto* grown = new Entry[g_capacity * 2];
    std::copy(g_entries, g_entries + g_count, grown);
    if (g_entries != g_fixed) delete[] g_entries;
    g_entries = grown;
    g_capacity *= 2;
  }
  Entry e{static_cast<int>(rank), g_next_id++, hooks, ctx};
  Entry* at = std::upper_bound(g_entries, g_entries + g_count, e.rank,
                               [](int r, const Entry& x) { return r < x.rank; });
  std::copy_backward(at, g_entries + g_count, g_entries + g_count + 1);
  *at = e;
  ++g_count;
  return e.id;
}

void remove(std::uint64_t id) {
  std::lock_guard lock(g_mu);
  Entry* end = std::remove_if(g_entries, g_entries + g_count, [&](const Entry& e) { return e.id == id; });
  g_count = static_cast<std::size_t>(end - g_entries);
}

namespace {
void lock_mutex(void* mu) {
  static_cast<std::mutex*>(mu)->lock();
}
void unlock_mutex(void* mu) {
  static_cast<std::mutex*>(mu)->unlock();
}
}  // namespace

void add_mutex(Rank rank, std::mutex& mu) {
  add(rank, Hooks{lock_mutex, unlock_mutex, unlock_mutex}, &mu);
}

Guard::Guard(Rank rank, std::mutex& mu)
    : id_(add(rank, Hooks{lock_mutex, unlock_mutex, unlock_mutex}, &mu)) {}
Guard::~Guard() {
  remove(id_);
}

void Set::insert(Member& m, void* owner) {
  std::lock_guard lock(mu);
  m.owner = owner;
  m.prev = nullptr;
  m.next = head_;
  if (head_) head_->prev = &m;
  head_ = &m;
}

void Set::erase(Member& m) {
  std::lock_guard lock(mu);
  if (m.prev)
    m.prev->next = m.next;
  else if (head_ == &m)
    head_ = m.next;
  if (m.next) m.next->prev = m.prev;
  m.prev = m.next = nullptr;
}

void prepare() {
  g_mu.lock();  // held until parent() or child(): the entries cannot change meanwhile
  for (std::size_t i = 0; i < g_count; ++i)
    if (g_entries[i].hooks.prepare) g_entries[i].hooks.prepare(g_entries[i].ctx);
}

namespace {
// Releases in the reverse order of acquisition.
void release(Fn Hooks::*which) {
  for (std::size_t i = g_count; i-- > 0;)
    if (g_entries[i].hooks.*which) (g_entries[i].hooks.*which)(g_entries[i].ctx);
  g_mu.unlock();
}
}  // namespace

void parent() {
  release(&Hooks::parent);
}

void child() {
  release(&Hooks::child);
}

void install() {
  static const bool installed = pthread_atfork(prepare, parent, child) == 0;
  (void)installed;
}

}  // namespace ossshim::forksafe
