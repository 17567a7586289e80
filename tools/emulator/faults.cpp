#include "faults.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "util/size.hpp"

namespace ossemu {

bool FaultSpec::empty() const {
  return first_byte_ms == 0 && bandwidth == 0 && error_status == 0 && reset_after < 0 && truncate_after < 0 &&
         replace_after < 0 && reset_upload_after < 0 && corrupt_upload < 0 && !wrong_crc;
}

std::optional<std::string> parse_faults(const std::string& spec, FaultSpec& out) {
  FaultSpec f;
  f.text = spec;
  std::size_t start = 0;
  while (start < spec.size()) {
    std::size_t amp = spec.find('&', start);
    std::string part = spec.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    start = amp == std::string::npos ? spec.size() : amp + 1;
    if (part.empty()) continue;
    std::size_t eq = part.find('=');
    if (eq == std::string::npos) return "fault '" + part + "' needs a value (name=value)";
    std::string name = part.substr(0, eq), value = part.substr(eq + 1);
    auto number = [&](std::int64_t& dst) -> bool {
      auto v = ossshim::util::parse_size(value);
      if (!v) return false;
      dst = static_cast<std::int64_t>(*v);
      return true;
    };
    std::int64_t n = 0;
    bool ok = true;
    if (name == "first_byte_ms")
      ok = number(n), f.first_byte_ms = static_cast<std::uint32_t>(n);
    else if (name == "bandwidth")
      ok = number(n), f.bandwidth = static_cast<std::uint64_t>(n);
    else if (name == "error_status") {
      ok = number(n) && n >= 400 && n <= 599;
      f.error_status = static_cast<int>(n);
    } else if (name == "error_code")
      f.error_code = value;
    else if (name == "error_count")
      ok = number(f.error_count);
    else if (name == "error_percent") {
      char* end = nullptr;
      f.error_percent = std::strtod(value.c_str(), &end);
      ok = end && *end == '\0' && f.error_percent >= 0 && f.error_percent <= 100;
    } else if (name == "reset_after")
      ok = number(f.reset_after);
    else if (name == "truncate_after")
      ok = number(f.truncate_after);
    else if (name == "replace_after")
      ok = number(f.replace_after);
    else if (name == "reset_upload_after")
      ok = number(f.reset_upload_after);
    else if (name == "corrupt_upload")
      ok = number(f.corrupt_upload);
    else if (name == "wrong_crc") {
      ok = value == "1" || value == "true" || value == "0" || value == "false";
      f.wrong_crc = value == "1" || value == "true";
    } else if (name == "match")
      f.match = value;
    else if (name == "ops") {
      std::size_t s = 0;
      while (s <= value.size()) {
        std::size_t c = value.find(',', s);
        std::string op = value.substr(s, c == std::string::npos ? std::string::npos : c - s);
        if (!op.empty()) f.ops.push_back(op);
        if (c == std::string::npos) break;
        s = c + 1;
      }
    } else if (name == "count")
      ok = number(f.count);
    else
      return "unknown fault '" + name +
             "' (known: first_byte_ms bandwidth error_status error_code error_count "
             "error_percent reset_after truncate_after replace_after reset_upload_after corrupt_upload "
             "wrong_crc match ops count)";
    if (!ok) return "fault " + name + ": bad value '" + value + "'";
  }
  if ((f.error_count >= 0 || f.error_percent >= 0) && f.error_status == 0) f.error_status = 503;
  if (f.error_code.empty() && f.error_status != 0) {
    // The codes the statuses mean on their own; any other status needs its code named.
    if (f.error_status == 500)
      f.error_code = "InternalError";
    else if (f.error_status == 503)
      f.error_code = "ServiceUnavailable";
    else if (f.error_status == 507)
      f.error_code = "InsufficientStorage";
    else
      return "fault error_status=" + std::to_string(f.error_status) +
             " needs error_code=CODE (e.g. error_status=403&error_code=QuotaExceeded)";
  }
  out = std::move(f);
  return std::nullopt;
}

void Faults::set(FaultSpec spec) {
  std::lock_guard lock(mu_);
  spec_ = std::move(spec);
  armed_ = !spec_.empty();
  applied_ = 0;
  errors_left_ = spec_.error_count;
}

void Faults::clear() {
  set(FaultSpec{});
}

std::string Faults::describe() {
  std::lock_guard lock(mu_);
  return armed_ ? spec_.text : "";
}

FaultDecision Faults::decide(const std::string& op, const std::string& object) {
  FaultDecision d;
  std::lock_guard lock(mu_);
  if (!armed_) return d;
  if (!spec_.match.empty() && !object.starts_with(spec_.match)) return d;
  if (!spec_.ops.empty() && std::find(spec_.ops.begin(), spec_.ops.end(), op) == spec_.ops.end()) return d;
  d.paced = spec_.bandwidth > 0;
  if (spec_.count >= 0 && applied_ >= spec_.count) return d;
  ++applied_;
  d.first_byte_ms = spec_.first_byte_ms;
  d.wrong_crc = spec_.wrong_crc;
  if (spec_.error_status != 0) {
    bool fail = true;
    if (spec_.error_count >= 0) {
      fail = errors_left_ > 0;
      if (fail) --errors_left_;
    } else if (spec_.error_percent >= 0) {
      static thread_local std::mt19937 rng{std::random_device{}()};
      fail = std::uniform_real_distribution<double>(0, 100)(rng) < spec_.error_percent;
    }
    if (fail) {
      d.error_status = spec_.error_status;
      d.error_code = spec_.error_code;
      return d;
    }
  }
  d.reset_after = spec_.reset_after;
  d.truncate_after = spec_.truncate_after;
  d.replace_after = spec_.replace_after;
  d.reset_upload_after = spec_.reset_upload_after;
  d.corrupt_upload = spec_.corrupt_upload;
  return d;
}

void Faults::pace(std::size_t bytes) {
  std::chrono::steady_clock::time_point until;
  {
    std::lock_guard lock(mu_);
    if (!armed_ || spec_.bandwidth == 0) return;
    auto now = std::chrono::steady_clock::now();
    if (next_send_ < now) next_send_ = now;
    next_send_ += std::chrono::nanoseconds(
        static_cast<std::int64_t>(1e9 * static_cast<double>(bytes) / static_cast<double>(spec_.bandwidth)));
    until = next_send_;
  }
  std::this_thread::sleep_until(until);
}

}  // namespace ossemu
