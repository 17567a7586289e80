#include "util/forksafe.hpp"

#include <pthread.h>

#include <algorithm>
#include <vector>

namespace ossshim::forksafe {

namespace {
struct Entry {
  int rank;
  std::uint64_t id;
  Hooks hooks;
  void* ctx;
};
// Constant-initialised; the vector is made on first use and never destroyed (fork and exit can
// come in any order with other libraries' destructors).
constinit std::mutex g_mu;
std::vector<Entry>* g_entries = nullptr;  // ascending rank, then registration order
std::uint64_t g_next_id = 1;
}  // namespace

std::uint64_t add(Rank rank, Hooks hooks, void* ctx) {
  std::lock_guard lock(g_mu);
  if (!g_entries) g_entries = new std::vector<Entry>;
  Entry e{static_cast<int>(rank), g_next_id++, hooks, ctx};
  auto at = std::upper_bound(g_entries->begin(), g_entries->end(), e.rank,
                             [](int r, const Entry& x) { return r < x.rank; });
  g_entries->insert(at, e);
  return e.id;
}

void remove(std::uint64_t id) {
  std::lock_guard lock(g_mu);
  if (!g_entries) return;
  std::erase_if(*g_entries, [&](const Entry& e) { return e.id == id; });
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
  if (!g_entries) return;
  for (const Entry& e : *g_entries)
    if (e.hooks.prepare) e.hooks.prepare(e.ctx);
}

namespace {
// Releases in the reverse order of acquisition.
void release(Fn Hooks::*which) {
  if (g_entries)
    for (auto it = g_entries->rbegin(); it != g_entries->rend(); ++it)
      if (it->hooks.*which) (it->hooks.*which)(it->ctx);
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
