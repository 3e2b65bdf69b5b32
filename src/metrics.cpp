// metrics — see include/evwheel/metrics.hpp.
#include "evwheel/metrics.hpp"

#include <cinttypes>
#include <cstdio>

#include "evwheel/connection.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"

namespace evwheel {

static_assert(static_cast<std::size_t>(CloseReason::error) + 1 == MetricsSnapshot::kCloseReasons,
              "a new close reason needs a metrics label");
static_assert(sizeof(EndpointStats::closes) == sizeof(MetricsSnapshot::closes),
              "EndpointStats and MetricsSnapshot count the same close reasons");

namespace {

// Label values for CloseReason, in enum order: identifiers, unlike to_string()'s prose.
const char* const kReasonLabels[MetricsSnapshot::kCloseReasons] = {
    "peer_closed", "reset", "idle_timeout", "protocol_error",
    "output_overflow", "local_close", "shutdown", "error"};

// `whole`/`unit` as an exact decimal: "0.000016", "1.5", "12" (Prometheus reads any float).
std::string exact_decimal(uint64_t whole, uint64_t unit, int digits) {
  char text[48];
  int length = std::snprintf(text, sizeof text, "%" PRIu64 ".%0*" PRIu64, whole / unit, digits, whole % unit);
  while (text[length - 1] == '0') --length;
  if (text[length - 1] == '.') --length;
  return std::string(text, static_cast<std::size_t>(length));
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP evwheel_";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE evwheel_";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // One sample: evwheel_<name><suffix>{<labels>} <value>.
  void sample(const char* name, const char* suffix, const std::string& labels, const std::string& value) {
    out_ += "evwheel_";
    out_ += name;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void single(const char* name, const char* type, const char* help, uint64_t value) {
    family(name, type, help);
    sample(name, "", "", std::to_string(value));
  }
  void histogram(const char* name, const char* help, const Histogram& histogram) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    unsigned bucket = 0;
    for (unsigned k = kPrometheusFirstBucketLog2; k <= kPrometheusLastBucketLog2; ++k) {
      uint64_t bound = uint64_t{1} << k;  // µs; values below it are in the buckets before it
      for (; bucket < Histogram::kBuckets && Histogram::upper_bound_of(bucket) < bound; ++bucket)
        cumulative += histogram.bucket(bucket);
      sample(name, "_bucket", "le=\"" + exact_decimal(bound, 1'000'000, 6) + "\"", std::to_string(cumulative));
    }
    sample(name, "_bucket", "le=\"+Inf\"", std::to_string(histogram.count()));
    sample(name, "_sum", "", exact_decimal(static_cast<uint64_t>(histogram.sum().count()), 1'000'000'000, 9));
    sample(name, "_count", "", std::to_string(histogram.count()));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

void MetricsSnapshot::add(const Endpoint& endpoint) {
  const EndpointStats& stats = endpoint.stats();
  const HeartbeatStats& heartbeat = endpoint.heartbeat_stats();
  connections_open += endpoint.size();
  connections_opened += stats.opened;
  for (std::size_t i = 0; i < kCloseReasons; ++i) closes[i] += stats.closes[i];
  pings_sent += heartbeat.pings_sent;
  pongs_received += heartbeat.pongs_received;
  pings_answered += heartbeat.pings_answered;
  pings_skipped += heartbeat.pings_skipped;
  idle_closes += heartbeat.idle_closes;
  protocol_errors += heartbeat.protocol_errors;
  late_reads += heartbeat.late_reads;
  mail_dropped += stats.mail_dropped;
  broadcast_skipped += stats.broadcast_skipped;
  rtt.merge(heartbeat.rtt);
  ping_lateness.merge(heartbeat.ping_lateness);
}

void MetricsSnapshot::add(const Listener& listener) {
  const ListenerStats& stats = listener.stats();
  accepted += stats.accepted;
  shed_limit += stats.shed_limit;
  shed_descriptors += stats.shed_descriptors;
  accept_pauses += stats.pauses;
  accept_errors += stats.accept_errors;
}

void MetricsSnapshot::add(const Reactor& reactor) { mailbox_refused += reactor.mailbox().refused(); }

void MetricsSnapshot::merge(const MetricsSnapshot& other) {
  connections_open += other.connections_open;
  connections_opened += other.connections_opened;
  for (std::size_t i = 0; i < kCloseReasons; ++i) closes[i] += other.closes[i];
  pings_sent += other.pings_sent;
  pongs_received += other.pongs_received;
  pings_answered += other.pings_answered;
  pings_skipped += other.pings_skipped;
  idle_closes += other.idle_closes;
  protocol_errors += other.protocol_errors;
  late_reads += other.late_reads;
  rtt.merge(other.rtt);
  ping_lateness.merge(other.ping_lateness);
  accepted += other.accepted;
  shed_limit += other.shed_limit;
  shed_descriptors += other.shed_descriptors;
  accept_pauses += other.accept_pauses;
  accept_errors += other.accept_errors;
  mail_dropped += other.mail_dropped;
  broadcast_skipped += other.broadcast_skipped;
  mailbox_refused += other.mailbox_refused;
}

MetricsSnapshot snapshot(const Endpoint& endpoint, const Listener* listener) {
  MetricsSnapshot result;
  result.add(endpoint);
  result.add(endpoint.reactor());
  if (listener) result.add(*listener);
  return result;
}

std::string to_prometheus(const MetricsSnapshot& s) {
  Writer w;
  w.single("connections_open", "gauge", "Connections open now.", s.connections_open);
  w.single("connections_opened_total", "counter", "Connections opened (accepted or connected).",
           s.connections_opened);
  w.family("connections_closed_total", "counter", "Connections closed, by reason.");
  for (std::size_t i = 0; i < MetricsSnapshot::kCloseReasons; ++i)
    w.sample("connections_closed_total", "", std::string("reason=\"") + kReasonLabels[i] + "\"",
             std::to_string(s.closes[i]));
  w.single("pings_sent_total", "counter", "Heartbeat pings sent.", s.pings_sent);
  w.single("pongs_received_total", "counter", "Pongs received for our pings.", s.pongs_received);
  w.single("pings_answered_total", "counter", "Pings from peers answered with a pong.", s.pings_answered);
  w.single("pings_skipped_total", "counter", "Pings skipped because traffic flowed both ways.",
           s.pings_skipped);
  w.single("idle_closes_total", "counter", "Connections closed because the peer was silent too long.",
           s.idle_closes);
  w.single("protocol_errors_total", "counter", "Connections closed for a malformed or oversized frame.",
           s.protocol_errors);
  w.single("late_reads_total", "counter",
           "Silent-looking peers whose bytes were already waiting (our loop was late).", s.late_reads);
  w.histogram("rtt_seconds", "Heartbeat round-trip time.", s.rtt);
  w.histogram("ping_lateness_seconds", "How late pings went out against their schedule.", s.ping_lateness);
  w.single("accepted_total", "counter", "Connections accepted by listeners.", s.accepted);
  w.family("shed_total", "counter", "Connections accepted and closed at once, by cause.");
  w.sample("shed_total", "", "cause=\"max_connections\"", std::to_string(s.shed_limit));
  w.sample("shed_total", "", "cause=\"descriptors\"", std::to_string(s.shed_descriptors));
  w.single("accept_pauses_total", "counter", "Times accepting paused for lack of resources.", s.accept_pauses);
  w.single("accept_errors_total", "counter", "Accept failures other than transient ones.", s.accept_errors);
  w.single("mail_dropped_total", "counter", "Messages sent by connection id after that connection had closed.",
           s.mail_dropped);
  w.single("broadcast_skipped_total", "counter",
           "Broadcast copies not sent: the connection's queued output was at its high-water mark.",
           s.broadcast_skipped);
  w.single("mailbox_refused_total", "counter",
           "Messages from other threads refused because the reactor's mailbox was full.", s.mailbox_refused);
  return w.take();
}

}  // namespace evwheel
