// child — runs a piece of a test in a forked child, for what must not touch the doctest
// process: signals, signal masks, further forks.  The child never returns into doctest.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>

namespace child {

// Forks; the child runs `body` and _exits with its result (99 if it threw).  Returns the pid.
template <class Body>
pid_t start(Body&& body) {
  std::fflush(nullptr);  // nothing buffered may be written twice
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  int status = 99;
  try {
    status = body();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "child: %s\n", error.what());
  } catch (...) {
  }
  std::fflush(nullptr);
  ::_exit(status);
}

// Waits up to `timeout` for `pid`; its exit code, 128 + signal if a signal ended it, or -1 on
// timeout (the child is then killed and reaped).
inline int wait(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

}  // namespace child
