// signals — SIGTERM, SIGINT and SIGHUP read from a signalfd on a reactor's thread, so the
// user's reaction runs as an ordinary loop callback: no code runs inside a signal handler, and
// nothing async-signal-unsafe can happen there.
//
// Signal masks are per thread, and a process-directed signal goes to any one thread that does
// not block it (killing the process by default).  So block_signals() must run in main() before
// any thread is created — threads inherit the mask — and every thread keeps them blocked; then
// the signals stay pending until a signalfd reads them.  ReactorPool threads start with every
// signal blocked; Prefork workers start with these three blocked.  The signals stay blocked
// after a Signals is destroyed, so a late SIGTERM cannot kill a process halfway through its
// teardown.
#pragma once

#include <signal.h>

#include <functional>

#include "evwheel/reactor.hpp"

namespace evwheel {

// SIGTERM, SIGINT and SIGHUP.
sigset_t shutdown_signals() noexcept;

// Blocks shutdown_signals() in the calling thread (and threads it creates later).
// Throws std::system_error if the mask cannot be changed.
void block_signals();

class Signals final : private IoHandler {
 public:
  // Blocks shutdown_signals() in the calling thread and reads them on `reactor`: SIGTERM and
  // SIGINT call on_terminate(signal) — typically starting a Shutdown — and SIGHUP calls
  // on_hangup (conventionally: reload, reopen logs); without on_hangup SIGHUP is ignored.
  // Throws std::invalid_argument if on_terminate is empty, std::system_error if the signalfd
  // cannot be made.
  Signals(Reactor& reactor, std::function<void(int signal)> on_terminate,
          std::function<void()> on_hangup = {});
  ~Signals();
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;

 private:
  void on_io(uint32_t events) override;

  Reactor& reactor_;
  std::function<void(int)> on_terminate_;
  std::function<void()> on_hangup_;
  int fd_ = -1;
};

}  // namespace evwheel
