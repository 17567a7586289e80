// Environment lookup, injectable so configuration and credentials can be tested without setenv.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace ossshim {

// getenv-like lookup. Returns nullopt when the variable is unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_env();

}  // namespace ossshim
