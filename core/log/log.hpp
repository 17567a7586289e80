// One-line logging to stderr or a file. Safe from any thread; writes with one write(2) per
// line so lines from several processes never interleave. Never pass a secret to it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ossshim::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

// Parses "error", "warn", "info", "debug" (case-insensitive).
bool parse_level(std::string_view text, Level& out);
std::string_view level_name(Level level);

// Configure once (the shim at start-up, tools from main). path empty means stderr.
// Returns false (and keeps logging to stderr) if the file cannot be opened; `why` says why.
// A file's lines start with an ISO-8601 UTC timestamp; past `rotate_at` bytes (0: never) the
// file is renamed PATH.1 (replacing the previous one) and a new PATH is started.
bool configure(Level level, const std::string& path, std::string* why = nullptr, std::uint64_t rotate_at = 0);
bool enabled(Level level);

// "ossshim[pid] LEVEL: message\n" (a log file: "2026-12-02T18:45:01.123Z ossshim[pid] LEVEL: ...")
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
