// Control-file mappings that another program could truncate under us (a user's `truncate`, a
// cleaner): a fault on such a mapping becomes a cache that is no longer used, not a SIGBUS that
// kills the program. The shim's fatal-signal handler asks rescue_fault() first.
#pragma once

#include <atomic>
#include <cstddef>

namespace ossshim::cache {

// Watches [base, base+len); on a fault there, the range is replaced by zero pages and *broken is
// set. At most a few mappings at once (one per attached cache); false when the table is full.
bool guard_mapping(void* base, std::size_t len, std::atomic<bool>* broken);
void unguard_mapping(void* base);
// In a SIGBUS handler (async-signal-safe): true when `addr` lies in a guarded mapping, which is
// now readable again; the faulting access can be retried.
bool rescue_fault(void* addr);

}  // namespace ossshim::cache
