// send — one run, the coordinator's side: the client processes (conns' clients, through
// conns::Children), the server on its loop thread, then the three phases one after the
// other on the same connections, each measured between two snapshots of the loop.
//
// A phase ends only once the clients have counted every message the loop handed to a
// connection (5 s at most): its window then holds the loop's whole cost for them, and the
// baseline's heartbeat rate over the same window is what the phase would have cost anyway.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "../conns/children.hpp"
#include "send.hpp"
#include "server.hpp"

namespace bench {
namespace send {
namespace {

// How long a refused producer waits before trying again: the loop empties the mailbox in one
// iteration, so a short sleep leaves it room without idling the producer for long.
constexpr std::chrono::microseconds kBackoff{50};

struct Producer {
  uint64_t accepted = 0, refused = 0, failed = 0;
  double seconds = 0;
  sys::CpuTimes cpu_start, cpu_end;
};

// Off the loop's CPU when there is another: every allowed CPU but `loop_cpu`.
void keep_off_cpu(int loop_cpu) {
  cpu_set_t set;
  if (loop_cpu < 0 || !sys::allowed_cpus(&set)) return;
  CPU_CLR(loop_cpu, &set);
  if (CPU_COUNT(&set) > 0) pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Sends a 16-byte message to each id in turn, as fast as the mailbox takes them, for
// `seconds`.
void produce(Server& server, const std::vector<evwheel::ConnectionId>& ids, double seconds, int loop_cpu,
             Producer* out) {
  keep_off_cpu(loop_cpu);
  const std::string message(kMessageBytes, 'm');
  out->cpu_start = sys::thread_cpu_times();
  const int64_t start = sys::monotonic_ns();
  const auto until = start + static_cast<int64_t>(seconds * 1e9);
  std::size_t next = 0;
  for (uint64_t round = 0; ids.size() > 0; ++round) {
    if (round % 256 == 0 && sys::monotonic_ns() >= until) break;
    switch (server.send(ids[next], message)) {
      case evwheel::SendResult::queued:
      case evwheel::SendResult::sent:
        ++out->accepted;
        next = next + 1 == ids.size() ? 0 : next + 1;
        break;
      case evwheel::SendResult::mailbox_full:
        ++out->refused;
        std::this_thread::sleep_for(kBackoff);
        break;
      default:
        ++out->failed;
        next = next + 1 == ids.size() ? 0 : next + 1;
    }
  }
  out->seconds = static_cast<double>(sys::monotonic_ns() - start) / 1e9;
  out->cpu_end = sys::thread_cpu_times();
}

double fraction(int64_t part_ns, double seconds) { return seconds > 0 ? static_cast<double>(part_ns) / 1e9 / seconds : 0; }

class Run {
 public:
  Run(const Options& options, const conns::Plan& plan, uint16_t port, int reserve_fd, int loop_cpu)
      : options_(options), port_(port), loop_cpu_(loop_cpu), children_(options.run, plan, 0, 0, port, reserve_fd) {}

  Result go() {
    if (children_.mapped() && children_.start_clients()) {
      Server server(options_.run, port_, loop_cpu_);
      if (server.error().empty()) {
        phases(server);
      } else {
        result_.error = server.error();
      }
      result_.leftover_processes = children_.teardown();
    }
    if (result_.error.empty()) result_.error = children_.error();
    return result_;
  }

 private:
  void phases(Server& server) {
    if (!children_.ramp("send", [&server] { return server.open(); }, &result_.ramp_s)) return;
    result_.connect_failures = children_.sum_clients(&conns::ClientSlot::failed);
    Snapshot start = server.snapshot();
    result_.held = start.open;
    measure_baseline(server, start);
    if (children_.any_child_died()) return;
    measure_send(server);
    if (children_.any_child_died()) return;
    measure_broadcast(server);
    result_.false_closes = children_.sum_clients(&conns::ClientSlot::false_closes);
  }

  void measure_baseline(Server& server, const Snapshot& start) {
    begin(start);
    children_.pause(options_.run.duration_s);
    PhaseResult& p = end(kBaseline, server.snapshot());
    result_.us_per_heartbeat = p.pongs ? p.loop_cpu * p.seconds * 1e6 / static_cast<double>(p.pongs) : 0;
  }

  void measure_send(Server& server) {
    const std::vector<evwheel::ConnectionId> ids = server.ids();
    Producer producer;
    begin(server.snapshot());
    std::thread thread(produce, std::ref(server), std::cref(ids), options_.run.duration_s, loop_cpu_, &producer);
    thread.join();
    result_.producer_s = producer.seconds;
    result_.accepted = producer.accepted;
    result_.refused = producer.refused;
    result_.send_failed = producer.failed;
    result_.producer_cpu = fraction(producer.cpu_end.on_cpu_ns - producer.cpu_start.on_cpu_ns, producer.seconds);
    Snapshot last = settle(server, [this](const Snapshot& s) { return result_.accepted - (s.mail_dropped - from_.mail_dropped); });
    result_.mailbox_refused = last.mailbox_refused - from_.mailbox_refused;
    result_.mail_dropped = last.mail_dropped - from_.mail_dropped;
    end(kSend, last).handled = result_.accepted - result_.mail_dropped;
    derive_cost(kSend);
  }

  void measure_broadcast(Server& server) {
    begin(server.snapshot());
    server.start_broadcasts(options_.broadcast_interval, std::string(kMessageBytes, 'b'));
    children_.pause(options_.run.duration_s);
    server.stop_broadcasts();
    auto copies = [this](const Snapshot& s) {
      return (s.broadcast_targets - from_.broadcast_targets) - (s.broadcast_skipped - from_.broadcast_skipped);
    };
    Snapshot last = settle(server, copies);
    result_.broadcasts = last.broadcasts - from_.broadcasts;
    result_.broadcast_targets = last.broadcast_targets - from_.broadcast_targets;
    result_.broadcast_skipped = last.broadcast_skipped - from_.broadcast_skipped;
    PhaseResult& p = end(kBroadcast, last);
    p.handled = copies(last);
    if (p.handled) {
      result_.us_per_message_in_broadcast =
          static_cast<double>(last.broadcast_cpu_ns - from_.broadcast_cpu_ns) / 1e3 / static_cast<double>(p.handled);
    }
    derive_cost(kBroadcast);
  }

  // Waits (5 s at most) until the clients have counted what `expected` says the loop handed
  // to connections since the phase began; returns the last snapshot, the phase's end.
  template <class Expected>
  Snapshot settle(Server& server, Expected expected) {
    const int64_t limit = sys::monotonic_ns() + 5'000'000'000;
    for (;;) {
      Snapshot s = server.snapshot();
      if (delivered() >= expected(s) || sys::monotonic_ns() > limit || children_.any_child_died()) return s;
      children_.pause(0.05);
    }
  }

  uint64_t delivered() const { return children_.sum_clients(&conns::ClientSlot::messages); }

  void begin(const Snapshot& from) {
    from_ = from;
    clients_from_ = children_.cpu(false);
    delivered_from_ = delivered();
    bytes_from_ = children_.sum_clients(&conns::ClientSlot::message_bytes);
  }

  PhaseResult& end(Phase phase, const Snapshot& to) {
    PhaseResult& p = result_.phases[phase];
    p.seconds = static_cast<double>(to.at_ns - from_.at_ns) / 1e9;
    p.loop_cpu = fraction(to.loop.on_cpu_ns - from_.loop.on_cpu_ns, p.seconds);
    if (to.loop.waiting_ns >= 0) p.loop_wait = fraction(to.loop.waiting_ns - from_.loop.waiting_ns, p.seconds);
    p.client_cpu = fraction(children_.cpu(false).on_cpu_ns - clients_from_.on_cpu_ns, p.seconds);
    p.pongs = to.pongs_received - from_.pongs_received;
    p.rtt = to.rtt.since(from_.rtt);
    p.lateness = to.lateness.since(from_.lateness);
    p.delivered = delivered() - delivered_from_;
    p.delivered_bytes = children_.sum_clients(&conns::ClientSlot::message_bytes) - bytes_from_;
    return p;
  }

  // The loop's CPU beyond what the baseline spent in as long a window, per message handled.
  void derive_cost(Phase phase) {
    PhaseResult& p = result_.phases[phase];
    const double extra = (p.loop_cpu - result_.phases[kBaseline].loop_cpu) * p.seconds;
    p.loop_us_per_message = p.handled ? extra * 1e6 / static_cast<double>(p.handled) : 0;
  }

  const Options& options_;
  uint16_t port_;
  int loop_cpu_;
  conns::Children children_;
  Result result_;
  Snapshot from_;
  sys::CpuTimes clients_from_;
  uint64_t delivered_from_ = 0, bytes_from_ = 0;
};

}  // namespace

Result run(const Options& options, const conns::Plan& plan, uint16_t port, int reserve_fd, int loop_cpu) {
  return Run(options, plan, port, reserve_fd, loop_cpu).go();
}

}  // namespace send
}  // namespace bench
