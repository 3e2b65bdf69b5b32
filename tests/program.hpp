// program — runs a binary `make` built (an example, evwheel-bench) as a child process of a
// test: its stderr on a pipe the test reads, its stdout on a pipe or into a file, and the
// process killed and reaped if the test stops early (a failed REQUIRE leaves nothing behind).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace program {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Where `make` put the binaries: $EVWHEEL_BUILD (set by `make test`), else build/.
inline std::string build_dir() {
  const char* build = std::getenv("EVWHEEL_BUILD");
  return build ? build : "build";
}

// The number after `prefix` in `text` (up to the end of that line); -1 if absent.
inline long number_after(const std::string& text, const std::string& prefix) {
  std::size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : std::strtol(text.c_str() + at + prefix.size(), nullptr, 10);
}

class Program {
 public:
  // Starts build_dir()/args[0] with args[1..]; its stdout goes to `stdout_path` (replaced) when
  // one is given, else it stays the test's.  started() is false if it could not be started.
  explicit Program(std::vector<std::string> args, const std::string& stdout_path = "") {
    args[0] = build_dir() + "/" + args[0];
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return;
    int out = stdout_path.empty() ? -1 : ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(pipe_fds[1], 2);
      if (out >= 0) ::dup2(out, 1);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (out >= 0) ::close(out);
    ::close(pipe_fds[1]);
    stderr_ = pipe_fds[0];
  }
  ~Program() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stderr_ >= 0) ::close(stderr_);
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  bool started() const { return pid_ > 0; }
  void signal(int number) const { ::kill(pid_, number); }

  // Reads stderr until `text` appears (true) or `timeout` passes; stderr() keeps all of it.
  bool wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (seen_.find(text) == std::string::npos)
      if (!read_stderr(deadline)) return false;
    return true;
  }
  const std::string& stderr_text() const { return seen_; }

  // Waits up to `timeout` for the process to end: its exit status, 128 + the signal that
  // ended it, or -1 if it was still running (it is then killed).  Reads the rest of stderr.
  int wait(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    if (reaped != pid_) return -1;  // the destructor kills it
    pid_ = -1;
    while (read_stderr(Clock::now() + 1s)) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  // Appends what stderr has before `deadline`; false at its end or at the deadline.
  bool read_stderr(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{stderr_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[1024];
    ssize_t got = ::read(stderr_, chunk, sizeof chunk);
    if (got <= 0) return false;
    seen_.append(chunk, static_cast<std::size_t>(got));
    return true;
  }

  pid_t pid_ = -1;
  int stderr_ = -1;
  std::string seen_;
};

}  // namespace program
