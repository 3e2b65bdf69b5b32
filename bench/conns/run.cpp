// conns — one run (see run.hpp): the coordinator's side.  It forks the server workers one at
// a time (pinned to the server core; the order they listen in is their index in the
// SO_REUSEPORT group) and the clients (pinned to the client core), moves the phase forward
// ramp -> steady -> mute -> judge -> teardown, samples the server's CPU for a timeline, and
// turns the children's samples and /proc into a Result.
#include "run.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

#include "../baselines/servers.hpp"
#include "../common/system.hpp"
#include "evwheel/connection.hpp"

namespace bench {
namespace conns {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Run {
 public:
  Run(const Options& options, const Plan& plan, Timers timers, int number, uint16_t port, int reserve_fd)
      : options_(options), plan_(plan), timers_(timers), number_(number), port_(port), reserve_fd_(reserve_fd) {}

  Result go() {
    result_.timers = timers_;
    result_.codec = options_.codec;
    result_.workers = plan_.workers;
    result_.clients = plan_.clients;
    void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      result_.error = std::string("mmap: ") + std::strerror(errno);
      return result_;
    }
    shared_ = new (memory) Shared;
    if (start_workers() && start_clients()) drive();
    teardown();
    result_.timeline = std::move(timeline_);
    shared_->~Shared();
    munmap(memory, sizeof(Shared));
    return result_;
  }

 private:
  template <class Body>
  pid_t spawn(int cpu, Body&& body) {
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

  Role role(int index) const { return Role{shared_, index, plan_.workers, port_, first_source(plan_, number_)}; }

  // The body of a server worker process.
  int worker(const Options& options, const Role& role) const {
    switch (timers_) {
      case Timers::wheel: return run_wheel_worker(options, role);
      case Timers::lazy: return baselines::run_lazy_worker(options, role);
      case Timers::sweep: return baselines::run_sweep_worker(options, role);
      case Timers::rearm: return baselines::run_rearm_worker(options, role);
    }
    return 1;
  }

  // Workers start one at a time: the order they listen in is their index in the SO_REUSEPORT
  // group, which the steering program relies on.
  bool start_workers() {
    for (int w = 0; w < plan_.workers; ++w) {
      Role r = role(w);
      shared_->workers[w].pid = spawn(options_.server_cpu, [&] { return worker(options_, r); });
      if (!wait_ready(shared_->workers[w].ready, shared_->workers[w].error, shared_->workers[w].pid))
        return false;
    }
    return true;
  }

  bool start_clients() {
    uint64_t share = options_.conns / static_cast<uint64_t>(plan_.clients);
    uint64_t extra = options_.conns % static_cast<uint64_t>(plan_.clients);
    for (int c = 0; c < plan_.clients; ++c) {
      ClientSlot& slot = shared_->clients[c];
      slot.target = share + (static_cast<uint64_t>(c) < extra ? 1 : 0);
      slot.sources = static_cast<int>((slot.target + plan_.ports_per_source - 1) / plan_.ports_per_source);
      Role r = role(c);
      slot.pid = spawn(options_.client_cpu, [&] { return run_client(options_, r); });
    }
    for (int c = 0; c < plan_.clients; ++c)
      if (!wait_ready(shared_->clients[c].ready, shared_->clients[c].error, shared_->clients[c].pid))
        return false;
    return true;
  }

  bool wait_ready(std::atomic<int>& ready, const char* error, pid_t pid) {
    auto start = Clock::now();
    while (ready.load(std::memory_order_acquire) == 0) {
      if (exited(pid) || seconds_since(start) > 30) {
        result_.error = "a process did not start";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (ready.load() > 0) return true;
    result_.error = error;
    return false;
  }

  static bool exited(pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == pid; }

  bool any_child_died() {
    for (int w = 0; w < plan_.workers; ++w)
      if (exited(shared_->workers[w].pid)) {
        shared_->workers[w].pid = 0;
        result_.error = std::string("server worker ") + std::to_string(w) + " died: " + shared_->workers[w].error;
        return true;
      }
    for (int c = 0; c < plan_.clients; ++c)
      if (exited(shared_->clients[c].pid)) {
        shared_->clients[c].pid = 0;
        result_.error = std::string("client ") + std::to_string(c) + " died: " + shared_->clients[c].error;
        return true;
      }
    return false;
  }

  // Moves every child to `phase` and waits until all have taken their sample.
  bool advance(int phase) {
    shared_->phase.store(phase, std::memory_order_release);
    auto start = Clock::now();
    for (;;) {
      bool all = true;
      for (int w = 0; w < plan_.workers; ++w) all &= shared_->workers[w].ack.load() >= phase;
      for (int c = 0; c < plan_.clients; ++c) all &= shared_->clients[c].ack.load() >= phase;
      if (all) return true;
      if (phase != kTeardown && any_child_died()) return false;
      if (seconds_since(start) > 30) {
        result_.error = "processes did not follow phase " + std::to_string(phase);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  template <class Field>
  uint64_t sum_clients(Field field) const {
    uint64_t total = 0;
    for (int c = 0; c < plan_.clients; ++c) total += (shared_->clients[c].*field).load(std::memory_order_relaxed);
    return total;
  }

  uint64_t server_open() const {
    uint64_t total = 0;
    for (int w = 0; w < plan_.workers; ++w) total += shared_->workers[w].open.load(std::memory_order_relaxed);
    return total;
  }

  // Summed over one side's processes.
  sys::CpuTimes cpu(bool servers) const {
    sys::CpuTimes total{0, 0};
    int n = servers ? plan_.workers : plan_.clients;
    for (int i = 0; i < n; ++i) {
      sys::CpuTimes one = sys::cpu_times(std::to_string(servers ? shared_->workers[i].pid : shared_->clients[i].pid));
      total.on_cpu_ns += one.on_cpu_ns;
      total.waiting_ns = one.waiting_ns < 0 || total.waiting_ns < 0 ? -1 : total.waiting_ns + one.waiting_ns;
    }
    return total;
  }
  int64_t cpu_ns(bool servers) const { return cpu(servers).on_cpu_ns; }

  // Sleeps about `seconds` in short steps, adding a point to the timeline every half second.
  void pause(double seconds) {
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < until) {
      sample_timeline();
      Clock::duration left = until - Clock::now();
      std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(10)));
    }
  }

  void sample_timeline() {
    double t = seconds_since(born_);
    if (!timeline_.empty() && t < timeline_.back().seconds + 0.5) return;
    int64_t cpu = cpu_ns(true);
    double busy = 0;
    if (!timeline_.empty() && t > timeline_.back().seconds)
      busy = static_cast<double>(cpu - timeline_.back().server_cpu_ns) / 1e9 / (t - timeline_.back().seconds);
    timeline_.push_back({t, server_open(), cpu, busy});
  }

  void mark(const char* label) { result_.markers.push_back({seconds_since(born_), label}); }

  bool ramp() {
    auto start = Clock::now();
    double limit = 60 + static_cast<double>(options_.conns) / 2000;
    bool tty = isatty(STDERR_FILENO);
    double next_print = 0;
    uint64_t last_done = 0;
    double last_t = 0;
    for (;;) {
      uint64_t established = sum_clients(&ClientSlot::established);
      uint64_t failed = sum_clients(&ClientSlot::failed);
      double t = seconds_since(start);
      if (t >= next_print || established + failed >= options_.conns) {
        double rate = t > last_t ? static_cast<double>(established + failed - last_done) / (t - last_t) : 0;
        std::fprintf(stderr, "%sramp [%s, %s]: %" PRIu64 "/%" PRIu64 " established, %.0f connects/s, %" PRIu64 " failed%s",
                     tty ? "\r" : "", to_string(timers_), to_string(options_.codec), established, options_.conns, rate, failed,
                     tty ? "   " : "\n");
        last_done = established + failed;
        last_t = t;
        next_print = t + (tty ? 0.25 : 2);
      }
      if (established + failed >= options_.conns) break;
      if (any_child_died()) return false;
      if (t > limit) {
        result_.error = "ramp did not finish in " + std::to_string(static_cast<int>(limit)) + " s";
        return false;
      }
      pause(0.01);
    }
    if (tty) std::fprintf(stderr, "\n");
    result_.ramp_s = seconds_since(start);
    result_.failed = sum_clients(&ClientSlot::failed);
    result_.connects_per_s = static_cast<double>(options_.conns) / result_.ramp_s;
    // The server may still be accepting the last ones (a few seconds at most: a connection
    // the client counts but the server never gets — its handshake lost past a full queue —
    // must not hold the run).
    uint64_t established = sum_clients(&ClientSlot::established);
    auto settle = Clock::now();
    while (server_open() < established && seconds_since(settle) < 10) pause(0.01);
    return true;
  }

  void drive() {
    sys::KernelMemory before = sys::read_kernel_memory();
    mark("ramp");
    sys::CpuTimes client_start = cpu(false);
    auto run_start = Clock::now();
    if (!advance(kRamp) || !ramp()) return;
    // Let the last accepted connections' samples settle before measuring memory.
    pause(0.2);
    sys::KernelMemory after = sys::read_kernel_memory();
    mark("steady");
    if (!advance(kSteady)) return;
    sys::CpuTimes server0 = cpu(true), client0 = cpu(false);
    sys::CoreTimes core0 = sys::core_times(options_.server_cpu);
    auto t0 = Clock::now();
    pause(options_.duration_s);
    if (any_child_died()) return;
    sys::CpuTimes server1 = cpu(true), client1 = cpu(false);
    sys::CoreTimes core1 = sys::core_times(options_.server_cpu);
    result_.steady_s = seconds_since(t0);
    mark("mute");
    if (!advance(kMute)) return;
    await_detection();
    if (!advance(kJudge)) return;
    mark("teardown");

    auto steady_ns = static_cast<int64_t>(result_.steady_s * 1e9);
    sys::cpu_fractions(server0, server1, steady_ns, &result_.server_cpu, &result_.server_wait);
    sys::cpu_fractions(client0, client1, steady_ns, &result_.client_cpu, &result_.client_wait);
    // Waiting is per process (averaged): W processes sharing one core wait for each other.
    result_.server_wait /= plan_.workers;
    result_.client_wait /= plan_.clients;
    double on_cpu = 0;
    sys::cpu_fractions(client_start, cpu(false), static_cast<int64_t>(seconds_since(run_start) * 1e9), &on_cpu,
                  &result_.client_wait_run);
    result_.client_wait_run /= plan_.clients;
    result_.server_core_busy = sys::core_busy(core0, core1);
    gather(before, after);
  }

  // Waits until every muted connection is closed, or the idle timeout plus two ticks and a
  // second of slack have passed since the mute.
  void await_detection() {
    auto start = Clock::now();
    double tick_s = std::chrono::duration<double>(tick(options_)).count();
    double limit = static_cast<double>(options_.idle_ms) / 1000 + 2 * tick_s + 2;
    uint64_t muted = sum_clients(&ClientSlot::muted);
    while (seconds_since(start) < limit) {
      if (sum_clients(&ClientSlot::muted_closed) >= muted) {
        // Give late false closes a chance to show: one more ping round.
        pause(static_cast<double>(options_.ping_ms) / 1000);
        return;
      }
      if (any_child_died()) return;
      pause(0.02);
    }
  }

  void gather(const sys::KernelMemory& before, const sys::KernelMemory& after) {
    Result& r = result_;
    long rss_growth_kib = 0;
    for (int w = 0; w < plan_.workers; ++w) {
      const WorkerSlot& slot = shared_->workers[w];
      const Sample& setup = slot.at[kSetup];
      const Sample& steady = slot.at[kSteady];
      const Sample& mute = slot.at[kMute];
      const Sample& judge = slot.at[kJudge];
      r.held += steady.open;
      r.per_worker += (w ? " " : "") + std::to_string(steady.open);
      rss_growth_kib += steady.rss_kib - setup.rss_kib;
      r.pongs += mute.pongs_received - steady.pongs_received;
      r.pings += mute.pings_sent - steady.pings_sent;
      r.rtt.merge(mute.rtt.since(steady.rtt));
      r.lateness.merge(mute.lateness.since(steady.lateness));
      r.detection.merge(judge.detection.since(mute.detection));
      r.server_idle_closes += judge.idle_closes;
    }
    r.false_closes = sum_clients(&ClientSlot::false_closes);
    describe_closes();
    r.muted = sum_clients(&ClientSlot::muted);
    r.detected = sum_clients(&ClientSlot::muted_closed);
    r.heartbeats_per_s = static_cast<double>(r.pongs) / r.steady_s;
    r.us_per_heartbeat = r.pongs ? r.server_cpu * r.steady_s * 1e6 / static_cast<double>(r.pongs) : 0;
    double held = static_cast<double>(std::max<uint64_t>(r.held, 1));
    r.user_bytes = static_cast<double>(rss_growth_kib) * 1024 / held;
    r.slab_ok = before.slab_ok && after.slab_ok;
    r.slab_bytes = (r.slab_ok ? after.slab_total - before.slab_total
                              : static_cast<double>(after.meminfo_slab_kib - before.meminfo_slab_kib) * 1024) / held;
    r.tcp_buffer_bytes = static_cast<double>(after.tcp_mem_pages - before.tcp_mem_pages) * 4096 / held;
    if (r.server_cpu > 0)
      r.extrapolated = held * (15000.0 / static_cast<double>(options_.ping_ms)) / r.server_cpu;
    for (int c = 0; c < plan_.clients; ++c)
      r.client_lag_ms = std::max(r.client_lag_ms, static_cast<double>(shared_->clients[c].max_lag_ns.load()) / 1e6);
    // Behind: busy, kept off its CPU by other load, or its loop so late that its answers could
    // have missed the server's grace.
    r.client_saturated = r.client_cpu > 0.9 || r.client_wait_run > 0.1 ||
                         r.client_lag_ms > static_cast<double>(options_.idle_ms - options_.ping_ms) / 2;
  }

  void describe_closes() {
    std::string text;
    for (int reason = 0; reason < 8; ++reason) {
      uint64_t client = 0, server = 0;
      for (int c = 0; c < plan_.clients; ++c) client += shared_->clients[c].false_by_reason[reason].load();
      for (int w = 0; w < plan_.workers; ++w) server += shared_->workers[w].at[kJudge].closes_by_reason[reason];
      if (client == 0 && server == 0) continue;
      text += std::string(text.empty() ? "" : ", ") + evwheel::to_string(static_cast<evwheel::CloseReason>(reason)) +
              " " + std::to_string(server) + " (server) " + std::to_string(client) + " (client)";
    }
    if (result_.false_closes != 0) result_.close_reasons = text;
  }

  void teardown() {
    sample_timeline();
    shared_->phase.store(kTeardown, std::memory_order_release);
    std::vector<pid_t> pids;
    for (int w = 0; w < plan_.workers; ++w) pids.push_back(shared_->workers[w].pid);
    for (int c = 0; c < plan_.clients; ++c) pids.push_back(shared_->clients[c].pid);
    auto start = Clock::now();
    for (pid_t pid : pids) {
      if (pid <= 0) continue;
      while (!exited(pid)) {
        if (seconds_since(start) > 20) {
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
          ++result_.leftover_processes;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }

  const Options& options_;
  const Plan& plan_;
  Timers timers_;
  int number_;
  uint16_t port_;
  int reserve_fd_;
  Shared* shared_ = nullptr;
  Result result_;
  Clock::time_point born_ = Clock::now();
  std::vector<TimelinePoint> timeline_;
};

}  // namespace

Result run(const Options& options, const Plan& plan, Timers timers, int number, uint16_t port, int reserve_fd) {
  return Run(options, plan, timers, number, port, reserve_fd).go();
}

}  // namespace conns
}  // namespace bench
