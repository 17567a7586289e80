#include "cache/guard.hpp"

#include <sys/mman.h>

#include <cstdint>

namespace ossshim::cache {

namespace {
struct Guarded {
  std::atomic<std::uintptr_t> base{0};
  std::atomic<std::size_t> len{0};
  std::atomic<std::atomic<bool>*> broken{nullptr};
};
constexpr int kGuards = 16;
Guarded guards[kGuards];
}  // namespace

bool guard_mapping(void* base, std::size_t len, std::atomic<bool>* broken) {
  for (auto& g : guards) {
    std::uintptr_t free = 0;
    if (!g.base.compare_exchange_strong(free, 1)) continue;  // 1: being filled in
    g.len.store(len);
    g.broken.store(broken);
    g.base.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_release);
    return true;
  }
  return false;
}

void unguard_mapping(void* base) {
  for (auto& g : guards)
    if (g.base.load() == reinterpret_cast<std::uintptr_t>(base)) g.base.store(0);
}

bool rescue_fault(void* addr) {
  auto at = reinterpret_cast<std::uintptr_t>(addr);
  for (auto& g : guards) {
    std::uintptr_t base = g.base.load(std::memory_order_acquire);
    if (base <= 1 || at < base || at >= base + g.len.load()) continue;
    // Zero pages in place of the whole table: every later access reads an empty, unusable table,
    // and the cache, seeing `broken`, stops using it.
    if (::mmap(reinterpret_cast<void*>(base), g.len.load(), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
      return false;
    if (auto* flag = g.broken.load()) flag->store(true);
    return true;
  }
  return false;
}

}  // namespace ossshim::cache
