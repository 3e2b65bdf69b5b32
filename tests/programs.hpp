// programs — the programs some tests drive: external ones (haproxy, openssl), found where
// Debian installs them (a test that finds no binary says so and skips), and the ones `make`
// builds (the examples, evwheel-bench); all started with chosen descriptors as their
// stdin/stdout/stderr and inherited sockets.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace programs {

// `name` on PATH, else in the sbin directories (not on every user's PATH); "" if none.
inline std::string find(const std::string& name) {
  std::vector<std::string> candidates;
  std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "");
  for (std::string dir; std::getline(path, dir, ':');)
    if (!dir.empty()) candidates.push_back(dir + "/" + name);
  for (const char* dir : {"/usr/sbin/", "/usr/local/sbin/", "/usr/bin/"}) candidates.push_back(dir + name);
  for (const std::string& candidate : candidates)
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  return "";
}

inline std::string read_file(const std::string& name) {
  std::ifstream in(name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Where a started program's descriptors come from: `in`/`out` are descriptors of ours (-1:
// /dev/null for stdin, `log` for stdout), stderr always goes to `log` (appended), and each
// `inherited[i]` becomes descriptor `at[i]` (dup2 to a new number clears FD_CLOEXEC, so only
// these survive the exec).
struct Plumbing {
  int in = -1;
  int out = -1;
  std::string log = "/dev/null";
  std::vector<int> inherited, at;
};

// Starts `args` (args[0] is the binary's path); the pid, or -1.
inline pid_t spawn(std::vector<std::string> args, const Plumbing& plumbing) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (plumbing.in >= 0)
    posix_spawn_file_actions_adddup2(&actions, plumbing.in, 0);
  else
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, plumbing.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, plumbing.out >= 0 ? plumbing.out : 2, 1);
  for (std::size_t i = 0; i < plumbing.inherited.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, plumbing.inherited[i], plumbing.at[i]);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

// Starts `haproxy -f config -db` (in the foreground) with `inherited` sockets at the numbers
// `at` (for `bind fd@N` lines) and its output in `log`; the pid, or -1.
inline pid_t spawn_haproxy(const std::string& binary, const std::string& config, const std::string& log,
                           const std::vector<int>& inherited, const std::vector<int>& at) {
  Plumbing plumbing;
  plumbing.log = log;
  plumbing.inherited = inherited;
  plumbing.at = at;
  return spawn({binary, "-f", config, "-db"}, plumbing);
}

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

// How often `what` occurs in `text`.
inline std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A program running as a child of the test — one of the binaries `make` built, or an external
// one named by its path: its stderr collected in a file of its own, its stdout there too or
// in a file of the test's choosing; killed and reaped if the test stops early (a failed
// REQUIRE leaves nothing behind).
class Built {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts args[0] with args[1..]: build_dir()/args[0], or args[0] itself when it is a path
  // (has a '/'); started() is false if it could not be.
  explicit Built(std::vector<std::string> args, const std::string& stdout_path = "") {
    char log[] = "/tmp/evwheel-program-XXXXXX";
    int log_fd = ::mkstemp(log);
    if (log_fd < 0) return;
    ::close(log_fd);
    log_ = log;
    Plumbing plumbing;
    plumbing.log = log_;
    plumbing.out = stdout_path.empty() ? -1 : ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (args[0].find('/') == std::string::npos) args[0] = build_dir() + "/" + args[0];
    pid_ = spawn(args, plumbing);
    if (plumbing.out >= 0) ::close(plumbing.out);
  }
  ~Built() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (!log_.empty()) ::unlink(log_.c_str());
  }
  Built(const Built&) = delete;
  Built& operator=(const Built&) = delete;

  bool started() const { return pid_ > 0; }
  void signal(int number) const { ::kill(pid_, number); }

  // What it wrote to stderr so far.
  std::string stderr_text() const { return read_file(log_); }
  // Waits until its stderr holds `text` (true), or `timeout` passes.
  bool wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    auto deadline = Clock::now() + timeout;
    while (stderr_text().find(text) == std::string::npos) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  // Waits until its stderr holds `prefix` and returns the number after it (a port it
  // announces), or -1 if that does not come within `timeout`.
  long wait_for_number(const std::string& prefix, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    return wait_for_stderr(prefix, timeout) ? number_after(stderr_text(), prefix) : -1;
  }

  // Waits up to `timeout` for it to end: its exit status, 128 + the signal that ended it, or
  // -1 if it was still running (the destructor then kills it).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (reaped != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace programs
