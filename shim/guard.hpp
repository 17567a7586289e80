// The re-entrancy guard: while a thread runs the shim's own work (start-up of the file system,
// everything inside libossshim-net.so: libcurl, OpenSSL, the resolver), the libc calls it makes
// land in the shim's interposers again; with the guard up they pass straight through, whatever
// their path or descriptor. A counter, so nested guards (a transport callback that signs) nest.
#pragma once

namespace ossshim::shim {

// initial-exec: one %fs-relative load, never a call into the dynamic loader (which could allocate
// or re-enter the shim).
inline constinit thread_local int t_own_calls __attribute__((tls_model("initial-exec"))) = 0;

inline bool in_own_call() {
  return t_own_calls != 0;
}

struct OwnCall {
  OwnCall() { ++t_own_calls; }
  ~OwnCall() { --t_own_calls; }
  OwnCall(const OwnCall&) = delete;
  OwnCall& operator=(const OwnCall&) = delete;
};

}  // namespace ossshim::shim
