// soak — a long run of everything at once, with its invariants checked as it goes.
//
// A heartbeat server runs in a forked child process (its own loop, descriptors and RSS); this
// process keeps --conns client connections to it and, at the same time:
//   churn   closes some connections (FIN) and opens new ones;
//   resets  closes some with SO_LINGER 0 (the server sees ECONNRESET);
//   mutes   pauses reading on some (they stay open but never answer a ping again);
//   heartbeats  every connection answers the server's pings (short P and I).
// A closed slot is connected again on the next driver tick, so about --conns stay open.
//
// Invariants, checked on every event and on the server's report once a second:
//   * no false close: a connection we did not close and did not mute is never closed (by
//     either side, for any reason), and the server's idle_closes never exceeds the mutes;
//   * every mute is detected: the server resets a muted connection within I + tick + margin
//     of the mute (I + tick is the heartbeat's own bound; the margin is for a loaded machine);
//   * the server keeps talking: no live connection hears nothing from it for longer than that
//     same bound (it pings every P after a pong, so the longest silence is about P + tick);
//   * the server's descriptors are exactly its base set plus its open connections;
//   * after warm-up (a fifth of the run, at most 60 s) the server's RSS grows less than
//     --rss-growth-kib, and connects never fail.
// Both processes also measure their loop's longest stall (the worst lateness of a 10 ms timer),
// printed with the figures, so a failure caused by the machine not running a process for about
// I can be told from one caused by the library.  The clients bear a silent server for
// --client-idle-timeout-ms (5 s), not I: see endpoint_options().
// A line of figures every ~10 s; the last line is "soak: PASS ..." (exit 0) or
// "soak: FAIL <reason>" (exit 1).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "modes.hpp"
#include "system.hpp"

namespace bench {

const char soak_usage[] =
    "evwheel-bench soak [--minutes 1] [--conns 200] [--ping-interval-ms 200]\n"
    "                   [--idle-timeout-ms 600] [--churn-per-s 20] [--resets-per-s 10]\n"
    "                   [--mutes-per-s 2] [--margin-ms 300] [--rss-growth-kib 2048]\n"
    "                   [--client-idle-timeout-ms 5000]\n"
    "    A heartbeat server in a child process, --conns clients here, for --minutes: churn\n"
    "    (FIN closes), resets (SO_LINGER 0), mutes (pause_reading) and heartbeats at once.\n"
    "    Checks as it runs: no false closes, every mute closed by the server within\n"
    "    I + tick + --margin-ms, server descriptors = base + open, server RSS growth after\n"
    "    warm-up below --rss-growth-kib.  Prints figures every ~10 s and ends with\n"
    "    'soak: PASS ...' (exit 0) or 'soak: FAIL <reason>' (exit 1).  The clients only answer\n"
    "    pings; they bear a silent server for --client-idle-timeout-ms.\n";

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using evwheel::CloseReason;
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

int parse_options(int argc, char** argv, Options* o) {
  struct Number {
    const char* name;
    long* out;
    long min, max;
  };
  const Number numbers[] = {
      {"--conns", &o->conns, 1, 10000},
      {"--ping-interval-ms", &o->interval_ms, 10, 3'600'000},
      {"--idle-timeout-ms", &o->idle_ms, 20, 3'600'000},
      {"--client-idle-timeout-ms", &o->client_idle_ms, 20, 3'600'000},
      {"--churn-per-s", &o->churn_per_s, 0, 100000},
      {"--resets-per-s", &o->resets_per_s, 0, 100000},
      {"--mutes-per-s", &o->mutes_per_s, 0, 100000},
      {"--margin-ms", &o->margin_ms, 0, 3'600'000},
      {"--rss-growth-kib", &o->rss_growth_kib, 0, 1L << 30},
  };
  for (int i = 1; i < argc; ++i) {
    bool missing = false, known = false;
    if (const char* value = sys::option("--minutes", argc, argv, &i, &missing)) {
      known = true;
      if (!sys::parse_real(value, &o->minutes) || o->minutes <= 0 || o->minutes > 10080)
        return usage_error(std::string("soak: bad --minutes '") + value + "' (want a number of minutes, > 0)");
    }
    for (const Number& n : numbers) {
      if (known || missing) break;
      if (const char* value = sys::option(n.name, argc, argv, &i, &missing)) {
        known = true;
        if (!sys::parse_integer(value, n.out) || *n.out < n.min || *n.out > n.max)
          return usage_error(std::string("soak: bad ") + n.name + " '" + value + "' (want a whole number in " +
                             std::to_string(n.min) + ".." + std::to_string(n.max) + ")");
      }
    }
    if (missing) return usage_error(std::string("soak: option ") + argv[i] + " needs a value");
    if (!known) return usage_error(std::string("soak: unknown option '") + argv[i] + "'");
  }
  if (o->idle_ms <= o->interval_ms)
    return usage_error("soak: --idle-timeout-ms must be longer than --ping-interval-ms");
  if (o->client_idle_ms <= o->interval_ms)
    return usage_error("soak: --client-idle-timeout-ms must be longer than --ping-interval-ms");
  return 0;
}

// The server pings every P and judges its clients with I.  The clients only answer; their own
// idle timeout is how long they bear a silent server, longer than I by default: on a loaded
// machine the server's process itself can be descheduled for about I, a real silence that the
// clients would rightly judge, while what the soak checks is the server's judgement of them.
evwheel::EndpointOptions endpoint_options(evwheel::Side side, const Options& o) {
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

// --- the server child ------------------------------------------------------------------------

struct ServerReport {
  int32_t port = 0;
  uint64_t open = 0, accepted = 0, idle_closes = 0, pings_sent = 0, pongs_received = 0;
  uint64_t closes[8] = {};
  uint64_t fds = 0;
  long rss_kib = -1;
  long stall_ms = 0;  // the server loop's longest stall so far
};

// Descriptors this process has open: /proc/self/fd, minus the one listing it.
uint64_t count_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return 0;
  uint64_t n = 0;
  while (dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != ::dirfd(dir)) ++n;
  ::closedir(dir);
  return n;
}

// The child's end of the command pipe: 'r' writes a report, 'q' or EOF stops the loop.
class ServerControl final : public evwheel::IoHandler {
 public:
  ServerControl(evwheel::Reactor& reactor, evwheel::Endpoint& endpoint, evwheel::Listener& listener, int in, int out)
      : reactor_(reactor), endpoint_(endpoint), listener_(listener), stalls_(reactor), in_(in), out_(out) {}
  void report() const {
    ServerReport r;
    r.port = listener_.port();
    r.open = endpoint_.size();
    r.accepted = listener_.stats().accepted;
    const auto& hb = endpoint_.heartbeat_stats();
    r.idle_closes = hb.idle_closes;
    r.pings_sent = hb.pings_sent;
    r.pongs_received = hb.pongs_received;
    std::copy(std::begin(endpoint_.stats().closes), std::end(endpoint_.stats().closes), r.closes);
    r.fds = count_fds();
    r.rss_kib = sys::status_kib("VmRSS");
    r.stall_ms = stalls_.max_ms();
    [[maybe_unused]] auto n = ::write(out_, &r, sizeof r);
  }
  void on_io(uint32_t) override {
    char command = 'q';
    if (::read(in_, &command, 1) != 1) command = 'q';
    if (command == 'r') report();
    if (command == 'q') {
      reactor_.remove(in_);
      reactor_.stop();
    }
  }

 private:
  evwheel::Reactor& reactor_;
  evwheel::Endpoint& endpoint_;
  evwheel::Listener& listener_;
  StallMeter stalls_;
  int in_, out_;
};

[[noreturn]] void server_child(const Options& o, int in, int out) {
  int status = 0;
  try {
    evwheel::Reactor reactor;
    evwheel::ConnectionHandler quiet;
    evwheel::Endpoint endpoint(reactor, quiet, endpoint_options(evwheel::Side::server, o));
    evwheel::Listener listener(endpoint, evwheel::ListenerOptions{});
    ServerControl control(reactor, endpoint, listener, in, out);
    reactor.add(in, EPOLLIN, control);
    control.report();
    reactor.run();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "soak: server child: %s\n", error.what());
    status = 1;
  }
  ::_exit(status);
}

// --- the client side ---------------------------------------------------------------------------

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

class Soak final : public evwheel::ConnectionHandler, public evwheel::IoHandler {
 public:
  Soak(const Options& o, int commands, int reports)
      : o_(o), commands_(commands), reports_(reports),
        endpoint_(reactor_, *this, endpoint_options(evwheel::Side::client, o)),
        stalls_(reactor_),
        detect_bound_(std::chrono::milliseconds(o.idle_ms) +
                      endpoint_options(evwheel::Side::server, o).heartbeat.effective_tick() +
                      std::chrono::milliseconds(o.margin_ms)) {}

  void run(const ServerReport& first) {
    base_fds_ = first.fds;
    std::string address = "127.0.0.1:" + std::to_string(first.port);
    slots_.resize(static_cast<std::size_t>(o_.conns));
    for (Slot& slot : slots_) {
      evwheel::ConnectorOptions co;
      co.address = address;
      slot.connector = std::make_unique<evwheel::Connector>(endpoint_, co);
      slot.connector->start();
    }
    reactor_.add(reports_, EPOLLIN, *this);
    began_ = Clock::now();
    const auto length = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.minutes * 60));
    warm_until_ = began_ + std::min<Clock::duration>(length / 5, 60s);
    end_ = began_ + length;
    reactor_.run_every(100ms, [this] { drive(); });
    reactor_.run_every(1s, [this] { ask_report(); });
    reactor_.run_every(10s, [this] { print_line(); });
    while (Clock::now() < end_ && failure_.empty()) reactor_.run_once(100ms);
    settle();
    print_line();
    reactor_.remove(reports_);
    finishing_ = true;
    for (Slot& slot : slots_) slot.connector.reset();
  }

  void fail(const std::string& reason) {
    if (failure_.empty()) failure_ = reason;
  }

  // Prints the verdict line; the exit status.
  int verdict() {
    if (failure_.empty() && warm_rss_kib_ < 0) fail("the run ended before warm-up did");
    if (!failure_.empty()) {
      std::printf("soak: FAIL %s (after %.0f s)\n", failure_.c_str(), elapsed_s());
      return 1;
    }
    std::printf("soak: PASS %.1f min, %" PRIu64 " connections opened, %" PRIu64 " churned, %" PRIu64
                " reset, %" PRIu64 " muted and all detected (max %s ms, bound %s ms), 0 false closes, "
                "longest server silence on a live connection %s ms, "
                "server fds = base %" PRIu64 " + open, RSS %ld -> %ld KiB (max %ld), %" PRIu64
                " pongs, longest loop stalls: server %ld ms, clients %ld ms\n",
                o_.minutes, counters_.opened, counters_.churned, counters_.resets, counters_.mutes,
                ms(counters_.max_detect).c_str(), ms(detect_bound_).c_str(), ms(counters_.max_silence).c_str(),
                base_fds_, warm_rss_kib_,
                last_.rss_kib, max_rss_kib_, last_.pongs_received, last_.stall_ms, stalls_.max_ms());
    return 0;
  }

  // --- connection events ---
  // A connection's context is its Slot once we act on it (close or mute); one we never touched
  // has none, and any close of it (before teardown) is a false one.
  void on_open(evwheel::Connection&) override { ++counters_.opened; }
  void on_close(evwheel::Connection& c, CloseReason reason, int error) override {
    if (finishing_) return;
    auto* slot = static_cast<Slot*>(c.context());
    if (!slot) {
      ++counters_.false_closes;
      return fail(std::string("false close: a live connection closed by ") + evwheel::to_string(reason) +
                  (error ? std::string(" (") + std::strerror(error) + ")" : "") + "; longest loop stalls so far: server " +
                  std::to_string(last_.stall_ms) + " ms, clients " + std::to_string(stalls_.max_ms()) + " ms");
    }
    if (slot->closing) {
      slot->closing = false;
    } else if (slot->muted) {
      Duration took = Clock::now() - slot->muted_at;
      counters_.max_detect = std::max(counters_.max_detect, took);
      if (reason != CloseReason::reset) fail("a muted connection closed by " + std::string(evwheel::to_string(reason)));
      if (took > detect_bound_) fail("a mute detected after " + ms(took) + " ms (bound " + ms(detect_bound_) + " ms)");
      ++counters_.mutes_detected;
    }
    slot->muted = false;
  }
  void on_connect_error(evwheel::Connector&, int error) override {
    ++counters_.connect_errors;
    fail(std::string("a connect failed: ") + std::strerror(error));
  }

  // --- the server's reports ---
  void on_io(uint32_t) override {
    ServerReport r;
    ssize_t got = ::read(reports_, &r, sizeof r);
    if (got != static_cast<ssize_t>(sizeof r)) {
      reactor_.remove(reports_);
      return fail("the server child is gone");
    }
    check(r);
  }

 private:
  static std::string ms(Duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }
  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - began_).count(); }

  // Each 100 ms: reconnect empty slots, then this tick's share of churn, resets and mutes.
  void drive() {
    for (Slot& slot : slots_) {
      auto state = slot.connector->state();
      if (state == evwheel::Connector::State::idle) slot.connector->start();
    }
    act(o_.churn_per_s, &churn_credit_, [this](Slot& s) { close_slot(s, false); });
    act(o_.resets_per_s, &reset_credit_, [this](Slot& s) { close_slot(s, true); });
    act(o_.mutes_per_s, &mute_credit_, [this](Slot& s) { mute(s); });
    check_mutes();
    check_silences();
  }
  // Applies `action` to per_second / 10 random open, unmuted slots (the remainder carries over).
  template <class Action>
  void act(long per_second, double* credit, Action action) {
    *credit += static_cast<double>(per_second) / 10;
    for (; *credit >= 1; *credit -= 1) {
      Slot* slot = pick();
      if (!slot) return;
      action(*slot);
    }
  }
  Slot* pick() {
    for (int tries = 0; tries < 16; ++tries) {
      Slot& slot = slots_[random_() % slots_.size()];
      if (slot.connector->connection() && !slot.muted && !slot.closing) return &slot;
    }
    return nullptr;
  }
  void close_slot(Slot& slot, bool reset) {
    evwheel::Connection* c = slot.connector->connection();
    if (reset) {
      // The descriptor stays open until the connection is reclaimed: the linger applies to it.
      linger abort{1, 0};
      ::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      ++counters_.resets;
    } else {
      ++counters_.churned;
    }
    slot.closing = true;
    c->set_context(&slot);
    c->close();
  }
  void mute(Slot& slot) {
    evwheel::Connection* c = slot.connector->connection();
    c->set_context(&slot);
    c->pause_reading();
    slot.muted = true;
    slot.muted_at = Clock::now();
    ++counters_.mutes;
  }
  // A muted connection still open well past the bound was never detected.
  void check_mutes() {
    for (const Slot& slot : slots_)
      if (slot.muted && Clock::now() - slot.muted_at > detect_bound_ + 1s)
        fail("a mute not detected within " + ms(detect_bound_ + 1s) + " ms");
  }

  // A live (unmuted) connection that has not heard from the server for longer than the bound.
  void check_silences() {
    const auto now = reactor_.now();
    for (const Slot& slot : slots_) {
      const evwheel::Connection* c = slot.connector->connection();
      if (!c || slot.muted) continue;
      Duration silence = now - c->last_receive();
      counters_.max_silence = std::max(counters_.max_silence, silence);
      if (silence > detect_bound_)
        fail("a live connection heard nothing from the server for " + ms(silence) + " ms; longest loop stalls so far: server " +
             std::to_string(last_.stall_ms) + " ms, clients " + std::to_string(stalls_.max_ms()) + " ms");
    }
  }

  void ask_report() {
    char r = 'r';
    if (::write(commands_, &r, 1) != 1) fail("the server child is gone");
  }
  void check(const ServerReport& r) {
    last_ = r;
    ++reports_received_;
    if (r.fds != base_fds_ + r.open)
      fail("server descriptors " + std::to_string(r.fds) + " != base " + std::to_string(base_fds_) + " + open " +
           std::to_string(r.open));
    if (r.idle_closes > counters_.mutes)
      fail("server idle closes " + std::to_string(r.idle_closes) + " > mutes " + std::to_string(counters_.mutes));
    if (Clock::now() < warm_until_) return;
    if (warm_rss_kib_ < 0) warm_rss_kib_ = r.rss_kib;
    max_rss_kib_ = std::max(max_rss_kib_, r.rss_kib);
    if (r.rss_kib - warm_rss_kib_ >= o_.rss_growth_kib)
      fail("server RSS grew " + std::to_string(r.rss_kib - warm_rss_kib_) + " KiB after warm-up");
  }

  // After the run: no new faults; wait for the last mutes to be detected and the final report.
  void settle() {
    auto deadline = Clock::now() + detect_bound_ + 2s;
    auto muted = [&] {
      return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.muted; });
    };
    while (failure_.empty() && muted() && Clock::now() < deadline) reactor_.run_once(10ms);
    check_mutes();
    const uint64_t reports = reports_received_;
    ask_report();
    deadline = Clock::now() + 5s;
    while (reports_received_ == reports && Clock::now() < deadline && failure_.empty()) reactor_.run_once(10ms);
    if (last_.idle_closes != counters_.mutes_detected)
      fail("server idle closes " + std::to_string(last_.idle_closes) + " != mutes detected " +
           std::to_string(counters_.mutes_detected));
  }
  void print_line() {
    std::printf("soak: t=%.0fs open %zu opened %" PRIu64 " churned %" PRIu64 " resets %" PRIu64 " mutes %" PRIu64
                " detected %" PRIu64 " (max %s ms, bound %s ms) longest-silence %s ms false-closes %" PRIu64
                " connect-errors %" PRIu64
                " | server open %" PRIu64 " fds %" PRIu64 " (base %" PRIu64 ") rss %ld KiB (warm %ld) idle-closes %" PRIu64
                " pings %" PRIu64 " pongs %" PRIu64 " | longest stall: server %ld ms, clients %ld ms\n",
                elapsed_s(), endpoint_.size(), counters_.opened, counters_.churned, counters_.resets, counters_.mutes,
                counters_.mutes_detected, ms(counters_.max_detect).c_str(), ms(detect_bound_).c_str(),
                ms(counters_.max_silence).c_str(), counters_.false_closes, counters_.connect_errors, last_.open, last_.fds, base_fds_, last_.rss_kib,
                warm_rss_kib_, last_.idle_closes, last_.pings_sent, last_.pongs_received, last_.stall_ms, stalls_.max_ms());
    std::fflush(stdout);
  }

  const Options& o_;
  int commands_, reports_;
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

bool read_first_report(int fd, ServerReport* r) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1 && ::read(fd, r, sizeof *r) == static_cast<ssize_t>(sizeof *r);
}

}  // namespace

int run_soak(int argc, char** argv) {
  Options o;
  if (int status = parse_options(argc, argv, &o)) return status;
  print_header();
  sys::raise_nofile();
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
    std::printf("soak: FAIL cannot make pipes: %s\n", std::strerror(errno));
    return 1;
  }
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::printf("soak: FAIL fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    server_child(o, to_child[0], from_child[1]);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  ServerReport first;
  int status = 1;
  if (!read_first_report(from_child[0], &first)) {
    std::printf("soak: FAIL the server child did not start\n");
  } else {
    std::printf("soak: %.1f min, %ld connections, P %ld ms, I %ld ms (clients bear %ld ms); per second %ld churned, "
                "%ld reset, %ld muted\n",
                o.minutes, o.conns, o.interval_ms, o.idle_ms, o.client_idle_ms, o.churn_per_s, o.resets_per_s,
                o.mutes_per_s);
    std::fflush(stdout);
    Soak soak(o, to_child[1], from_child[0]);
    soak.run(first);
    ::close(to_child[1]);  // EOF: the child's loop stops
    int child_status = 0;
    ::waitpid(pid, &child_status, 0);
    if (!(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0))
      soak.fail("the server child exited with status " + std::to_string(child_status));
    status = soak.verdict();
    ::close(from_child[0]);
    return status;
  }
  ::close(to_child[1]);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(from_child[0]);
  return status;
}

}  // namespace bench
