// soak — the client side of the soak mode (see soak.hpp): its connections, the faults it
// injects each 100 ms, and the checks on every close and every server report.
#include <sys/socket.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "soak.hpp"

namespace bench {
namespace soak {

using namespace std::chrono_literals;
using evwheel::CloseReason;

Soak::Soak(const Options& o, ServerProcess& server)
    : o_(o),
      server_(server),
      endpoint_(reactor_, *this, endpoint_options(evwheel::Side::client, o)),
      stalls_(reactor_),
      detect_bound_(std::chrono::milliseconds(o.idle_ms) +
                    endpoint_options(evwheel::Side::server, o).heartbeat.effective_tick() +
                    std::chrono::milliseconds(o.margin_ms)) {}

void Soak::run(const ServerReport& first) {
  base_fds_ = first.fds;
  std::string address = "127.0.0.1:" + std::to_string(first.port);
  slots_.resize(static_cast<std::size_t>(o_.conns));
  for (Slot& slot : slots_) {
    evwheel::ConnectorOptions co;
    co.address = address;
    slot.connector = std::make_unique<evwheel::Connector>(endpoint_, co);
    slot.connector->start();
  }
  reactor_.add(server_.messages_fd(), EPOLLIN, *this);
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
  reactor_.remove(server_.messages_fd());
  finishing_ = true;
  for (Slot& slot : slots_) slot.connector.reset();
}

void Soak::fail(const std::string& reason) {
  if (failure_.empty()) failure_ = reason;
}

// Prints the verdict line; the exit status.
int Soak::verdict() {
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
void Soak::on_open(evwheel::Connection&) { ++counters_.opened; }

void Soak::on_close(evwheel::Connection& c, CloseReason reason, int error) {
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

void Soak::on_connect_error(evwheel::Connector&, int error) {
  ++counters_.connect_errors;
  fail(std::string("a connect failed: ") + std::strerror(error));
}

// --- the server's reports ---
void Soak::on_io(uint32_t) {
  ServerReport r;
  if (!server_.next(r, 0ms)) {
    reactor_.remove(server_.messages_fd());
    return fail("the server child is gone");
  }
  check(r);
}

std::string Soak::ms(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

double Soak::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - began_).count(); }

// Applies `action` to per_second / 10 random open, unmuted slots (the remainder carries over).
template <class Action>
void Soak::act(long per_second, double* credit, Action action) {
  *credit += static_cast<double>(per_second) / 10;
  for (; *credit >= 1; *credit -= 1) {
    Slot* slot = pick();
    if (!slot) return;
    action(*slot);
  }
}

// Each 100 ms: reconnect empty slots, then this tick's share of churn, resets and mutes.
void Soak::drive() {
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

Slot* Soak::pick() {
  for (int tries = 0; tries < 16; ++tries) {
    Slot& slot = slots_[random_() % slots_.size()];
    if (slot.connector->connection() && !slot.muted && !slot.closing) return &slot;
  }
  return nullptr;
}

void Soak::close_slot(Slot& slot, bool reset) {
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

void Soak::mute(Slot& slot) {
  evwheel::Connection* c = slot.connector->connection();
  c->set_context(&slot);
  c->pause_reading();
  slot.muted = true;
  slot.muted_at = Clock::now();
  ++counters_.mutes;
}

// A muted connection still open well past the bound was never detected.
void Soak::check_mutes() {
  for (const Slot& slot : slots_)
    if (slot.muted && Clock::now() - slot.muted_at > detect_bound_ + 1s)
      fail("a mute not detected within " + ms(detect_bound_ + 1s) + " ms");
}

// A live (unmuted) connection that has not heard from the server for longer than the bound.
void Soak::check_silences() {
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

void Soak::ask_report() {
  if (!server_.command('r')) fail("the server child is gone");
}

void Soak::check(const ServerReport& r) {
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
void Soak::settle() {
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

void Soak::print_line() {
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


}  // namespace soak
}  // namespace bench
