// conns — the report (see report.hpp).
#include "report.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>

#include "../common/json.hpp"
#include "../common/svg.hpp"
#include "../modes.hpp"

namespace bench {
namespace conns {
namespace {

constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

double ms(evwheel::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string format3(const char* spec, double a, double b, double c) {
  char text[96];
  std::snprintf(text, sizeof text, spec, a, b, c);
  return text;
}
std::string count(uint64_t n) { return std::to_string(n); }

// --- the figures derived from a run ---------------------------------------------------------

// Server CPU per heartbeat of this invocation's run of `timers` with `codec`, if it ran and
// worked.
double us_of(const Report& report, Timers timers, Codec codec) {
  for (const Result& r : report.results)
    if (r.timers == timers && r.codec == codec && r.error.empty() && r.us_per_heartbeat > 0) return r.us_per_heartbeat;
  return kNotMeasured;
}

// The invocation's codecs as --codec takes them: "framed,websocket".
std::string codec_list(const Report& report) {
  std::string list;
  for (Codec codec : report.codecs) list += (list.empty() ? "" : ",") + std::string(to_string(codec));
  return list;
}

// The column of a run: its server, and its codec when the invocation runs several.
std::string label(const Result& r, const Report& report) {
  std::string name = to_string(r.timers);
  return report.codecs.size() > 1 ? name + " " + to_string(r.codec) : name;
}

double x_floor(const Result& r, const Report& report) {
  return report.floor_us > 0 && r.us_per_heartbeat > 0 ? r.us_per_heartbeat / report.floor_us : kNotMeasured;
}

// Against the yardstick: the sweep server speaking the same codec.
double x_sweep(const Result& r, const Report& report) {
  const double sweep = us_of(report, Timers::sweep, r.codec);
  return r.us_per_heartbeat > 0 ? r.us_per_heartbeat / sweep : kNotMeasured;
}

// Against the same server speaking framed: what the codec costs per heartbeat.
double x_framed(const Result& r, const Report& report) {
  const double framed = us_of(report, r.timers, Codec::framed);
  return r.us_per_heartbeat > 0 ? r.us_per_heartbeat / framed : kNotMeasured;
}

// The framed ratio is a row only when the invocation compares framed with another codec.
bool compares_codecs(const Report& report) {
  return report.codecs.size() > 1 &&
         std::find(report.codecs.begin(), report.codecs.end(), Codec::framed) != report.codecs.end();
}

// Why the slab figure of `r` means nothing, or "" when it does.  /proc/slabinfo is the whole
// machine's: with nothing of ours running, its total moved by up to 0.4 MB within 2 s on this
// 2-vCPU VM when quiet (and by tens of MB while other jobs compiled).  Over fewer than
// kMinConnsForSlab connections that is more than 200 B of the 8-11 kB a connection costs the
// kernel — the figure can even come out negative, which is always other load.
std::string slab_not_meaningful(const Result& r) {
  if (r.held < kMinConnsForSlab) return "n/a (N < " + count(kMinConnsForSlab) + ")";
  return r.slab_bytes < 0 ? "n/a (slab shrank: other load)" : "";
}

// Why the extrapolation means nothing, or "".  It divides by the server's CPU fraction, of
// which a fixed part does not grow with heartbeats: the 20 ms look at the phase and the ticks,
// 0.4-0.6 % of a core here with 100 connections and 10 heartbeats/s.  Below
// kMinHeartbeatsForExtrapolation heartbeats/s (at 10-15 us each) that part is over a tenth of
// the fraction, and the extrapolation says more about it than about heartbeats.
std::string extrapolation_not_meaningful(const Options& o) {
  const double asked = static_cast<double>(o.conns) * 1000 / static_cast<double>(o.ping_ms);
  return asked < kMinHeartbeatsForExtrapolation ? format("n/a (< %.0f heartbeats/s)", kMinHeartbeatsForExtrapolation)
                                                : "";
}

// --- the table ------------------------------------------------------------------------------

struct Row {
  const char* label;
  std::string (*value)(const Result&, const Report&);
  bool (*shown)(const Report&) = nullptr;  // null: always
};

const Row kRows[] = {
    {"server / client processes", [](const Result& r, const Report&) { return count(static_cast<uint64_t>(r.workers)) + " / " + count(static_cast<uint64_t>(r.clients)); }},
    {"connections held", [](const Result& r, const Report& p) { return count(r.held) + " of " + count(p.options.conns); }},
    {"connect failures", [](const Result& r, const Report&) { return count(r.failed); }},
    {"ramp (s, connects/s)", [](const Result& r, const Report&) { return format("%.1f", r.ramp_s) + ", " + format("%.0f", r.connects_per_s); }},
    {"FALSE CLOSES", [](const Result& r, const Report&) { return count(r.false_closes); }},
    {"muted / detected", [](const Result& r, const Report&) { return count(r.muted) + " / " + count(r.detected); }},
    {"detection ms p50/p99/max", [](const Result& r, const Report&) { return format3("%.0f / %.0f / %.0f", ms(r.detection.percentile(0.5)), ms(r.detection.percentile(0.99)), ms(r.detection.max())); }},
    {"server CPU % of a core", [](const Result& r, const Report&) { return format("%.1f", 100 * r.server_cpu) + format(" (core busy %.1f)", 100 * r.server_core_busy); }},
    {"client CPU % of a core", [](const Result& r, const Report&) { return format("%.1f", 100 * r.client_cpu) + (r.client_saturated ? " BEHIND" : ""); }},
    {"waiting for CPU % srv/cli", [](const Result& r, const Report&) { return format("%.1f", 100 * r.server_wait) + format(" / %.1f", 100 * r.client_wait); }},
    {"client loop lag max ms", [](const Result& r, const Report&) { return format("%.0f", r.client_lag_ms); }},
    {"heartbeats/s", [](const Result& r, const Report&) { return format("%.0f", r.heartbeats_per_s); }},
    {"server us per heartbeat", [](const Result& r, const Report&) { return format("%.2f", r.us_per_heartbeat); }},
    {"  x sweep (yardstick)", [](const Result& r, const Report& p) {
       double x = x_sweep(r, p);
       return std::isnan(x) ? std::string("n/a (no sweep run)") : format("%.2f", x);
     }},
    {"  x framed (same server)", [](const Result& r, const Report& p) {
       double x = x_framed(r, p);
       return std::isnan(x) ? std::string("n/a (framed failed)") : format("%.2f", x);
     }, compares_codecs},
    {"  x kernel floor", [](const Result& r, const Report& p) {
       double x = x_floor(r, p);
       return std::isnan(x) ? std::string("not measured") : format("%.2f", x) + format(" (floor %.2f us)", p.floor_us);
     }},
    {"ping RTT us p50/p99/p999", [](const Result& r, const Report&) { return format3("%.0f / %.0f / %.0f", ms(r.rtt.percentile(0.5)) * 1000, ms(r.rtt.percentile(0.99)) * 1000, ms(r.rtt.percentile(0.999)) * 1000); }},
    {"ping lateness ms p50/p99/max", [](const Result& r, const Report&) { return format3("%.1f / %.1f / %.1f", ms(r.lateness.percentile(0.5)), ms(r.lateness.percentile(0.99)), ms(r.lateness.max())); }},
    {"user bytes/conn (RSS/N)", [](const Result& r, const Report&) { return format("%.0f", r.user_bytes); }},
    {"kernel bytes/conn (slab)", [](const Result& r, const Report&) {
       std::string na = slab_not_meaningful(r);
       return na.empty() ? format("%.0f", r.slab_bytes) + (r.slab_ok ? "" : " (meminfo)") : na;
     }},
    {"conns/core @15 s (extrap.)", [](const Result& r, const Report& p) {
       std::string na = extrapolation_not_meaningful(p.options);
       return na.empty() ? format("%.3g", r.extrapolated) : na;
     }},
};

void print_notes(const Result& r, const Report& report) {
  const std::string label_text = label(r, report);
  const char* name = label_text.c_str();
  if (r.workers > 1) std::printf("%s: held per server worker: %s\n", name, r.per_worker.c_str());
  if (!r.close_reasons.empty()) std::printf("%s: closes by reason: %s\n", name, r.close_reasons.c_str());
  if (!r.error.empty()) std::printf("%s: FAILED: %s\n", name, r.error.c_str());
  if (r.client_saturated)
    std::printf("%s: the load generator fell behind (client CPU %.0f%% of its core, waiting for a CPU %.0f%% of"
                " the run, its loop up to %.0f ms late): its own delay is in the RTTs, and closes it caused are"
                " not the server's\n",
                name, 100 * r.client_cpu, 100 * r.client_wait_run, r.client_lag_ms);
  if (r.server_wait > 0.05)
    std::printf("%s: a server process waited for its CPU %.0f%% of the steady state: other load (or its"
                " sibling workers) shared the core\n", name, 100 * r.server_wait);
  if (r.leftover_processes) std::printf("%s: %d processes had to be killed at teardown\n", name, r.leftover_processes);
}

// --- the files ------------------------------------------------------------------------------

std::string svg_path(const std::string& path, const Result& r, const Report& report, bool first) {
  if (first) return path;
  std::size_t dot = path.rfind(".svg");
  std::string name = label(r, report);
  std::replace(name.begin(), name.end(), ' ', '-');
  return (dot == std::string::npos ? path : path.substr(0, dot)) + "-" + name + ".svg";
}

bool write_timeline(const std::string& path, const Result& r, const Options& o, std::string* error) {
  SvgSeries held{"connections held", "", {}};
  SvgSeries cpu{"server CPU", "% of a core", {}};
  for (const TimelinePoint& p : r.timeline) {
    held.points.emplace_back(p.seconds, static_cast<double>(p.held));
    if (&p != &r.timeline.front()) cpu.points.emplace_back(p.seconds, 100 * p.server_cpu);
  }
  char title[200];
  std::snprintf(title, sizeof title, "evwheel-bench conns (%s server, %s): N=%" PRIu64 ", P=%" PRId64 " ms, I=%" PRId64 " ms, %.0f%% muted",
                to_string(r.timers), to_string(r.codec), o.conns, o.ping_ms, o.idle_ms, 100 * o.mute_fraction);
  return write_svg(path, title, held, cpu, r.markers, error);
}

void histogram(Json& json, const char* key, const evwheel::Histogram& h) {
  json.open(key)
      .integer("count", static_cast<int64_t>(h.count()))
      .number("p50_us", ms(h.percentile(0.5)) * 1000, 0)
      .number("p99_us", ms(h.percentile(0.99)) * 1000, 0)
      .number("p999_us", ms(h.percentile(0.999)) * 1000, 0)
      .number("max_us", ms(h.max()) * 1000, 0)
      .close();
}

void run_json(Json& json, const Result& r, const Report& report) {
  json.open()
      .text("timers", to_string(r.timers))
      .text("codec", to_string(r.codec))
      .text("error", r.error)
      .integer("held", static_cast<int64_t>(r.held))
      .integer("connect_failures", static_cast<int64_t>(r.failed))
      .integer("false_closes", static_cast<int64_t>(r.false_closes))
      .integer("muted", static_cast<int64_t>(r.muted))
      .integer("detected", static_cast<int64_t>(r.detected))
      .number("ramp_s", r.ramp_s)
      .number("steady_s", r.steady_s)
      .number("server_cpu", r.server_cpu, 4)
      .number("server_core_busy", r.server_core_busy, 4)
      .number("client_cpu", r.client_cpu, 4)
      .boolean("client_saturated", r.client_saturated)
      .number("heartbeats_per_s", r.heartbeats_per_s, 1)
      .number("us_per_heartbeat", r.us_per_heartbeat)
      .number("x_sweep", x_sweep(r, report))
      .number("x_framed", x_framed(r, report))
      .number("x_floor", x_floor(r, report))
      .number("user_bytes_per_conn", r.user_bytes, 1)
      .number("kernel_slab_bytes_per_conn", slab_not_meaningful(r).empty() ? r.slab_bytes : kNotMeasured, 1)
      .number("extrapolated_conns_per_core_15s",
              extrapolation_not_meaningful(report.options).empty() ? r.extrapolated : kNotMeasured, 0);
  histogram(json, "rtt", r.rtt);
  histogram(json, "lateness", r.lateness);
  histogram(json, "detection", r.detection);
  json.integer("leftover_processes", r.leftover_processes).close();
}

}  // namespace

void print_table(const Report& report) {
  const Options& o = report.options;
  std::printf("\nconns: N=%" PRIu64 " P=%" PRId64 " ms I=%" PRId64 " ms tick=%g ms, %g s steady, %.0f%% muted, codec %s, server cpu %d, client cpu %d, %d reactor(s) per server process\n",
              o.conns, o.ping_ms, o.idle_ms, ms(tick(o)), o.duration_s, 100 * o.mute_fraction,
              codec_list(report).c_str(), o.server_cpu, o.client_cpu, o.reactors);
  std::printf("%-30s", "server");
  for (const Result& r : report.results) std::printf(" %28s", label(r, report).c_str());
  std::printf("\n");
  for (const Row& row : kRows) {
    if (row.shown && !row.shown(report)) continue;
    std::printf("%-30s", row.label);
    for (const Result& r : report.results) std::printf(" %28s", r.error.empty() ? row.value(r, report).c_str() : "-");
    std::printf("\n");
  }
  bool few = false;
  for (const Result& r : report.results) {
    print_notes(r, report);
    few |= r.held < kMinConnsForSlab;
  }
  std::printf("(extrap.: N * (15000 / P) / server CPU fraction — an extrapolation, not a measurement)\n");
  if (few)
    std::printf("(slab n/a: /proc/slabinfo is the whole machine's and moves by itself by more than %" PRIu64
                " connections take)\n", kMinConnsForSlab);
  if (!extrapolation_not_meaningful(o).empty())
    std::printf("(extrap. n/a: at so few heartbeats the server's CPU is mostly its fixed costs)\n");
}

bool write_timelines(const Report& report, std::string* error) {
  for (const Result& r : report.results) {
    std::string path = svg_path(report.options.svg, r, report, &r == &report.results.front());
    if (!write_timeline(path, r, report.options, error)) return false;
    std::printf("%s: timeline written to %s\n", label(r, report).c_str(), path.c_str());
  }
  return true;
}

bool write_json(const Report& report, std::string* error) {
  const Options& o = report.options;
  Json json;
  json.open().text("command", command_line());
  json.open("options")
      .integer("conns", static_cast<int64_t>(o.conns))
      .integer("ping_interval_ms", o.ping_ms)
      .integer("idle_timeout_ms", o.idle_ms)
      .integer("tick_ms", o.tick_ms)
      .number("duration_s", o.duration_s)
      .number("mute_fraction", o.mute_fraction)
      .text("codec", codec_list(report))
      .integer("server_cpu", o.server_cpu)
      .integer("client_cpu", o.client_cpu)
      .integer("reactors", o.reactors)
      .close();
  json.open("plan")
      .integer("descriptor_limit", report.plan.descriptor_limit)
      .integer("per_process", static_cast<int64_t>(report.plan.per_process))
      .integer("server_processes", report.plan.workers)
      .integer("client_processes", report.plan.clients)
      .close();
  json.number("floor_us_per_message", report.floor_us > 0 ? report.floor_us : kNotMeasured);
  // The yardstick of the first codec (the only one with a sweep run when websocket is asked).
  json.number("sweep_us_per_heartbeat", us_of(report, Timers::sweep, report.codecs.front()));
  json.open_array("runs");
  for (const Result& r : report.results) run_json(json, r, report);
  json.close().close();
  return write_file(o.json, json.str(), error);
}

}  // namespace conns
}  // namespace bench
