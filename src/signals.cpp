// signals — see include/evwheel/signals.hpp.
#include "evwheel/signals.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace evwheel {

sigset_t shutdown_signals() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

void block_signals() {
  sigset_t set = shutdown_signals();
  // pthread_sigmask returns the error instead of setting errno.
  if (int error = pthread_sigmask(SIG_BLOCK, &set, nullptr))
    throw std::system_error(error, std::generic_category(), "evwheel: pthread_sigmask");
}

Signals::Signals(Reactor& reactor, std::function<void(int)> on_terminate,
                 std::function<void()> on_hangup)
    : reactor_(reactor), on_terminate_(std::move(on_terminate)), on_hangup_(std::move(on_hangup)) {
  if (!on_terminate_) throw std::invalid_argument("evwheel: Signals needs an on_terminate callback");
  block_signals();
  sigset_t set = shutdown_signals();
  fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "evwheel: signalfd");
  try {
    reactor_.add(fd_, EPOLLIN, *this);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

Signals::~Signals() {
  reactor_.remove(fd_);
  ::close(fd_);
}

void Signals::on_io(uint32_t) {
  signalfd_siginfo info;
  // The fd is level-triggered: signals left unread (a callback threw) come back next round.
  while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    int signal = static_cast<int>(info.ssi_signo);
    if (signal == SIGHUP) {
      if (on_hangup_) on_hangup_();
    } else {
      on_terminate_(signal);
    }
  }
}

}  // namespace evwheel
