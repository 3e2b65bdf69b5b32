// conns — the processes of one run, the coordinator's side (see children.hpp).
#include "children.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace bench {
namespace conns {
namespace {

using Clock = std::chrono::steady_clock;

bool exited(pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == pid; }

}  // namespace

Children::Children(const Options& options, const Plan& plan, int workers, int number, uint16_t port, int reserve_fd)
    : options_(options), plan_(plan), workers_(workers), number_(number), port_(port), reserve_fd_(reserve_fd) {
  void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    error_ = std::string("mmap: ") + std::strerror(errno);
    return;
  }
  shared_ = new (memory) Shared;
}

Children::~Children() {
  if (shared_ == nullptr) return;
  if (!torn_down_) teardown();
  shared_->~Shared();
  munmap(shared_, sizeof(Shared));
}

Role Children::role(int index) const {
  return Role{shared_, index, std::max(workers_, 1), port_, first_source(plan_, number_)};
}

pid_t Children::spawn(int cpu, const std::function<int()>& body) {
  std::fflush(nullptr);  // the child must not flush our buffered output again
  pid_t pid = fork();
  if (pid != 0) return pid;
  ::close(reserve_fd_);
  sys::pin_to_cpu(cpu);
  int status = 1;
  try {
    status = body();
  } catch (...) {
  }
  std::fflush(nullptr);
  _exit(status);
}

// Workers start one at a time: the order they listen in is their index in the SO_REUSEPORT
// group, which the steering program relies on.
bool Children::start_worker(int w, int cpu, const std::function<int()>& body) {
  WorkerSlot& slot = shared_->workers[w];
  slot.pid = spawn(cpu, body);
  return wait_ready(slot.ready, slot.error, slot.pid);
}

bool Children::start_clients() {
  uint64_t share = options_.conns / static_cast<uint64_t>(plan_.clients);
  uint64_t extra = options_.conns % static_cast<uint64_t>(plan_.clients);
  for (int c = 0; c < plan_.clients; ++c) {
    ClientSlot& slot = shared_->clients[c];
    slot.target = share + (static_cast<uint64_t>(c) < extra ? 1 : 0);
    slot.sources = static_cast<int>((slot.target + plan_.ports_per_source - 1) / plan_.ports_per_source);
    Role r = role(c);
    const Options& options = options_;
    slot.pid = spawn(options_.client_cpu, [&options, r] { return run_client(options, r); });
  }
  for (int c = 0; c < plan_.clients; ++c)
    if (!wait_ready(shared_->clients[c].ready, shared_->clients[c].error, shared_->clients[c].pid)) return false;
  return true;
}

bool Children::wait_ready(std::atomic<int>& ready, const char* error, pid_t pid) {
  auto start = Clock::now();
  while (ready.load(std::memory_order_acquire) == 0) {
    if (exited(pid) || sys::seconds_since(start) > 30) {
      error_ = "a process did not start";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (ready.load() > 0) return true;
  error_ = error;
  return false;
}

bool Children::any_child_died() {
  for (int w = 0; w < workers_; ++w)
    if (exited(shared_->workers[w].pid)) {
      shared_->workers[w].pid = 0;
      error_ = std::string("server worker ") + std::to_string(w) + " died: " + shared_->workers[w].error;
      return true;
    }
  for (int c = 0; c < plan_.clients; ++c)
    if (exited(shared_->clients[c].pid)) {
      shared_->clients[c].pid = 0;
      error_ = std::string("client ") + std::to_string(c) + " died: " + shared_->clients[c].error;
      return true;
    }
  return false;
}

bool Children::advance(int phase) {
  shared_->phase.store(phase, std::memory_order_release);
  auto start = Clock::now();
  for (;;) {
    bool all = true;
    for (int w = 0; w < workers_; ++w) all &= shared_->workers[w].ack.load() >= phase;
    for (int c = 0; c < plan_.clients; ++c) all &= shared_->clients[c].ack.load() >= phase;
    if (all) return true;
    if (phase != kTeardown && any_child_died()) return false;
    if (sys::seconds_since(start) > 30) {
      error_ = "processes did not follow phase " + std::to_string(phase);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

uint64_t Children::sum_clients(std::atomic<uint64_t> ClientSlot::*field) const {
  uint64_t total = 0;
  for (int c = 0; c < plan_.clients; ++c) total += (shared_->clients[c].*field).load(std::memory_order_relaxed);
  return total;
}

sys::CpuTimes Children::cpu(bool servers) const {
  sys::CpuTimes total{0, 0};
  int n = servers ? workers_ : plan_.clients;
  for (int i = 0; i < n; ++i) {
    sys::CpuTimes one = sys::cpu_times(std::to_string(servers ? shared_->workers[i].pid : shared_->clients[i].pid));
    total.on_cpu_ns += one.on_cpu_ns;
    total.waiting_ns = one.waiting_ns < 0 || total.waiting_ns < 0 ? -1 : total.waiting_ns + one.waiting_ns;
  }
  return total;
}

int64_t Children::max_client_lag_ns() const {
  int64_t lag = 0;
  for (int c = 0; c < plan_.clients; ++c) lag = std::max(lag, shared_->clients[c].max_lag_ns.load());
  return lag;
}

void Children::pause(double seconds) {
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (on_wait) on_wait();
    Clock::duration left = until - Clock::now();
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(10)));
  }
}

bool Children::ramp(const std::string& label, const std::function<uint64_t()>& server_open, double* seconds) {
  if (!advance(kRamp)) return false;
  auto start = Clock::now();
  double limit = 60 + static_cast<double>(options_.conns) / 2000;
  bool tty = isatty(STDERR_FILENO);
  double next_print = 0;
  uint64_t last_done = 0;
  double last_t = 0;
  for (;;) {
    uint64_t established = sum_clients(&ClientSlot::established);
    uint64_t failed = sum_clients(&ClientSlot::failed);
    double t = sys::seconds_since(start);
    if (t >= next_print || established + failed >= options_.conns) {
      double rate = t > last_t ? static_cast<double>(established + failed - last_done) / (t - last_t) : 0;
      std::fprintf(stderr, "%sramp [%s]: %" PRIu64 "/%" PRIu64 " established, %.0f connects/s, %" PRIu64 " failed%s",
                   tty ? "\r" : "", label.c_str(), established, options_.conns, rate, failed, tty ? "   " : "\n");
      last_done = established + failed;
      last_t = t;
      next_print = t + (tty ? 0.25 : 2);
    }
    if (established + failed >= options_.conns) break;
    if (any_child_died()) return false;
    if (t > limit) {
      error_ = "ramp did not finish in " + std::to_string(static_cast<int>(limit)) + " s";
      return false;
    }
    pause(0.01);
  }
  if (tty) std::fprintf(stderr, "\n");
  *seconds = sys::seconds_since(start);
  // The server may still be accepting the last ones (a few seconds at most: a connection
  // the client counts but the server never gets — its handshake lost past a full queue —
  // must not hold the run).
  uint64_t established = sum_clients(&ClientSlot::established);
  auto settle = Clock::now();
  while (server_open() < established && sys::seconds_since(settle) < 10) pause(0.01);
  return true;
}

int Children::teardown() {
  torn_down_ = true;
  shared_->phase.store(kTeardown, std::memory_order_release);
  std::vector<pid_t> pids;
  for (int w = 0; w < workers_; ++w) pids.push_back(shared_->workers[w].pid);
  for (int c = 0; c < plan_.clients; ++c) pids.push_back(shared_->clients[c].pid);
  int killed = 0;
  auto start = Clock::now();
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    while (!exited(pid)) {
      if (sys::seconds_since(start) > 20) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        ++killed;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return killed;
}

}  // namespace conns
}  // namespace bench
