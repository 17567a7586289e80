#include "vfs/whole_crc.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

#include "util/crc64.hpp"

namespace ossshim::vfs {

namespace {
constinit forksafe::Set g_checks;
void lock_checks(void*) {
  g_checks.mu.lock();
  g_checks.each([](void* p) { static_cast<WholeCrc*>(p)->fork_lock(); });
}
void unlock_checks(void*) {
  g_checks.each([](void* p) { static_cast<WholeCrc*>(p)->fork_unlock(); });
  g_checks.mu.unlock();
}
const bool g_checks_fork_safe =
    (forksafe::add(forksafe::Rank::whole_crc, forksafe::Hooks{lock_checks, unlock_checks, unlock_checks},
                   nullptr),
     true);
}  // namespace

WholeCrc::WholeCrc(std::uint64_t size) : size_(size) {
  g_checks.insert(fork_member_, this);
}

WholeCrc::~WholeCrc() {
  g_checks.erase(fork_member_);
}

WholeCrc::State WholeCrc::add(std::uint64_t off, const char* data, std::size_t len) {
  std::lock_guard lock(mu_);
  if (state_ != State::pending || len == 0 || off >= size_) return state_;
  std::uint64_t end = std::min<std::uint64_t>(off + len, size_);
  // The gaps of [off, end) between the spans already folded in.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;
  std::uint64_t at = off;
  auto it = spans_.upper_bound(off);
  if (it != spans_.begin()) {
    auto before = std::prev(it);
    if (before->second.first > at) at = before->second.first;
  }
  for (; at < end; ++it) {
    std::uint64_t next = it == spans_.end() ? end : std::min(end, it->first);
    if (next > at) gaps.emplace_back(at, next);
    if (it == spans_.end()) break;
    at = std::max(at, it->second.first);
  }
  for (auto [from, to] : gaps)
    insert_locked(from, to, util::crc64_update(0, data + (from - off), static_cast<std::size_t>(to - from)));
  return settle_locked();
}

WholeCrc::State WholeCrc::add_known(std::uint64_t off, std::uint64_t len, std::uint64_t crc) {
  std::lock_guard lock(mu_);
  if (state_ != State::pending || len == 0 || off + len > size_) return state_;
  // Only a span disjoint from what is folded in can be used as a whole.
  auto it = spans_.upper_bound(off);
  if (it != spans_.end() && it->first < off + len) return state_;
  if (it != spans_.begin() && std::prev(it)->second.first > off) return state_;
  insert_locked(off, off + len, crc);
  return settle_locked();
}

void WholeCrc::insert_locked(std::uint64_t from, std::uint64_t to, std::uint64_t crc) {
  auto span = spans_.emplace(from, std::make_pair(to, crc)).first;
  // Join the span that ends where this one starts, and the one that starts where it ends.
  if (span != spans_.begin()) {
    auto left = std::prev(span);
    if (left->second.first == from) {
      left->second = {to, util::crc64_combine(left->second.second, crc, to - from)};
      spans_.erase(span);
      span = left;
    }
  }
  auto right = std::next(span);
  if (right != spans_.end() && right->first == span->second.first) {
    span->second = {right->second.first, util::crc64_combine(span->second.second, right->second.second,
                                                             right->second.first - right->first)};
    spans_.erase(right);
  }
}

WholeCrc::State WholeCrc::note_server(std::uint64_t crc) {
  std::lock_guard lock(mu_);
  if (!server_) server_ = crc;
  return settle_locked();
}

WholeCrc::State WholeCrc::settle_locked() {
  if (state_ != State::pending || !server_) return state_;
  bool whole = size_ == 0 ||
               (spans_.size() == 1 && spans_.begin()->first == 0 && spans_.begin()->second.first == size_);
  if (!whole) return state_;
  std::uint64_t got = size_ == 0 ? 0 : spans_.begin()->second.second;
  state_ = got == *server_ ? State::matched : State::mismatched;
  return state_;
}

WholeCrc::State WholeCrc::state() const {
  return state_.load(std::memory_order_acquire);  // asked on every read: no lock
}

std::uint64_t WholeCrc::computed() const {
  std::lock_guard lock(mu_);
  return spans_.size() == 1 ? spans_.begin()->second.second : 0;
}

std::uint64_t WholeCrc::expected() const {
  std::lock_guard lock(mu_);
  return server_.value_or(0);
}

}  // namespace ossshim::vfs
