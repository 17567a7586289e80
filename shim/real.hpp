// The next definition of a libc symbol (glibc's), resolved once, safely from any thread.
#pragma once

#include <dlfcn.h>

namespace ossshim::shim {

template <class Fn>
Fn next_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace ossshim::shim

// REAL(open)(path, flags, mode): calls glibc's open.
#define REAL(name)                                                           \
  ([]() {                                                                    \
    static auto fn = ::ossshim::shim::next_symbol<decltype(&::name)>(#name); \
    return fn;                                                               \
  }())
