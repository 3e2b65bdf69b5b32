// log — see include/evwheel/log.hpp.
#include "evwheel/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace evwheel {

namespace {

void to_stderr(LogLevel level, std::string_view message) {
  std::fprintf(stderr, "evwheel: %s: %.*s\n", to_string(level), static_cast<int>(message.size()),
               message.data());
}

struct Logger {
  std::mutex mutex;
  LogSink sink = to_stderr;
  std::atomic<uint8_t> min_level{static_cast<uint8_t>(LogLevel::error)};
};

// A function-local static: logging works during other objects' static initialisation too.
Logger& logger() {
  static Logger instance;
  return instance;
}

}  // namespace

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "unknown";
}

void set_log_sink(LogSink sink, LogLevel min_level) {
  Logger& state = logger();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (sink) {
    state.sink = std::move(sink);
    state.min_level.store(static_cast<uint8_t>(min_level), std::memory_order_relaxed);
  } else {
    state.sink = to_stderr;
    state.min_level.store(static_cast<uint8_t>(LogLevel::error), std::memory_order_relaxed);
  }
}

bool log_enabled(LogLevel level) noexcept {
  return static_cast<uint8_t>(level) >= logger().min_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, const char* format, ...) noexcept {
  if (!log_enabled(level)) return;
  char message[kMaxLogMessage + 1];
  va_list args;
  va_start(args, format);
  int length = std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (length < 0) return;
  std::size_t size = std::min<std::size_t>(static_cast<std::size_t>(length), kMaxLogMessage);
  Logger& state = logger();
  std::lock_guard<std::mutex> lock(state.mutex);
  try {
    state.sink(level, std::string_view(message, size));
  } catch (...) {
    // A failing sink must not take the loop down with it: the message is lost, nothing else.
  }
}

}  // namespace evwheel
