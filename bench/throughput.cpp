// throughput — the `throughput` mode: how many small framed messages an evwheel server echoes
// per second and per core of its CPU, and the round-trip latency meanwhile.
//
// The server (Endpoint + Listener, on_message sends the payload back) runs in a forked child
// pinned to the server CPU; the client (an Endpoint fed by one Connector per connection) runs
// in this process pinned to the client CPU.  Each connection keeps `depth` messages in flight:
// every echo that comes back is timed (its payload starts with the monotonic time it was sent)
// and replaced by a new message at once.  Heartbeats are set an hour apart so that the
// figures are the data path's alone.  Only a window after a warm-up is measured: the echoes,
// the latencies and the server's CPU time (/proc/<pid>/schedstat, or /proc/<pid>/stat's ticks
// where the kernel keeps no schedstat) all come from that window.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "evwheel/codec.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/histogram.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "common/json.hpp"
#include "common/system.hpp"
#include "modes.hpp"

namespace bench {

const char throughput_usage[] =
    "evwheel-bench throughput [--conns 100] [--seconds 3] [--size 16] [--depth 8]\n"
    "                         [--server-cpu C] [--client-cpu C] [--json FILE]\n"
    "    Echoed messages per second of an evwheel server (forked child pinned to --server-cpu,\n"
    "    default the first allowed CPU) over --conns loopback connections from an evwheel\n"
    "    client (this process, pinned to --client-cpu, default the second allowed CPU), each\n"
    "    keeping --depth messages of --size payload bytes (FramedCodec, >= 8: the send time)\n"
    "    in flight.  Measured for --seconds after a warm-up: messages/s, messages/s per server\n"
    "    core (divided by the server's CPU use), round-trip latency p50/p99.\n";

namespace {

using evwheel::Duration;

constexpr std::size_t kStampSize = sizeof(int64_t);  // the send time at the front of a payload
constexpr double kWarmUpSeconds = 0.5;
constexpr int64_t kConnectTimeoutNs = 10'000'000'000;
// Descriptors each process needs besides the connections: epoll, timerfd, eventfd, listener
// and its reserve, stdio, the port pipe.
constexpr long kSpareDescriptors = 32;

struct Options {
  int conns = 100;
  double seconds = 3;
  int size = 16;
  int depth = 8;
  int server_cpu = -1;  // -1 until parsed: then the first allowed CPU unless given
  int client_cpu = -1;  // the second allowed CPU (the first when there is one)
  std::string json;
};

// Parses the options into *options; nothing when they are good, else the exit status.
std::optional<int> parse_options(int argc, char** argv, Options* options) {
  cli::Parser parser = mode_parser("throughput", throughput_usage);
  parser.integer("--conns", &options->conns, 1, 1'000'000);
  parser.real("--seconds", &options->seconds, 0.1, 3600);
  parser.integer("--size", &options->size, static_cast<int>(kStampSize), 65536);
  parser.integer("--depth", &options->depth, 1, 1024);
  cpu_option(parser, "--server-cpu", &options->server_cpu);
  cpu_option(parser, "--client-cpu", &options->client_cpu);
  parser.text("--json", &options->json);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  const long limit = sys::raise_nofile();
  if (options->conns > limit - kSpareDescriptors)
    return parser.fail("--conns " + std::to_string(options->conns) +
                       " needs more descriptors than the open-file limit " + std::to_string(limit) +
                       " allows (at most " + std::to_string(limit - kSpareDescriptors) + ")");
  std::string error;
  // Found out now, not after the measurement; and only once every option is known good, since
  // this empties the file.
  if (!options->json.empty() && !write_file(options->json, "", &error)) return parser.fail("bad --json: " + error);
  if (options->server_cpu < 0) options->server_cpu = sys::nth_allowed_cpu(0);
  if (options->client_cpu < 0) options->client_cpu = sys::nth_allowed_cpu(1);
  return std::nullopt;
}

// No pings during the run: an hour apart, so the traffic measured is the echoes alone.
evwheel::EndpointOptions quiet_endpoint(evwheel::Side side) {
  evwheel::EndpointOptions options;
  options.side = side;
  options.heartbeat.ping_interval = std::chrono::hours(1);
  options.heartbeat.idle_timeout = std::chrono::hours(2);
  return options;
}

// --- the server, in the child ----------------------------------------------------------------

class Echo final : public evwheel::ConnectionHandler {
 public:
  void on_message(evwheel::Connection& connection, std::string_view payload) override {
    connection.send(payload);
  }
};

// Serves until killed.  The listening port goes to the parent through `port_pipe`; a server
// that fails exits instead, and the parent reads end-of-file.
[[noreturn]] void serve(int cpu, int port_pipe) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench, however it ends
  try {
    if (!sys::pin_to_cpu(cpu)) throw std::runtime_error("cannot pin the server to its CPU");
    evwheel::Reactor reactor;
    Echo echo;
    evwheel::Endpoint endpoint(reactor, echo, quiet_endpoint(evwheel::Side::server));
    evwheel::Listener listener(endpoint, evwheel::ListenerOptions{});
    const uint16_t port = listener.port();
    if (write(port_pipe, &port, sizeof port) != sizeof port) _exit(1);
    reactor.run();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "evwheel-bench: throughput: server: %s\n", error.what());
  }
  _exit(1);
}

// --- the client, in this process ---------------------------------------------------------------

// Keeps `depth` messages in flight on every connection; while `measuring`, times and counts
// every echo.  The payload is built in one buffer reused for every send.
class Pipeline final : public evwheel::ConnectionHandler {
 public:
  Pipeline(int size, int depth) : payload_(static_cast<std::size_t>(size), 'x'), depth_(depth) {}

  void on_open(evwheel::Connection& connection) override {
    for (int i = 0; i < depth_; ++i) send_one(connection);
  }
  void on_message(evwheel::Connection& connection, std::string_view payload) override {
    if (measuring && payload.size() >= kStampSize) {
      int64_t sent;
      std::memcpy(&sent, payload.data(), kStampSize);
      latency.record(Duration(sys::monotonic_ns() - sent));
      ++echoes;
    }
    send_one(connection);
  }
  void on_close(evwheel::Connection&, evwheel::CloseReason, int) override { ++closes; }
  void on_connect_error(evwheel::Connector&, int) override { ++connect_errors; }

  bool measuring = false;
  uint64_t echoes = 0;
  uint64_t closes = 0;
  uint64_t connect_errors = 0;
  evwheel::Histogram latency;

 private:
  void send_one(evwheel::Connection& connection) {
    const int64_t now = sys::monotonic_ns();
    std::memcpy(&payload_[0], &now, kStampSize);
    connection.send(payload_);
  }

  std::string payload_;
  int depth_;
};

struct Result {
  uint64_t echoes = 0;
  double window_s = 0;
  double server_cpu = 0;  // fraction of one CPU over the window
  double client_cpu = 0;
  double server_waiting = -1;  // fraction of the window spent waiting for a CPU; -1: unknown
  double client_waiting = -1;
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
  double per_second() const { return static_cast<double>(echoes) / window_s; }
  double per_server_core() const { return per_second() / server_cpu; }
};

void run_for(evwheel::Reactor& reactor, double seconds) {
  const int64_t end = sys::monotonic_ns() + static_cast<int64_t>(seconds * 1e9);
  while (sys::monotonic_ns() < end) reactor.run_once(std::chrono::milliseconds(10));
}

double micros(Duration duration) {
  return std::chrono::duration<double, std::micro>(duration).count();
}

// Connects, warms up, measures the window.  Throws std::runtime_error when the connections
// cannot be made or do not stay up.
Result measure(const Options& options, pid_t server, uint16_t port) {
  evwheel::Reactor reactor;
  Pipeline pipeline(options.size, options.depth);
  evwheel::Endpoint endpoint(reactor, pipeline, quiet_endpoint(evwheel::Side::client));
  std::vector<std::unique_ptr<evwheel::Connector>> connectors;
  evwheel::ConnectorOptions connect;
  connect.address = "127.0.0.1:" + std::to_string(port);
  for (int i = 0; i < options.conns; ++i) {
    connectors.push_back(std::make_unique<evwheel::Connector>(endpoint, connect));
    connectors.back()->start();
  }
  const auto wanted = static_cast<std::size_t>(options.conns);
  const int64_t deadline = sys::monotonic_ns() + kConnectTimeoutNs;
  while (endpoint.size() < wanted && pipeline.connect_errors == 0 && sys::monotonic_ns() < deadline)
    reactor.run_once(std::chrono::milliseconds(10));
  if (endpoint.size() < wanted)
    throw std::runtime_error("only " + std::to_string(endpoint.size()) + " of " +
                             std::to_string(wanted) + " connections came up");

  run_for(reactor, kWarmUpSeconds);
  pipeline.measuring = true;
  const sys::CpuTimes server_start = sys::cpu_times(std::to_string(server));
  const sys::CpuTimes client_start = sys::cpu_times("self");
  const int64_t start = sys::monotonic_ns();
  run_for(reactor, options.seconds);
  const int64_t end = sys::monotonic_ns();
  const sys::CpuTimes server_end = sys::cpu_times(std::to_string(server));
  const sys::CpuTimes client_end = sys::cpu_times("self");
  if (pipeline.closes != 0) throw std::runtime_error("connections closed during the run");

  Result result;
  result.echoes = pipeline.echoes;
  result.window_s = static_cast<double>(end - start) / 1e9;
  sys::cpu_fractions(server_start, server_end, end - start, &result.server_cpu, &result.server_waiting);
  sys::cpu_fractions(client_start, client_end, end - start, &result.client_cpu, &result.client_waiting);
  result.p50_us = micros(pipeline.latency.percentile(0.5));
  result.p99_us = micros(pipeline.latency.percentile(0.99));
  result.max_us = micros(pipeline.latency.max());
  return result;
}

std::string to_json(const Result& result, const Options& options) {
  Json json;
  json.open()
      .text("mode", "throughput")
      .text("command", command_line())
      .integer("conns", options.conns)
      .number("seconds", result.window_s)
      .integer("size", options.size)
      .integer("depth", options.depth)
      .integer("server_cpu", options.server_cpu)
      .integer("client_cpu", options.client_cpu)
      .integer("messages", static_cast<int64_t>(result.echoes))
      .number("messages_per_second", result.per_second(), 0)
      .number("server_cpu_fraction", result.server_cpu)
      .number("messages_per_second_per_server_core", result.per_server_core(), 0)
      .number("client_cpu_fraction", result.client_cpu)
      .number("server_waiting_fraction", result.server_waiting)
      .number("client_waiting_fraction", result.client_waiting)
      .number("latency_p50_us", result.p50_us, 1)
      .number("latency_p99_us", result.p99_us, 1)
      .number("latency_max_us", result.max_us, 1)
      .close();
  return json.str();
}

void print(const Result& result) {
  std::printf(
      "\n%" PRIu64 " messages echoed in %.2f s\n"
      "  %12.0f messages/s\n"
      "  %12.0f messages/s per server core (server CPU %.0f %%, client CPU %.0f %%)\n"
      "  round trip p50 %.0f us, p99 %.0f us, max %.0f us (p50/p99: bucket upper bounds)\n",
      result.echoes, result.window_s, result.per_second(), result.per_server_core(),
      result.server_cpu * 100, result.client_cpu * 100, result.p50_us, result.p99_us,
      result.max_us);
  if (result.server_waiting >= 0 && result.client_waiting >= 0) {
    // Time runnable but not running: other load on the machine, which the figures then carry.
    std::printf("  waited for a CPU: server %.0f %%, client %.0f %% of the window%s\n",
                result.server_waiting * 100, result.client_waiting * 100,
                std::max(result.server_waiting, result.client_waiting) > 0.05
                    ? " (a busy machine: the figures are noisy)"
                    : "");
  }
}

// Starts the server child; returns its pid and *port, or -1 (message printed).
pid_t start_server(int cpu, uint16_t* port) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::perror("evwheel-bench: throughput: pipe2");
    return -1;
  }
  std::fflush(stdout);  // or the child's copy of the buffer would be printed twice
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    serve(cpu, pipe_fds[1]);
  }
  close(pipe_fds[1]);
  *port = 0;
  const bool told = pid > 0 && read(pipe_fds[0], port, sizeof *port) == sizeof *port;
  close(pipe_fds[0]);
  if (pid < 0) std::perror("evwheel-bench: throughput: fork");
  if (pid > 0 && !told) {
    std::fprintf(stderr, "evwheel-bench: throughput: the server did not start\n");
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

}  // namespace

int run_throughput(int argc, char** argv) {
  Options options;
  if (std::optional<int> status = parse_options(argc, argv, &options)) return *status;
  std::printf("evwheel-bench throughput: echoed messages per second (higher is better)\n");
  print_header();
  std::printf("workload: %d connections, %d messages of %d payload bytes (+%zu header) in flight\n"
              "          on each, server pinned to CPU %d, client to CPU %d; %.3g s after a %.1f s\n"
              "          warm-up; heartbeats an hour apart (none during the run)\n",
              options.conns, options.depth, options.size, evwheel::FramedCodec::kHeaderSize,
              options.server_cpu, options.client_cpu, options.seconds, kWarmUpSeconds);
  uint16_t port = 0;
  const pid_t server = start_server(options.server_cpu, &port);
  if (server < 0) return 1;
  int status = 0;
  try {
    if (!sys::pin_to_cpu(options.client_cpu)) throw std::runtime_error("cannot pin the client");
    const Result result = measure(options, server, port);
    print(result);
    std::string error;
    if (!options.json.empty() && !write_file(options.json, to_json(result, options), &error))
      throw std::runtime_error(error);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "evwheel-bench: throughput: %s\n", error.what());
    status = 1;
  }
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  return status;
}

}  // namespace bench
