// Transport as libcurl linked in: tools and tests (libossshim.so uses shim/net.cpp instead).
#include "http/curl.hpp"
#include "util/forksafe.hpp"

namespace ossshim::http {

Transport::Transport(const Config& config) : impl_(new CurlTransport(config)) {
  watch_fork();
}
Transport::~Transport() {
  forksafe::remove(fork_hooks_);
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
void Transport::watch_fork() {
  auto in_child = [](void* t) { static_cast<Transport*>(t)->abandon_after_fork(); };
  fork_hooks_ = forksafe::add(forksafe::Rank::transport, forksafe::Hooks{nullptr, nullptr, in_child}, this);
}

}  // namespace ossshim::http
