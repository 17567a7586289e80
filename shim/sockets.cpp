// Descriptors libcurl makes for the shim: close-on-exec, so that programs the host process
// execs inherit only its own descriptors. curl 7.88 creates its wakeup and resolver socketpairs
// without SOCK_CLOEXEC (its TCP sockets come from the transport's open-socket callback).
#include <sys/socket.h>

#include "http/transport.hpp"
#include "real.hpp"

extern "C" {

int socketpair(int domain, int type, int protocol, int sv[2]) {
  if (ossshim::http::in_curl()) type |= SOCK_CLOEXEC;
  return REAL(socketpair)(domain, type, protocol, sv);
}

}  // extern "C"
