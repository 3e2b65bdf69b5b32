// example_process — runs a built example ($EVWHEEL_BUILD/NAME, as `make test` builds them) as a
// child process whose stderr the test reads, for tests that drive hb_server and hb_client
// from outside as a user would.  A Child is killed and reaped if the test stops early.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace example_process {

// The path of example `name` in the build directory.
inline std::string binary(const std::string& name) {
  const char* build = std::getenv("EVWHEEL_BUILD");
  return std::string(build && *build ? build : "build") + "/" + name;
}

// A child process that is killed and reaped if the test stops early (a failed REQUIRE).
struct Child {
  pid_t pid = -1;
  int stderr_fd = -1;  // the read end of the child's stderr
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (stderr_fd >= 0) ::close(stderr_fd);
  }
};

inline void spawn(Child& child, std::vector<std::string> args) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return;
  child.pid = ::fork();
  if (child.pid == 0) {
    ::dup2(pipe_fds[1], 2);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  child.stderr_fd = pipe_fds[0];
}

// Appends what the child writes next to `seen`, waiting up to `timeout` for it: true when
// something came, false when the time passed; `ended` is set when the child closed its stderr.
inline bool read_more(int fd, std::string& seen, std::chrono::milliseconds timeout, bool* ended) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char chunk[1024];
  ssize_t got = ::read(fd, chunk, sizeof chunk);
  *ended = got <= 0;
  if (got > 0) seen.append(chunk, static_cast<std::size_t>(got));
  return got > 0;
}

// Reads the child's stderr until `text` appears (true) or `timeout` passes; `seen` keeps all of it.
inline bool wait_for_output(int fd, const std::string& text, std::string& seen,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool ended = false;
  while (seen.find(text) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ended) return false;
    read_more(fd, seen, left, &ended);
  }
  return true;
}

// The number after `prefix` in `text` (up to the end of that line); -1 if absent.
inline long number_after(const std::string& text, const std::string& prefix) {
  std::size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : std::strtol(text.c_str() + at + prefix.size(), nullptr, 10);
}

// Sends SIGTERM and waits up to `timeout` for the child to exit: its exit code, 128 + the
// signal that ended it, or -1 if it is still running (the destructor then kills it).
inline int terminate(Child& child, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  ::kill(child.pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  pid_t reaped;
  while ((reaped = ::waitpid(child.pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) ::usleep(10'000);
  if (reaped != child.pid) return -1;
  child.pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace example_process
