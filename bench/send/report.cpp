// send — the report: one column per phase on stdout, the notes under it, and --json.
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "../common/json.hpp"
#include "../modes.hpp"
#include "send.hpp"

namespace bench {
namespace send {
namespace {

constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

double us(evwheel::Duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

std::string count(uint64_t n) { return std::to_string(n); }

double per_second(uint64_t n, double seconds) { return seconds > 0 ? static_cast<double>(n) / seconds : 0; }

// Messages per second of a phase: over the producer's time for send by id, over the phase's
// window otherwise (the broadcasts and what they queued all fall inside it).
double message_seconds(const Result& r, Phase phase) {
  return phase == kSend ? r.producer_s : r.phases[phase].seconds;
}

// The cell of a row in a phase where it means nothing.
const std::string kNone = "-";

struct Row {
  const char* label;
  std::string (*value)(const Result&, Phase);
};

const Row kRows[] = {
    {"window s", [](const Result& r, Phase p) { return format("%.2f", r.phases[p].seconds); }},
    {"loop CPU % of a core", [](const Result& r, Phase p) { return format("%.1f", 100 * r.phases[p].loop_cpu); }},
    {"loop waiting for CPU %", [](const Result& r, Phase p) {
       return r.phases[p].loop_wait < 0 ? std::string("n/a") : format("%.1f", 100 * r.phases[p].loop_wait);
     }},
    {"client CPU % of a core", [](const Result& r, Phase p) { return format("%.1f", 100 * r.phases[p].client_cpu); }},
    {"heartbeats/s", [](const Result& r, Phase p) { return format("%.0f", per_second(r.phases[p].pongs, r.phases[p].seconds)); }},
    {"loop us per heartbeat", [](const Result& r, Phase p) {
       return p == kBaseline ? format("%.2f", r.us_per_heartbeat) : std::string("n/a (shared)");
     }},
    {"ping lateness ms p99", [](const Result& r, Phase p) { return format("%.1f", us(r.phases[p].lateness.percentile(0.99)) / 1000); }},
    {"ping RTT us p50 / p99", [](const Result& r, Phase p) {
       return format("%.0f", us(r.phases[p].rtt.percentile(0.5))) + format(" / %.0f", us(r.phases[p].rtt.percentile(0.99)));
     }},
    {"messages handled by loop", [](const Result& r, Phase p) { return p == kBaseline ? kNone : count(r.phases[p].handled); }},
    {"messages delivered (clients)", [](const Result& r, Phase p) { return p == kBaseline ? kNone : count(r.phases[p].delivered); }},
    {"messages/s", [](const Result& r, Phase p) {
       return p == kBaseline ? kNone : format("%.0f", per_second(r.phases[p].handled, message_seconds(r, p)));
     }},
    {"LOOP US PER MESSAGE", [](const Result& r, Phase p) {
       return p == kBaseline ? kNone : format("%.3f", r.phases[p].loop_us_per_message);
     }},
    {"send: accepted / refused", [](const Result& r, Phase p) {
       return p == kSend ? count(r.accepted) + " / " + count(r.refused) : kNone;
     }},
    {"send: accepted/s", [](const Result& r, Phase p) { return p == kSend ? format("%.0f", per_second(r.accepted, r.producer_s)) : kNone; }},
    {"send: dropped (closed)", [](const Result& r, Phase p) { return p == kSend ? count(r.mail_dropped) : kNone; }},
    {"send: producer CPU %", [](const Result& r, Phase p) { return p == kSend ? format("%.1f", 100 * r.producer_cpu) : kNone; }},
    {"broadcasts x connections", [](const Result& r, Phase p) {
       return p == kBroadcast ? count(r.broadcasts) + " x " + format("%.0f", r.broadcasts ? static_cast<double>(r.broadcast_targets) / static_cast<double>(r.broadcasts) : 0) : kNone;
     }},
    {"broadcast: skipped (behind)", [](const Result& r, Phase p) { return p == kBroadcast ? count(r.broadcast_skipped) : kNone; }},
    {"broadcast: us/msg in call", [](const Result& r, Phase p) {
       return p == kBroadcast ? format("%.3f", r.us_per_message_in_broadcast) : kNone;
     }},
};

void print_notes(const Result& r) {
  if (!r.error.empty()) std::printf("send: FAILED: %s\n", r.error.c_str());
  if (r.false_closes) std::printf("send: %" PRIu64 " connections closed during the run (the clients saw it)\n", r.false_closes);
  if (r.send_failed) std::printf("send: %" PRIu64 " sends neither queued nor refused for room\n", r.send_failed);
  for (int p = 0; p < kPhases; ++p) {
    const PhaseResult& phase = r.phases[p];
    if (phase.loop_wait > 0.05)
      std::printf("send: the loop thread waited for its CPU %.0f%% of the %s phase: other load shared its core\n",
                  100 * phase.loop_wait, to_string(static_cast<Phase>(p)));
    if (p != kBaseline && phase.delivered < phase.handled)
      std::printf("send: %s: the clients counted %" PRIu64 " of the %" PRIu64 " messages handled within 5 s\n",
                  to_string(static_cast<Phase>(p)), phase.delivered, phase.handled);
  }
  if (r.leftover_processes) std::printf("send: %d processes had to be killed at teardown\n", r.leftover_processes);
}

void phase_json(Json& json, const Result& r, Phase p) {
  const PhaseResult& phase = r.phases[p];
  json.open(to_string(p))
      .number("seconds", phase.seconds)
      .number("loop_cpu", phase.loop_cpu, 4)
      .number("loop_wait", phase.loop_wait < 0 ? kNotMeasured : phase.loop_wait, 4)
      .number("client_cpu", phase.client_cpu, 4)
      .integer("pongs", static_cast<int64_t>(phase.pongs))
      .number("heartbeats_per_s", per_second(phase.pongs, phase.seconds), 1)
      .number("lateness_p99_ms", us(phase.lateness.percentile(0.99)) / 1000)
      .number("rtt_p50_us", us(phase.rtt.percentile(0.5)), 0)
      .number("rtt_p99_us", us(phase.rtt.percentile(0.99)), 0)
      .integer("handled", static_cast<int64_t>(phase.handled))
      .integer("delivered", static_cast<int64_t>(phase.delivered))
      .integer("delivered_bytes", static_cast<int64_t>(phase.delivered_bytes))
      .number("messages_per_s", per_second(phase.handled, message_seconds(r, p)), 1)
      .number("loop_us_per_message", p == kBaseline ? kNotMeasured : phase.loop_us_per_message, 4);
}

}  // namespace

const char* to_string(Phase phase) {
  static const char* const kNames[kPhases] = {"baseline", "send", "broadcast"};
  return kNames[phase];
}

void print_table(const Report& report) {
  const Options& o = report.options;
  const Result& r = report.result;
  std::printf("\nsend: N=%" PRIu64 " P=%" PRId64 " ms I=%" PRId64 " ms, %g s per phase, %zu-byte messages, broadcast every %" PRId64
              " ms, %" PRIu64 " held (ramp %.1f s, %" PRIu64 " connect failures)\n",
              o.run.conns, o.run.ping_ms, o.run.idle_ms, o.run.duration_s, kMessageBytes,
              static_cast<int64_t>(o.broadcast_interval.count()), r.held, r.ramp_s, r.connect_failures);
  std::printf("%-30s %22s %22s %22s\n", "phase", "heartbeats only", "send by id", "broadcast");
  for (const Row& row : kRows) {
    std::printf("%-30s", row.label);
    for (int p = 0; p < kPhases; ++p) std::printf(" %22s", r.error.empty() ? row.value(r, static_cast<Phase>(p)).c_str() : "-");
    std::printf("\n");
  }
  print_notes(r);
  std::printf("(loop us per message: the loop's CPU over the phase minus the heartbeat-only phase's rate over as"
              " long, per message handled; heartbeats in the send and broadcast phases share the loop and are not"
              " separated)\n");
}

bool write_json(const Report& report, std::string* error) {
  const Options& o = report.options;
  const Result& r = report.result;
  Json json;
  json.open().text("command", command_line());
  json.open("options")
      .integer("conns", static_cast<int64_t>(o.run.conns))
      .number("duration_s", o.run.duration_s)
      .integer("broadcast_interval_ms", static_cast<int64_t>(o.broadcast_interval.count()))
      .integer("ping_interval_ms", o.run.ping_ms)
      .integer("idle_timeout_ms", o.run.idle_ms)
      .integer("message_bytes", static_cast<int64_t>(kMessageBytes))
      .integer("loop_cpu", report.loop_cpu)
      .integer("client_cpu", report.client_cpu)
      .close();
  json.open("plan")
      .integer("descriptor_limit", report.plan.descriptor_limit)
      .integer("client_processes", report.plan.clients)
      .close();
  json.text("error", r.error)
      .integer("held", static_cast<int64_t>(r.held))
      .integer("connect_failures", static_cast<int64_t>(r.connect_failures))
      .integer("false_closes", static_cast<int64_t>(r.false_closes))
      .number("ramp_s", r.ramp_s)
      .number("us_per_heartbeat", r.us_per_heartbeat);
  phase_json(json, r, kBaseline);
  json.close();
  phase_json(json, r, kSend);
  json.number("producer_s", r.producer_s)
      .integer("accepted", static_cast<int64_t>(r.accepted))
      .number("accepted_per_s", per_second(r.accepted, r.producer_s), 1)
      .integer("refused", static_cast<int64_t>(r.refused))
      .integer("mailbox_refused", static_cast<int64_t>(r.mailbox_refused))
      .integer("send_failed", static_cast<int64_t>(r.send_failed))
      .integer("mail_dropped", static_cast<int64_t>(r.mail_dropped))
      .number("producer_cpu", r.producer_cpu, 4)
      .close();
  phase_json(json, r, kBroadcast);
  json.integer("broadcasts", static_cast<int64_t>(r.broadcasts))
      .integer("targets", static_cast<int64_t>(r.broadcast_targets))
      .integer("skipped", static_cast<int64_t>(r.broadcast_skipped))
      .number("us_per_message_in_call", r.us_per_message_in_broadcast, 4)
      .close();
  json.integer("leftover_processes", r.leftover_processes).close();
  return write_file(o.run.json, json.str(), error);
}

}  // namespace send
}  // namespace bench
