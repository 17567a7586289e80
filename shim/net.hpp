// libossshim-net.so, seen from the shim: loaded once, on the first virtual access.
#pragma once

#include <string>

#include "net/api.hpp"

namespace ossshim::shim {

// The net library's table, loading it on the first call (thread-safe). nullptr when it cannot be
// loaded; `why` (if given) then says what, where, why and the fix, in one line.
const ossshim_net_api* load_net(std::string* why = nullptr);
// Whether it is loaded, without loading it (a cheap test for the pass-through path).
bool net_loaded();

// Arms the crash reporter (crash.cpp) with the net library's unwinder. Called once the file system
// is in use: a process that never touched the prefix has no shim frames to report.
void install_crash_reporter(const ossshim_net_api& api);

}  // namespace ossshim::shim
