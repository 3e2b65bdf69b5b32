// signals — SIGINT/SIGTERM end the loop: they are read from a signalfd on the loop thread,
// so nothing runs inside a signal handler.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <stdexcept>

#include "evwheel/reactor.hpp"

namespace examples {

class Signals final : public evwheel::IoHandler {
 public:
  explicit Signals(evwheel::Reactor& reactor) : reactor_(reactor) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("signalfd failed");
    reactor_.add(fd_, EPOLLIN, *this);
  }
  ~Signals() {
    reactor_.remove(fd_);
    close(fd_);
  }
  void on_io(uint32_t) override {
    signalfd_siginfo info;
    while (read(fd_, &info, sizeof info) == sizeof info) reactor_.stop();
  }

 private:
  evwheel::Reactor& reactor_;
  int fd_;
};

}  // namespace examples
