// _exit and _Exit: what this process wrote stays written, as on a local file system, where bytes
// written to a descriptor are the kernel's once write() returns. dash, for one, ends every
// `sh -c` with _exit: without this, `sh -c 'echo hi' > /oss/b/f` stored nothing. stdio buffers are
// not flushed (that is what _exit is for, after fork); a vfork child does nothing here.
#include <unistd.h>

#include <cstdlib>

#include "real.hpp"
#include "shim.hpp"

using namespace ossshim::shim;

extern "C" {

void _exit(int status) {
  leave_at_exit(false);
  REAL(_exit)(status);
  __builtin_unreachable();
}

void _Exit(int status) {
  leave_at_exit(false);
  REAL(_Exit)(status);
  __builtin_unreachable();
}

}  // extern "C"
