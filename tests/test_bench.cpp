// The bench binary's contract: bad command lines get one line and status 2 before anything
// starts, and small `conns` and `send` runs go through every phase and report through --json.
// Runs $EVWHEEL_BUILD/evwheel-bench (set by `make test`).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr
};

std::string bench_binary() {
  const char* build = std::getenv("EVWHEEL_BUILD");
  return std::string(build ? build : "build") + "/evwheel-bench";
}

Outcome run_bench(const std::string& arguments) {
  Outcome outcome;
  FILE* pipe = ::popen((bench_binary() + " " + arguments + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char chunk[4096];
  std::size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) outcome.output.append(chunk, got);
  int raw = ::pclose(pipe);
  outcome.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return outcome;
}

std::size_t lines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// The whole of `path`, which is then removed.
std::string take_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path.c_str());
  return text.str();
}

// The number after "key": in a flat JSON text (the bench writes one key per field).
double json_number(const std::string& json, const std::string& key) {
  std::size_t at = json.find("\"" + key + "\":");
  REQUIRE_MESSAGE(at != std::string::npos, key);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

// The members of the object `key` in a JSON text the bench wrote (objects one level deep).
std::string json_object(const std::string& json, const std::string& key) {
  std::size_t at = json.find("\"" + key + "\": {");
  REQUIRE_MESSAGE(at != std::string::npos, key);
  return json.substr(at, json.find('}', at) - at);
}

}  // namespace

TEST_CASE("evwheel-bench rejects bad arguments with one line and status 2") {
  const char* bad[] = {
      "conns --conns 0",
      "conns --conns -5",
      "conns --ping-interval-ms 3000 --idle-timeout-ms 3000",
      "conns --server-cpu 4096",
      "conns --client-cpu x",
      "conns --mute-fraction 1.5",
      "conns --codec xml",
      "conns --timers list",
      "conns --timers both",
      "conns --timers heap",
      "conns --timers=",
      "conns --duration",
      "conns --frobnicate 1",
      "conns --con 5",
      "conns --reactors 0",
      "conns --reactors 2 --timers lazy",
      "conns --reactors 2 --timers all",
      "conns --reactors 2 --conns 100000",
      "conns --codec websocket --timers all",
      "conns --codec framed,websocket --timers sweep",
      "conns --codec framed,framed",
      "conns --codec framed,",
      "conns 5",
      "timers --sizes 1e3,x",
      "timers --only wheel,tree",
      "floor --pairs=0",
      "throughput --depth 0",
      "soak --ping-interval-ms 600 --idle-timeout-ms 600",
      "proxy --conns 10",
      "send --conns 0",
      "send --conns 5000000",
      "send --duration x",
      "send --broadcast-interval-ms 0",
      "send --ping-interval-ms 1000",
      "default --conns 5",
      "nosuchmode",
  };
  for (const char* arguments : bad) {
    CAPTURE(arguments);
    Outcome outcome = run_bench(arguments);
    CHECK(outcome.status == 2);
    CHECK(lines(outcome.output) == 1);
    CHECK(outcome.output.rfind("evwheel-bench: ", 0) == 0);
  }
}

TEST_CASE("evwheel-bench conns --timers names the servers it takes in its one error line") {
  Outcome outcome = run_bench("conns --timers both");
  CHECK(outcome.output == "evwheel-bench: conns: bad --timers 'both' (want one of wheel, lazy, sweep, rearm, all)\n");
}

TEST_CASE("evwheel-bench: --help for a mode prints its usage and exits 0") {
  Outcome outcome = run_bench("conns --help");
  CHECK(outcome.status == 0);
  CHECK(outcome.output.rfind("evwheel-bench conns ", 0) == 0);
  CHECK(outcome.output.find("--timers wheel|lazy|sweep|rearm|all") != std::string::npos);
}

TEST_CASE("evwheel-bench conns on a busy port is a usage error") {
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(taken >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  Outcome outcome = run_bench("conns --port " + std::to_string(ntohs(address.sin_port)));
  CHECK(outcome.status == 2);
  CHECK(lines(outcome.output) == 1);
  CHECK(outcome.output.find("busy") != std::string::npos);
  ::close(taken);
}

// Intervals long enough that a loaded machine cannot make a live client miss its grace.
TEST_CASE("evwheel-bench conns --timers all runs wheel, lazy and sweep through every phase and reports each against sweep and the floor") {
  std::string stem = "/tmp/evwheel-bench-test-" + std::to_string(::getpid());
  std::string json = stem + ".json";
  Outcome outcome = run_bench("conns --conns 300 --ping-interval-ms 200 --idle-timeout-ms 1000 --duration 0.5"
                              " --mute-fraction 0.1 --timers all --floor-seconds 0.3 --json " + json +
                              " --svg=" + stem + ".svg");
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  const std::string all = take_file(json);
  const double floor = json_number(all, "floor_us_per_message");
  const double sweep = json_number(all, "sweep_us_per_heartbeat");
  CHECK(floor > 0);
  CHECK(sweep > 0);
  // Three runs, in this order, each reporting the same shape.
  std::size_t previous = 0;
  for (const char* timers : {"\"timers\": \"wheel\"", "\"timers\": \"lazy\"", "\"timers\": \"sweep\""}) {
    CAPTURE(timers);
    std::size_t at = all.find(timers);
    REQUIRE(at != std::string::npos);
    CHECK(at > previous);
    previous = at;
    std::string run = all.substr(at);
    CHECK(json_number(run, "held") == 300);
    CHECK(json_number(run, "connect_failures") == 0);
    CHECK(json_number(run, "false_closes") == 0);
    CHECK(json_number(run, "muted") == 30);
    CHECK(json_number(run, "detected") == 30);
    CHECK(json_number(run, "leftover_processes") == 0);
    const double us = json_number(run, "us_per_heartbeat");
    CHECK(us > 0);
    CHECK(json_number(run, "x_sweep") == doctest::Approx(us / sweep).epsilon(0.01));
    CHECK(json_number(run, "x_floor") == doctest::Approx(us / floor).epsilon(0.01));
    // 300 connections (1500 heartbeats/s) are too few for the figures noise swamps.
    CHECK(run.find("\"kernel_slab_bytes_per_conn\": null") < run.find("\"rtt\""));
    CHECK(run.find("\"extrapolated_conns_per_core_15s\": null") < run.find("\"rtt\""));
  }
  CHECK(outcome.output.find("FALSE CLOSES") != std::string::npos);
  CHECK(outcome.output.find("x sweep (yardstick)") != std::string::npos);
  CHECK(outcome.output.find("kernel bytes/conn (slab)") != std::string::npos);
  CHECK(outcome.output.find("n/a (N < 2000)") != std::string::npos);
  CHECK(outcome.output.find("n/a (< 5000 heartbeats/s)") != std::string::npos);
  // One timeline per run.
  for (const std::string& svg : {stem + ".svg", stem + "-lazy.svg", stem + "-sweep.svg"}) {
    CAPTURE(svg);
    const std::string content = take_file(svg);
    CHECK(content.find("<svg") != std::string::npos);
    CHECK(content.find("</svg>") != std::string::npos);
  }
}

TEST_CASE("evwheel-bench conns --timers rearm (the heap timer restarted on every read) holds, detects, extrapolates at 5000 heartbeats/s") {
  std::string json = "/tmp/evwheel-bench-rearm-" + std::to_string(::getpid()) + ".json";
  Outcome outcome = run_bench("conns --conns 1000 --ping-interval-ms 200 --idle-timeout-ms 1000 --duration 0.3"
                              " --timers rearm --codec seed --floor-seconds 0 --json " + json);
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  const std::string all = take_file(json);
  CHECK(all.find("\"timers\": \"rearm\"") != std::string::npos);
  CHECK(json_number(all, "held") == 1000);
  CHECK(json_number(all, "false_closes") == 0);
  CHECK(json_number(all, "detected") == 100);
  CHECK(all.find("\"x_sweep\": null") != std::string::npos);  // no sweep run to compare with
  CHECK(all.find("\"floor_us_per_message\": null") != std::string::npos);
  CHECK(outcome.output.find("n/a (no sweep run)") != std::string::npos);
  // 5000 heartbeats/s asked for: enough to extrapolate from; 1000 connections still too few
  // for the machine-wide slab figure.
  CHECK(json_number(all, "extrapolated_conns_per_core_15s") > 0);
  CHECK(all.find("\"kernel_slab_bytes_per_conn\": null") != std::string::npos);
}

TEST_CASE("evwheel-bench conns --codec framed,websocket runs the wheel server once per codec on the same load and reports websocket against framed") {
  std::string json = "/tmp/evwheel-bench-codecs-" + std::to_string(::getpid()) + ".json";
  Outcome outcome = run_bench("conns --conns 200 --ping-interval-ms 200 --idle-timeout-ms 1000 --duration 0.3"
                              " --codec framed,websocket --floor-seconds 0 --json " + json);
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  const std::string all = take_file(json);
  CHECK(all.find("\"codec\": \"framed,websocket\"") != std::string::npos);
  const std::size_t framed_at = all.find("\"codec\": \"framed\"");
  const std::size_t websocket_at = all.find("\"codec\": \"websocket\"");
  REQUIRE(framed_at != std::string::npos);
  REQUIRE(websocket_at != std::string::npos);
  CHECK(framed_at < websocket_at);
  const std::string framed = all.substr(framed_at, websocket_at - framed_at), websocket = all.substr(websocket_at);
  for (const std::string* run : {&framed, &websocket}) {
    CHECK(json_number(*run, "held") == 200);
    CHECK(json_number(*run, "connect_failures") == 0);
    CHECK(json_number(*run, "false_closes") == 0);
    CHECK(json_number(*run, "detected") == 20);  // every mute, websocket's too
    CHECK(json_number(*run, "us_per_heartbeat") > 0);
    CHECK(json_number(*run, "user_bytes_per_conn") > 0);
  }
  CHECK(json_number(framed, "x_framed") == doctest::Approx(1).epsilon(0.001));
  CHECK(json_number(websocket, "x_framed") ==
        doctest::Approx(json_number(websocket, "us_per_heartbeat") / json_number(framed, "us_per_heartbeat")).epsilon(0.01));
  CHECK(outcome.output.find("wheel framed") != std::string::npos);
  CHECK(outcome.output.find("wheel websocket") != std::string::npos);
  CHECK(outcome.output.find("x framed (same server)") != std::string::npos);
}

TEST_CASE("evwheel-bench send: the clients receive every message the loop handed out, by id and by broadcast, and the mailbox's refusals are the producer's") {
  std::string path = "/tmp/evwheel-bench-send-" + std::to_string(::getpid()) + ".json";
  Outcome outcome = run_bench("send --conns 200 --duration 1 --broadcast-interval-ms 100 --json " + path);
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  const std::string all = take_file(path);
  CHECK(json_number(all, "held") == 200);
  CHECK(json_number(all, "connect_failures") == 0);
  CHECK(json_number(all, "false_closes") == 0);
  CHECK(json_number(all, "leftover_processes") == 0);
  CHECK(json_number(all, "us_per_heartbeat") > 0);
  CHECK(json_number(json_object(all, "baseline"), "pongs") > 0);

  const std::string send = json_object(all, "send");
  const double accepted = json_number(send, "accepted");
  CHECK(accepted > 0);
  CHECK(json_number(send, "send_failed") == 0);
  CHECK(json_number(send, "mailbox_refused") == json_number(send, "refused"));
  CHECK(json_number(send, "handled") == accepted - json_number(send, "mail_dropped"));
  CHECK(json_number(send, "delivered") == json_number(send, "handled"));
  CHECK(json_number(send, "delivered_bytes") == 16 * json_number(send, "delivered"));

  // Every broadcast reaches every open connection but those skipped for being behind.
  const std::string broadcast = json_object(all, "broadcast");
  const double broadcasts = json_number(broadcast, "broadcasts");
  CHECK(broadcasts >= 1);
  CHECK(json_number(broadcast, "targets") == broadcasts * 200);
  CHECK(json_number(broadcast, "handled") == json_number(broadcast, "targets") - json_number(broadcast, "skipped"));
  CHECK(json_number(broadcast, "delivered") == json_number(broadcast, "handled"));
  CHECK(json_number(broadcast, "delivered_bytes") == 16 * json_number(broadcast, "delivered"));
  CHECK(outcome.output.find("LOOP US PER MESSAGE") != std::string::npos);
}
