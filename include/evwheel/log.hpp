// log — where evwheel reports what an operator needs to know: callback exceptions, accept
// failures and shedding, epoll/timerfd failures.  One process-wide sink.
//
// The default sink writes errors to stderr and drops everything else.  A message below the
// sink's level is not even formatted, and formatting never allocates (a fixed buffer on the
// stack; longer messages are cut), so logging costs nothing on the paths that run per event.
//
// Threading: set_log_sink() before starting reactors (or between runs).  Calls into the sink
// are serialised, so a sink need not be thread-safe; it must not call back into evwheel's log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace evwheel {

enum class LogLevel : uint8_t { debug, info, warning, error };
const char* to_string(LogLevel level) noexcept;

// Receives one message (no trailing newline); the view is valid only during the call.
using LogSink = std::function<void(LogLevel, std::string_view message)>;

// Installs `sink` for messages at `min_level` and above; a null sink restores the default
// (errors to stderr).
void set_log_sink(LogSink sink, LogLevel min_level = LogLevel::info);

// Whether a message at `level` would reach the sink (one relaxed atomic load).
bool log_enabled(LogLevel level) noexcept;

// printf-style; messages longer than kMaxLogMessage bytes are cut.
constexpr std::size_t kMaxLogMessage = 512;
void log(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace evwheel
