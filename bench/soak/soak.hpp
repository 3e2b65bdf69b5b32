// soak — what the soak mode's two processes share: the options, the report the server child
// sends once a second, the stall meter both run, and the client side (Soak) that drives the
// connections and checks every invariant (see soak.cpp for the list).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../common/command_pipe.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"

namespace bench {
namespace soak {

using Clock = std::chrono::steady_clock;
using evwheel::Duration;

struct Options {
  double minutes = 1;
  long conns = 200;
  long interval_ms = 200;
  long idle_ms = 600;
  long client_idle_ms = 5000;
  long churn_per_s = 20;
  long resets_per_s = 10;
  long mutes_per_s = 2;
  long margin_ms = 300;
  long rss_growth_kib = 2048;
};

// The server pings every P and judges its clients with I.  The clients only answer; their own
// idle timeout is how long they bear a silent server, longer than I by default: on a loaded
// machine the server's process itself can be descheduled for about I, a real silence that the
// clients would rightly judge, while what the soak checks is the server's judgement of them.
inline evwheel::EndpointOptions endpoint_options(evwheel::Side side, const Options& o) {
  evwheel::EndpointOptions e;
  e.side = side;
  e.heartbeat.ping_interval = std::chrono::milliseconds(o.interval_ms);
  e.heartbeat.idle_timeout = std::chrono::milliseconds(side == evwheel::Side::server ? o.idle_ms : o.client_idle_ms);
  return e;
}

// The longest a process's loop went without running: the worst lateness of a 10 ms timer.
class StallMeter {
 public:
  explicit StallMeter(evwheel::Reactor& reactor) : last_(std::chrono::steady_clock::now()) {
    reactor.run_every(kPeriod, [this] {
      auto now = std::chrono::steady_clock::now();
      max_ = std::max(max_, now - last_ - kPeriod);
      last_ = now;
    });
  }
  long max_ms() const { return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(max_).count()); }

 private:
  static constexpr std::chrono::milliseconds kPeriod{10};
  std::chrono::steady_clock::time_point last_;
  std::chrono::steady_clock::duration max_{};
};

struct ServerReport {
  int32_t port = 0;
  uint64_t open = 0, accepted = 0, idle_closes = 0, pings_sent = 0, pongs_received = 0;
  uint64_t closes[8] = {};
  uint64_t fds = 0;
  long rss_kib = -1;
  long stall_ms = 0;  // the server loop's longest stall so far
};

using ServerProcess = command_pipe::ChildProcess<ServerReport>;

// One client connection slot: its Connector, and what we did to its current connection.
struct Slot {
  std::unique_ptr<evwheel::Connector> connector;
  bool muted = false;
  bool closing = false;  // we are closing it (churn or reset)
  Clock::time_point muted_at{};
};

struct Counters {
  uint64_t opened = 0, churned = 0, resets = 0, mutes = 0, mutes_detected = 0, connect_errors = 0;
  uint64_t false_closes = 0;
  Duration max_detect{};
  Duration max_silence{};  // the longest a live connection went without a byte from the server
};

// The client side: --conns connections to the server child, churned, reset, muted and
// answering pings, with every invariant checked as events and reports arrive.
class Soak final : public evwheel::ConnectionHandler, public evwheel::IoHandler {
 public:
  Soak(const Options& o, ServerProcess& server);

  // Runs for --minutes (or until a check fails), then lets the last mutes be detected.
  void run(const ServerReport& first);
  void fail(const std::string& reason);
  // Prints the verdict line; the exit status.
  int verdict();

  // --- connection events ---
  void on_open(evwheel::Connection&) override;
  void on_close(evwheel::Connection& c, evwheel::CloseReason reason, int error) override;
  void on_connect_error(evwheel::Connector&, int error) override;
  // --- the server's reports ---
  void on_io(uint32_t) override;

 private:
  static std::string ms(Duration d);
  double elapsed_s() const;
  void drive();
  template <class Action>
  void act(long per_second, double* credit, Action action);
  Slot* pick();
  void close_slot(Slot& slot, bool reset);
  void mute(Slot& slot);
  void check_mutes();
  void check_silences();
  void ask_report();
  void check(const ServerReport& r);
  void settle();
  void print_line();

  const Options& o_;
  ServerProcess& server_;
  evwheel::Reactor reactor_;
  evwheel::Endpoint endpoint_;
  StallMeter stalls_;
  const Duration detect_bound_;
  std::vector<Slot> slots_;
  std::minstd_rand random_{12345};
  double churn_credit_ = 0, reset_credit_ = 0, mute_credit_ = 0;
  Counters counters_;
  ServerReport last_;
  uint64_t reports_received_ = 0;
  uint64_t base_fds_ = 0;
  bool finishing_ = false;  // tearing down: our own closes are not checked
  long warm_rss_kib_ = -1, max_rss_kib_ = -1;
  Clock::time_point began_, warm_until_, end_;
  std::string failure_;
};

}  // namespace soak
}  // namespace bench
