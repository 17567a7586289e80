// ossrun's subcommands on the shared cache and on uploads (commands.cpp). Each returns the exit code.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace ossrun {

// ossrun warm PATH...: fetches objects or whole prefixes into the shared cache.
int warm(const ossshim::Config& config, const std::vector<std::string>& paths);
// ossrun stat [--objects] [--watch SECONDS]: the cache's counters (repeated with --watch).
int stat(const ossshim::Config& config, bool objects, double watch);
// ossrun cache clear: empties the cache, or names the processes that use it.
int clear(const ossshim::Config& config);
// ossrun cache verify: re-reads every cached chunk, drops those whose CRC64 changed; 1 if any did.
int verify(const ossshim::Config& config);
// ossrun uploads [--abort] [--older-than DURATION] PATH...: lists the incomplete multipart uploads
// under each PATH (a file or directory under the prefix) and with --abort aborts them. `args` is
// everything after "uploads".
int uploads(const ossshim::Config& config, const std::vector<std::string>& args);

}  // namespace ossrun
