// Transport as libcurl linked in: tools and tests (libossshim.so uses shim/net.cpp instead).
#include "http/curl.hpp"

namespace ossshim::http {

Transport::Transport(const Config& config) : impl_(new CurlTransport(config)) {}
Transport::~Transport() {
  delete impl_;
}
Result<Response> Transport::execute(Exchange& exchange) {
  return impl_->execute(exchange);
}
const Counters& Transport::counters() const {
  return impl_->counters();
}
void Transport::abandon_after_fork() {
  impl_->abandon_after_fork();
}

}  // namespace ossshim::http
