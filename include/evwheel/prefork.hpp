// prefork — N worker processes, each running its own single reactor with its own listener
// (reuse_port: the kernel spreads connections over the workers), under a supervising parent.
// Use it instead of a ReactorPool when one process's descriptor limit (RLIMIT_NOFILE) is what
// caps the connection count: each worker has a limit of its own.
//
// The parent forwards SIGTERM, SIGINT and SIGHUP to every live worker and waits for them.  It
// does not restart a worker that crashed: a crash is a bug, restarting hides it and can loop;
// the remaining workers keep serving (their listeners take the dead one's share of new
// connections), wait() reports how each worker ended, and restarting the whole service is left
// to the service manager (systemd's Restart=, say).
//
// Create the Prefork before the process has other threads: fork() copies only the calling
// thread.  Workers start with SIGTERM, SIGINT and SIGHUP blocked (see signals.hpp), so a
// signal that arrives before a worker made its Signals waits for it instead of killing it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <vector>

namespace evwheel {

struct PreforkOptions {
  std::size_t workers = 2;  // >= 1
  // Pin worker i to CPU cpus[i % cpus.size()]; empty: the CPUs this process may run on.
  bool pin = false;
  std::vector<int> cpus;
};

struct WorkerExit {
  std::size_t index = 0;
  pid_t pid = 0;
  int status = 0;  // as waitpid() reports it (WIFEXITED, ...); -1: lost (SIGCHLD ignored)
  bool clean() const noexcept { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

class Prefork {
 public:
  // Runs in worker `index`; its result is the worker's exit status.  An exception is written
  // to stderr and exits with status 1.  The worker ends with _exit(): the parent's atexit
  // handlers and static destructors do not run twice.
  using Worker = std::function<int(std::size_t index)>;

  // Forks the workers (in them, this never returns).  Throws std::invalid_argument on bad
  // options, std::system_error if a fork fails (the workers already made are ended first).
  Prefork(PreforkOptions options, Worker worker);
  // Workers still running (wait() not called) get SIGTERM and are waited for.
  ~Prefork();
  Prefork(const Prefork&) = delete;
  Prefork& operator=(const Prefork&) = delete;

  const std::vector<pid_t>& pids() const noexcept { return pids_; }

  // Supervises until every worker has exited, forwarding SIGTERM/SIGINT/SIGHUP sent to this
  // process; returns how each ended, by index.  Needs SIGCHLD not set to SIG_IGN.
  std::vector<WorkerExit> wait();

 private:
  [[noreturn]] void run_worker(std::size_t index, int cpu);
  bool reap(bool block);  // true when every worker has been reaped
  void signal_live(int signal) noexcept;

  Worker worker_;
  sigset_t original_mask_;
  std::vector<pid_t> pids_;
  std::vector<WorkerExit> exits_;
  std::vector<bool> reaped_;
};

}  // namespace evwheel
