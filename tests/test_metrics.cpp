// Metrics: the snapshot (from live objects, and merged), and its Prometheus text — the exact
// text for a known snapshot, and the format's rules for any snapshot.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cctype>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/histogram.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/metrics.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

MetricsSnapshot known_snapshot() {
  MetricsSnapshot s;
  s.connections_open = 2;
  s.connections_opened = 5;
  s.closes[static_cast<int>(CloseReason::peer_closed)] = 1;
  s.closes[static_cast<int>(CloseReason::idle_timeout)] = 2;
  s.pings_sent = 10;
  s.pongs_received = 8;
  s.pings_answered = 3;
  s.idle_closes = 2;
  s.late_reads = 1;
  for (auto rtt : {10us, 40us, 40us, 1500us}) s.rtt.record(rtt);
  s.ping_lateness.record(0ns);
  s.ping_lateness.record(3ms);
  s.accepted = 6;
  s.shed_limit = 1;
  s.mail_dropped = 3;
  s.mailbox_refused = 7;
  return s;
}

// Checked by hand: 10 µs is below 16 µs, 40 µs below 64 µs, 1.5 ms below 2.048 ms; the sums are
// 1590 µs and 3 ms.
const char* const kKnownText = R"(# HELP evwheel_connections_open Connections open now.
# TYPE evwheel_connections_open gauge
evwheel_connections_open 2
# HELP evwheel_connections_opened_total Connections opened (accepted or connected).
# TYPE evwheel_connections_opened_total counter
evwheel_connections_opened_total 5
# HELP evwheel_connections_closed_total Connections closed, by reason.
# TYPE evwheel_connections_closed_total counter
evwheel_connections_closed_total{reason="peer_closed"} 1
evwheel_connections_closed_total{reason="reset"} 0
evwheel_connections_closed_total{reason="idle_timeout"} 2
evwheel_connections_closed_total{reason="protocol_error"} 0
evwheel_connections_closed_total{reason="output_overflow"} 0
evwheel_connections_closed_total{reason="local_close"} 0
evwheel_connections_closed_total{reason="shutdown"} 0
evwheel_connections_closed_total{reason="error"} 0
# HELP evwheel_pings_sent_total Heartbeat pings sent.
# TYPE evwheel_pings_sent_total counter
evwheel_pings_sent_total 10
# HELP evwheel_pongs_received_total Pongs received for our pings.
# TYPE evwheel_pongs_received_total counter
evwheel_pongs_received_total 8
# HELP evwheel_pings_answered_total Pings from peers answered with a pong.
# TYPE evwheel_pings_answered_total counter
evwheel_pings_answered_total 3
# HELP evwheel_pings_skipped_total Pings skipped because traffic flowed both ways.
# TYPE evwheel_pings_skipped_total counter
evwheel_pings_skipped_total 0
# HELP evwheel_idle_closes_total Connections closed because the peer was silent too long.
# TYPE evwheel_idle_closes_total counter
evwheel_idle_closes_total 2
# HELP evwheel_protocol_errors_total Connections closed for a malformed or oversized frame.
# TYPE evwheel_protocol_errors_total counter
evwheel_protocol_errors_total 0
# HELP evwheel_late_reads_total Silent-looking peers whose bytes were already waiting (our loop was late).
# TYPE evwheel_late_reads_total counter
evwheel_late_reads_total 1
# HELP evwheel_rtt_seconds Heartbeat round-trip time.
# TYPE evwheel_rtt_seconds histogram
evwheel_rtt_seconds_bucket{le="0.000016"} 1
evwheel_rtt_seconds_bucket{le="0.000032"} 1
evwheel_rtt_seconds_bucket{le="0.000064"} 3
evwheel_rtt_seconds_bucket{le="0.000128"} 3
evwheel_rtt_seconds_bucket{le="0.000256"} 3
evwheel_rtt_seconds_bucket{le="0.000512"} 3
evwheel_rtt_seconds_bucket{le="0.001024"} 3
evwheel_rtt_seconds_bucket{le="0.002048"} 4
evwheel_rtt_seconds_bucket{le="0.004096"} 4
evwheel_rtt_seconds_bucket{le="0.008192"} 4
evwheel_rtt_seconds_bucket{le="0.016384"} 4
evwheel_rtt_seconds_bucket{le="0.032768"} 4
evwheel_rtt_seconds_bucket{le="0.065536"} 4
evwheel_rtt_seconds_bucket{le="0.131072"} 4
evwheel_rtt_seconds_bucket{le="0.262144"} 4
evwheel_rtt_seconds_bucket{le="0.524288"} 4
evwheel_rtt_seconds_bucket{le="1.048576"} 4
evwheel_rtt_seconds_bucket{le="2.097152"} 4
evwheel_rtt_seconds_bucket{le="4.194304"} 4
evwheel_rtt_seconds_bucket{le="8.388608"} 4
evwheel_rtt_seconds_bucket{le="16.777216"} 4
evwheel_rtt_seconds_bucket{le="+Inf"} 4
evwheel_rtt_seconds_sum 0.00159
evwheel_rtt_seconds_count 4
# HELP evwheel_ping_lateness_seconds How late pings went out against their schedule.
# TYPE evwheel_ping_lateness_seconds histogram
evwheel_ping_lateness_seconds_bucket{le="0.000016"} 1
evwheel_ping_lateness_seconds_bucket{le="0.000032"} 1
evwheel_ping_lateness_seconds_bucket{le="0.000064"} 1
evwheel_ping_lateness_seconds_bucket{le="0.000128"} 1
evwheel_ping_lateness_seconds_bucket{le="0.000256"} 1
evwheel_ping_lateness_seconds_bucket{le="0.000512"} 1
evwheel_ping_lateness_seconds_bucket{le="0.001024"} 1
evwheel_ping_lateness_seconds_bucket{le="0.002048"} 1
evwheel_ping_lateness_seconds_bucket{le="0.004096"} 2
evwheel_ping_lateness_seconds_bucket{le="0.008192"} 2
evwheel_ping_lateness_seconds_bucket{le="0.016384"} 2
evwheel_ping_lateness_seconds_bucket{le="0.032768"} 2
evwheel_ping_lateness_seconds_bucket{le="0.065536"} 2
evwheel_ping_lateness_seconds_bucket{le="0.131072"} 2
evwheel_ping_lateness_seconds_bucket{le="0.262144"} 2
evwheel_ping_lateness_seconds_bucket{le="0.524288"} 2
evwheel_ping_lateness_seconds_bucket{le="1.048576"} 2
evwheel_ping_lateness_seconds_bucket{le="2.097152"} 2
evwheel_ping_lateness_seconds_bucket{le="4.194304"} 2
evwheel_ping_lateness_seconds_bucket{le="8.388608"} 2
evwheel_ping_lateness_seconds_bucket{le="16.777216"} 2
evwheel_ping_lateness_seconds_bucket{le="+Inf"} 2
evwheel_ping_lateness_seconds_sum 0.003
evwheel_ping_lateness_seconds_count 2
# HELP evwheel_accepted_total Connections accepted by listeners.
# TYPE evwheel_accepted_total counter
evwheel_accepted_total 6
# HELP evwheel_shed_total Connections accepted and closed at once, by cause.
# TYPE evwheel_shed_total counter
evwheel_shed_total{cause="max_connections"} 1
evwheel_shed_total{cause="descriptors"} 0
# HELP evwheel_accept_pauses_total Times accepting paused for lack of resources.
# TYPE evwheel_accept_pauses_total counter
evwheel_accept_pauses_total 0
# HELP evwheel_accept_errors_total Accept failures other than transient ones.
# TYPE evwheel_accept_errors_total counter
evwheel_accept_errors_total 0
# HELP evwheel_mail_dropped_total Messages sent by connection id after that connection had closed.
# TYPE evwheel_mail_dropped_total counter
evwheel_mail_dropped_total 3
# HELP evwheel_broadcast_skipped_total Broadcast copies not sent: the connection's queued output was at its high-water mark.
# TYPE evwheel_broadcast_skipped_total counter
evwheel_broadcast_skipped_total 0
# HELP evwheel_mailbox_refused_total Messages from other threads refused because the reactor's mailbox was full.
# TYPE evwheel_mailbox_refused_total counter
evwheel_mailbox_refused_total 7
)";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool valid_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  return true;
}

// Checks the exposition rules on `text`; returns the first violation, or "" if none.
std::string format_violation(const std::string& text) {
  if (text.empty() || text.back() != '\n') return "the text does not end with a newline";
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> finished;            // families whose samples are over
  std::string current, current_type;
  double last_le = -1;
  uint64_t last_bucket = 0, inf_bucket = 0;
  bool saw_inf = false;
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream in(line.substr(7));
      std::string family, type;
      in >> family >> type;
      if (!valid_name(family)) return "bad family name: " + line;
      if (types.count(family)) return "a second TYPE line: " + line;
      if (type != "counter" && type != "gauge" && type != "histogram") return "unknown type: " + line;
      if (type == "counter" && family.size() < 6) return "short counter name: " + line;
      if (type == "counter" && family.compare(family.size() - 6, 6, "_total") != 0) return "counter without _total: " + line;
      if (!current.empty()) finished.insert(current);
      types[family] = type;
      current = family;
      current_type = type;
      last_le = -1;
      last_bucket = 0;
      saw_inf = false;
      continue;
    }
    std::size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos) return "no value: " + line;
    std::string name = line.substr(0, name_end);
    uint64_t value = std::stoull(line.substr(line.rfind(' ') + 1));
    if (current_type != "histogram") {
      if (name != current) return "sample outside its family: " + line;
      continue;
    }
    if (name == current + "_bucket") {
      std::size_t le_at = line.find("le=\"");
      if (le_at == std::string::npos) return "bucket without le: " + line;
      std::string le = line.substr(le_at + 4, line.find('"', le_at + 4) - le_at - 4);
      if (saw_inf) return "bucket after +Inf: " + line;
      if (le == "+Inf") {
        saw_inf = true;
        inf_bucket = value;
      } else {
        double bound = std::stod(le);
        if (bound <= last_le) return "le not increasing: " + line;
        last_le = bound;
      }
      if (value < last_bucket) return "buckets not cumulative: " + line;
      last_bucket = value;
    } else if (name == current + "_sum") {
      if (!saw_inf) return "_sum before the +Inf bucket: " + line;
    } else if (name == current + "_count") {
      if (!saw_inf) return "_count before the +Inf bucket: " + line;
      if (value != inf_bucket) return "_count differs from the +Inf bucket: " + line;
    } else {
      return "sample outside its family: " + line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("a known snapshot renders as exactly the expected Prometheus text") {
  CHECK(to_prometheus(known_snapshot()) == kKnownText);
}

TEST_CASE("the Prometheus text keeps the format's rules on any snapshot: one TYPE per family, sorted le, +Inf = count") {
  CHECK(format_violation(kKnownText).empty());
  MetricsSnapshot varied = known_snapshot();
  for (int i = 0; i < 1000; ++i) varied.rtt.record(Duration(int64_t{i} * i * 997));
  varied.ping_lateness.record(std::chrono::hours(1));  // beyond the last finite bound
  varied.merge(known_snapshot());
  std::string text = to_prometheus(varied);
  CHECK(format_violation(text) == "");
  CHECK(text.find("evwheel_ping_lateness_seconds_bucket{le=\"16.777216\"} 4\n") != std::string::npos);
  CHECK(text.find("evwheel_ping_lateness_seconds_bucket{le=\"+Inf\"} 5\n") != std::string::npos);
  CHECK(text.find("evwheel_ping_lateness_seconds_sum 3600.006\n") != std::string::npos);
  CHECK(format_violation(to_prometheus(MetricsSnapshot{})) == "");

  // Seeded random snapshots: counters anywhere in 64 bits, histograms from empty to samples
  // spread from nanoseconds to days (past the last finite bucket).
  std::mt19937_64 rng(20261129);
  int histogram_samples = 0;
  for (int round = 0; round < 200; ++round) {
    CAPTURE(round);
    MetricsSnapshot any;
    for (uint64_t* counter : {&any.connections_open, &any.connections_opened, &any.pings_sent, &any.pongs_received,
                              &any.pings_answered, &any.pings_skipped, &any.idle_closes, &any.protocol_errors,
                              &any.late_reads, &any.accepted, &any.shed_limit, &any.shed_descriptors,
                              &any.accept_pauses, &any.accept_errors})
      *counter = rng() >> (rng() % 64);
    for (uint64_t& close : any.closes) close = rng() >> (rng() % 64);
    for (Histogram* histogram : {&any.rtt, &any.ping_lateness}) {
      for (int n = static_cast<int>(rng() % 50); n > 0; --n, ++histogram_samples)
        histogram->record(Duration(static_cast<int64_t>(rng() >> (rng() % 63 + 1))));
    }
    CHECK(format_violation(to_prometheus(any)) == "");
  }
  CHECK(histogram_samples > 1000);

  // The checker itself catches what it is for.
  CHECK(format_violation("# TYPE a_total counter\na_total 1\n# TYPE a_total counter\n") != "");
  CHECK(format_violation("# TYPE a counter\na 1\n") != "");
  CHECK(format_violation("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n") != "");
  CHECK(format_violation("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n") != "");
  CHECK(format_violation("# TYPE g gauge\ng 1") != "");
}

TEST_CASE("merged snapshots add every counter, gauge and histogram") {
  MetricsSnapshot a = known_snapshot(), b = known_snapshot();
  b.accept_errors = 4;
  b.shed_descriptors = 1;
  a.merge(b);
  CHECK(a.connections_open == 4);
  CHECK(a.connections_opened == 10);
  CHECK(a.closes[static_cast<int>(CloseReason::idle_timeout)] == 4);
  CHECK(a.pings_sent == 20);
  CHECK(a.pongs_received == 16);
  CHECK(a.late_reads == 2);
  CHECK(a.rtt.count() == 8);
  CHECK(a.rtt.sum() == 2 * 1590us);
  CHECK(a.ping_lateness.max() == 3ms);
  CHECK(a.accepted == 12);
  CHECK(a.shed_limit == 2);
  CHECK(a.shed_descriptors == 1);
  CHECK(a.accept_errors == 4);
  CHECK(a.mail_dropped == 6);
  CHECK(a.mailbox_refused == 14);
}

TEST_CASE("every power of two of microseconds starts a Histogram bucket, so the exported counts are exact") {
  for (unsigned k = 0; k < 40; ++k) {
    uint64_t bound = uint64_t{1} << k;
    bool boundary = false;
    for (unsigned b = 0; b + 1 < Histogram::kBuckets && !boundary; ++b)
      boundary = Histogram::upper_bound_of(b) == bound - 1 && Histogram::upper_bound_of(b + 1) >= bound;
    CHECK_MESSAGE(boundary, "2^", k, " us");
  }
  Histogram h;
  h.record(std::chrono::microseconds(63));   // below 64 µs
  h.record(std::chrono::microseconds(64));   // from 64 µs up
  h.record(std::chrono::nanoseconds(-5));    // clamped to 0, as record() documents
  uint64_t below_64 = 0;
  for (unsigned b = 0; Histogram::upper_bound_of(b) < 64; ++b) below_64 += h.bucket(b);
  CHECK(below_64 == 2);
  CHECK(h.sum() == 127us);
}

TEST_CASE("a snapshot of a live endpoint and listener counts opens, closes, accepts and sheds") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    Endpoint endpoint(reactor, handler, options(Side::server, 20ms, 5s));
    ListenerOptions listener_options;
    listener_options.max_connections = 2;
    Listener listener(endpoint, listener_options);
    int a = raw_connect(listener.port()), b = raw_connect(listener.port()), c = raw_connect(listener.port());
    REQUIRE(pump_until(reactor, [&] { return handler.opens == 2 && listener.stats().shed_limit == 1; }));
    ::close(a);
    REQUIRE(pump_until(reactor, [&] { return handler.closes.size() == 1 && endpoint.heartbeat_stats().pings_sent >= 1; }));

    MetricsSnapshot s = snapshot(endpoint, &listener);
    CHECK(s.connections_open == 1);
    CHECK(s.connections_opened == 2);
    CHECK(s.closes[static_cast<int>(CloseReason::peer_closed)] == 1);
    CHECK(s.accepted == 2);
    CHECK(s.shed_limit == 1);
    CHECK(s.pings_sent == endpoint.heartbeat_stats().pings_sent);
    CHECK(s.ping_lateness.count() == endpoint.heartbeat_stats().ping_lateness.count());
    CHECK(snapshot(endpoint).accepted == 0);  // without the listener

    std::string text = to_prometheus(s);
    CHECK(text.find("\nevwheel_connections_open 1\n") != std::string::npos);
    CHECK(text.find("\nevwheel_connections_closed_total{reason=\"peer_closed\"} 1\n") != std::string::npos);
    CHECK(text.find("\nevwheel_shed_total{cause=\"max_connections\"} 1\n") != std::string::npos);
    ::close(b);
    ::close(c);
  }
  CHECK(open_fd_count() == fds);
}
