// One-line logging to stderr or a file. Safe from any thread; writes with one write(2) per
// line so lines from several processes never interleave. Never pass a secret to it.
#pragma once

#include <string>
#include <string_view>

namespace ossshim::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

// Parses "error", "warn", "info", "debug" (case-insensitive).
bool parse_level(std::string_view text, Level& out);
std::string_view level_name(Level level);

// Configure once (the shim at start-up, tools from main). path empty means stderr.
// Returns false (and keeps logging to stderr) if the file cannot be opened; `why` says why.
bool configure(Level level, const std::string& path, std::string* why = nullptr);
bool enabled(Level level);

// "ossshim[pid] LEVEL: message\n"
void write(Level level, std::string_view message);

inline void error(std::string_view m) {
  write(Level::error, m);
}
inline void warn(std::string_view m) {
  write(Level::warn, m);
}
inline void info(std::string_view m) {
  write(Level::info, m);
}
inline void debug(std::string_view m) {
  if (enabled(Level::debug)) write(Level::debug, m);
}

}  // namespace ossshim::log
