// conns — one run (see run.hpp): the coordinator's side.  It starts the server workers one at
// a time (pinned to the server core; the order they listen in is their index in the
// SO_REUSEPORT group) and the clients (pinned to the client core) through Children, moves the
// phase forward ramp -> steady -> mute -> judge -> teardown, samples the server's CPU for a
// timeline, and turns the children's samples and /proc into a Result.
#include "run.hpp"

#include <algorithm>
#include <string>

#include "../baselines/servers.hpp"
#include "../common/system.hpp"
#include "children.hpp"
#include "evwheel/connection.hpp"

namespace bench {
namespace conns {
namespace {

using Clock = std::chrono::steady_clock;

class Run {
 public:
  Run(const Options& options, const Plan& plan, Timers timers, int number, uint16_t port, int reserve_fd)
      : options_(options), plan_(plan), timers_(timers), children_(options, plan, plan.workers, number, port, reserve_fd) {
    children_.on_wait = [this] { sample_timeline(); };
  }

  Result go() {
    result_.timers = timers_;
    result_.codec = options_.codec;
    result_.workers = plan_.workers;
    result_.clients = plan_.clients;
    if (children_.mapped() && start_workers() && children_.start_clients()) drive();
    sample_timeline();
    result_.leftover_processes = children_.teardown();
    if (result_.error.empty()) result_.error = children_.error();
    result_.timeline = std::move(timeline_);
    return result_;
  }

 private:
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

  bool start_workers() {
    for (int w = 0; w < plan_.workers; ++w) {
      Role r = children_.role(w);
      if (!children_.start_worker(w, options_.server_cpu, [&] { return worker(options_, r); })) return false;
    }
    return true;
  }

  uint64_t server_open() const {
    uint64_t total = 0;
    for (int w = 0; w < plan_.workers; ++w) total += children_.shared().workers[w].open.load(std::memory_order_relaxed);
    return total;
  }

  int64_t cpu_ns(bool servers) const { return children_.cpu(servers).on_cpu_ns; }
  void pause(double seconds) { children_.pause(seconds); }

  void sample_timeline() {
    double t = sys::seconds_since(born_);
    if (!timeline_.empty() && t < timeline_.back().seconds + 0.5) return;
    int64_t cpu = cpu_ns(true);
    double busy = 0;
    if (!timeline_.empty() && t > timeline_.back().seconds)
      busy = static_cast<double>(cpu - timeline_.back().server_cpu_ns) / 1e9 / (t - timeline_.back().seconds);
    timeline_.push_back({t, server_open(), cpu, busy});
  }

  void mark(const char* label) { result_.markers.push_back({sys::seconds_since(born_), label}); }

  bool ramp() {
    std::string label = std::string(to_string(timers_)) + ", " + to_string(options_.codec);
    if (!children_.ramp(label, [this] { return server_open(); }, &result_.ramp_s)) return false;
    result_.failed = children_.sum_clients(&ClientSlot::failed);
    result_.connects_per_s = static_cast<double>(options_.conns) / result_.ramp_s;
    return true;
  }

  void drive() {
    sys::KernelMemory before = sys::read_kernel_memory();
    mark("ramp");
    sys::CpuTimes client_start = children_.cpu(false);
    auto run_start = Clock::now();
    if (!ramp()) return;
    // Let the last accepted connections' samples settle before measuring memory.
    pause(0.2);
    sys::KernelMemory after = sys::read_kernel_memory();
    mark("steady");
    if (!children_.advance(kSteady)) return;
    sys::CpuTimes server0 = children_.cpu(true), client0 = children_.cpu(false);
    sys::CoreTimes core0 = sys::core_times(options_.server_cpu);
    auto t0 = Clock::now();
    pause(options_.duration_s);
    if (children_.any_child_died()) return;
    sys::CpuTimes server1 = children_.cpu(true), client1 = children_.cpu(false);
    sys::CoreTimes core1 = sys::core_times(options_.server_cpu);
    result_.steady_s = sys::seconds_since(t0);
    mark("mute");
    if (!children_.advance(kMute)) return;
    await_detection();
    if (!children_.advance(kJudge)) return;
    mark("teardown");

    auto steady_ns = static_cast<int64_t>(result_.steady_s * 1e9);
    sys::cpu_fractions(server0, server1, steady_ns, &result_.server_cpu, &result_.server_wait);
    sys::cpu_fractions(client0, client1, steady_ns, &result_.client_cpu, &result_.client_wait);
    // Waiting is per process (averaged): W processes sharing one core wait for each other.
    result_.server_wait /= plan_.workers;
    result_.client_wait /= plan_.clients;
    double on_cpu = 0;
    sys::cpu_fractions(client_start, children_.cpu(false), static_cast<int64_t>(sys::seconds_since(run_start) * 1e9), &on_cpu,
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
    uint64_t muted = children_.sum_clients(&ClientSlot::muted);
    while (sys::seconds_since(start) < limit) {
      if (children_.sum_clients(&ClientSlot::muted_closed) >= muted) {
        // Give late false closes a chance to show: one more ping round.
        pause(static_cast<double>(options_.ping_ms) / 1000);
        return;
      }
      if (children_.any_child_died()) return;
      pause(0.02);
    }
  }

  void gather(const sys::KernelMemory& before, const sys::KernelMemory& after) {
    Result& r = result_;
    long rss_growth_kib = 0;
    for (int w = 0; w < plan_.workers; ++w) {
      const WorkerSlot& slot = children_.shared().workers[w];
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
    r.false_closes = children_.sum_clients(&ClientSlot::false_closes);
    describe_closes();
    r.muted = children_.sum_clients(&ClientSlot::muted);
    r.detected = children_.sum_clients(&ClientSlot::muted_closed);
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
    r.client_lag_ms = static_cast<double>(children_.max_client_lag_ns()) / 1e6;
    // Behind: busy, kept off its CPU by other load, or its loop so late that its answers could
    // have missed the server's grace.
    r.client_saturated = r.client_cpu > 0.9 || r.client_wait_run > 0.1 ||
                         r.client_lag_ms > static_cast<double>(options_.idle_ms - options_.ping_ms) / 2;
  }

  void describe_closes() {
    std::string text;
    for (int reason = 0; reason < 8; ++reason) {
      uint64_t client = 0, server = 0;
      for (int c = 0; c < plan_.clients; ++c) client += children_.shared().clients[c].false_by_reason[reason].load();
      for (int w = 0; w < plan_.workers; ++w) server += children_.shared().workers[w].at[kJudge].closes_by_reason[reason];
      if (client == 0 && server == 0) continue;
      text += std::string(text.empty() ? "" : ", ") + evwheel::to_string(static_cast<evwheel::CloseReason>(reason)) +
              " " + std::to_string(server) + " (server) " + std::to_string(client) + " (client)";
    }
    if (result_.false_closes != 0) result_.close_reasons = text;
  }

  const Options& options_;
  const Plan& plan_;
  Timers timers_;
  Children children_;
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
