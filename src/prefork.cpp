// prefork — see include/evwheel/prefork.hpp.
#include "evwheel/prefork.hpp"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

#include "evwheel/signals.hpp"

namespace evwheel {

namespace {

// The signals the parent waits for: the forwarded ones and SIGCHLD.
sigset_t supervised_signals() noexcept {
  sigset_t set = shutdown_signals();
  sigaddset(&set, SIGCHLD);
  return set;
}

std::vector<int> worker_cpus(const PreforkOptions& options) {
  if (options.workers < 1) throw std::invalid_argument("evwheel: Prefork needs workers >= 1");
  if (!options.pin) return std::vector<int>(options.workers, -1);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) < 0)
    throw std::system_error(errno, std::generic_category(), "evwheel: sched_getaffinity");
  std::vector<int> cpus = options.cpus;
  if (cpus.empty())
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  for (int cpu : cpus)
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
      throw std::invalid_argument("evwheel: Prefork cpu " + std::to_string(cpu) +
                                  " is not one this process may run on");
  std::vector<int> result;
  for (std::size_t i = 0; i < options.workers; ++i) result.push_back(cpus[i % cpus.size()]);
  return result;
}

}  // namespace

Prefork::Prefork(PreforkOptions options, Worker worker) : worker_(std::move(worker)) {
  if (!worker_) throw std::invalid_argument("evwheel: Prefork needs a worker function");
  std::vector<int> cpus = worker_cpus(options);
  // Blocked before the first fork, so no signal or child exit slips past wait().
  sigset_t supervised = supervised_signals();
  if (int error = pthread_sigmask(SIG_BLOCK, &supervised, &original_mask_))
    throw std::system_error(error, std::generic_category(), "evwheel: pthread_sigmask");
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    pid_t pid = ::fork();
    if (pid == 0) run_worker(i, cpus[i]);
    if (pid < 0) {
      int error = errno;
      signal_live(SIGTERM);
      reap(true);
      pthread_sigmask(SIG_SETMASK, &original_mask_, nullptr);
      throw std::system_error(error, std::generic_category(), "evwheel: fork");
    }
    pids_.push_back(pid);
    exits_.push_back({i, pid, 0});
    reaped_.push_back(false);
  }
}

Prefork::~Prefork() {
  if (!reap(false)) {
    signal_live(SIGTERM);
    reap(true);
  }
  pthread_sigmask(SIG_SETMASK, &original_mask_, nullptr);
}

void Prefork::run_worker(std::size_t index, int cpu) {
  // Keep the shutdown signals blocked for the worker's Signals; SIGCHLD is the parent's business.
  sigset_t mask = original_mask_;
  sigset_t shutdown = shutdown_signals();
  sigorset(&mask, &mask, &shutdown);
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  int status = 1;
  try {
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      if (sched_setaffinity(0, sizeof set, &set) < 0)
        throw std::system_error(errno, std::generic_category(), "evwheel: sched_setaffinity");
    }
    status = worker_(index);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "evwheel: prefork worker %zu: %s\n", index, error.what());
  } catch (...) {
    std::fprintf(stderr, "evwheel: prefork worker %zu: unknown exception\n", index);
  }
  std::fflush(nullptr);
  ::_exit(status);
}

bool Prefork::reap(bool block) {
  bool all = true;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (reaped_[i]) continue;
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(pids_[i], &status, block ? 0 : WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pids_[i] || (got < 0 && errno == ECHILD)) {
      reaped_[i] = true;
      exits_[i].status = got < 0 ? -1 : status;  // ECHILD: reaped elsewhere, the status is lost
    } else {
      all = false;
    }
  }
  return all;
}

void Prefork::signal_live(int signal) noexcept {
  for (std::size_t i = 0; i < pids_.size(); ++i)
    if (!reaped_[i]) ::kill(pids_[i], signal);
}

std::vector<WorkerExit> Prefork::wait() {
  sigset_t supervised = supervised_signals();
  while (!reap(false)) {
    siginfo_t info;
    int signal = sigwaitinfo(&supervised, &info);
    if (signal == SIGTERM || signal == SIGINT || signal == SIGHUP) signal_live(signal);
    // SIGCHLD (or EINTR): the next reap() looks at every worker.
  }
  return exits_;
}

}  // namespace evwheel
