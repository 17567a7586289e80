#include "util/error.hpp"

#include <cstring>

namespace ossshim {

std::string Error::to_string() const {
  std::string s = op.empty() ? "error" : op;
  if (!target.empty()) s += " " + target;
  s += ":";
  if (http_status != 0) s += " HTTP " + std::to_string(http_status);
  if (!code.empty()) s += " " + code;
  if (!message.empty()) s += (http_status != 0 || !code.empty()) ? " (" + message + ")" : " " + message;
  if (!request_id.empty()) s += " request-id " + request_id;
  if (err != 0) {
    const char* name = strerrorname_np(err);
    s += " [";
    s += name ? name : std::to_string(err);
    s += "]";
  }
  return s;
}

}  // namespace ossshim
