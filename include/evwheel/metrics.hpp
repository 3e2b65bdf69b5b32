// metrics — a snapshot of an endpoint's counters (and its listener's), mergeable across
// reactors, and its rendering in the Prometheus text exposition format (version 0.0.4).
//
// Threading: take a snapshot on the thread that runs the endpoint's reactor (with several
// reactors, post() a snapshot task to each and merge the results); the snapshot itself is a
// plain value.  Taking and rendering one allocate: they are for a scrape, not the hot path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "evwheel/histogram.hpp"

namespace evwheel {

class Endpoint;
class Listener;
class Reactor;

struct MetricsSnapshot {
  static constexpr std::size_t kCloseReasons = 8;  // CloseReason::peer_closed ..= error

  // Endpoint: connections.
  uint64_t connections_open = 0;   // a gauge: merged snapshots add up
  uint64_t connections_opened = 0;
  uint64_t closes[kCloseReasons] = {};  // by CloseReason
  // Endpoint: heartbeat (see HeartbeatStats).
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t pings_answered = 0;
  uint64_t pings_skipped = 0;
  uint64_t idle_closes = 0;
  uint64_t protocol_errors = 0;
  uint64_t late_reads = 0;
  Histogram rtt;
  Histogram ping_lateness;
  // Listener (see ListenerStats).
  uint64_t accepted = 0;
  uint64_t shed_limit = 0;
  uint64_t shed_descriptors = 0;
  uint64_t accept_pauses = 0;
  uint64_t accept_errors = 0;
  // Sending by connection id and broadcasting (see Endpoint::send, Endpoint::broadcast).
  uint64_t mail_dropped = 0;
  uint64_t broadcast_skipped = 0;
  uint64_t mailbox_refused = 0;    // the reactor's: add each reactor once

  // Adds the current counters of `endpoint` / `listener` / `reactor` to this snapshot.
  void add(const Endpoint& endpoint);
  void add(const Listener& listener);
  void add(const Reactor& reactor);
  // Adds another snapshot (e.g. another reactor's): every counter, gauge and histogram.
  void merge(const MetricsSnapshot& other);
};

// The counters of `endpoint` and its reactor, and of `listener` when given (one endpoint per
// reactor: with several, build the snapshot with add() and add the reactor once).
MetricsSnapshot snapshot(const Endpoint& endpoint, const Listener* listener = nullptr);

// Histogram buckets exposed by to_prometheus(): upper bounds of 2^k µs for k in this range
// (16 µs .. 16.777216 s), each a bucket boundary of Histogram, so every count is exact.
constexpr unsigned kPrometheusFirstBucketLog2 = 4;
constexpr unsigned kPrometheusLastBucketLog2 = 24;

// The snapshot as Prometheus text: families named evwheel_*, a HELP and a TYPE line each,
// counters ending in _total, durations in seconds, histograms with cumulative _bucket{le}
// lines ending at le="+Inf" (= _count), then _sum and _count.
std::string to_prometheus(const MetricsSnapshot& snapshot);

}  // namespace evwheel
