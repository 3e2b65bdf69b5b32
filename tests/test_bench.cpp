// The bench binary's contract: bad command lines get one line and status 2 before anything
// starts, and a small `conns` run goes through every phase and reports through --json.
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

// The number after "key": in a flat JSON text (the bench writes one key per field).
double json_number(const std::string& json, const std::string& key) {
  std::size_t at = json.find("\"" + key + "\":");
  REQUIRE_MESSAGE(at != std::string::npos, key);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

}  // namespace

TEST_CASE("evwheel-bench conns rejects bad arguments with one line and status 2") {
  const char* bad[] = {
      "conns --conns 0",
      "conns --conns -5",
      "conns --ping-interval-ms 3000 --idle-timeout-ms 3000",
      "conns --server-cpu 4096",
      "conns --client-cpu x",
      "conns --mute-fraction 1.5",
      "conns --codec xml",
      "conns --timers list",
      "conns --duration",
      "conns --frobnicate 1",
      "conns --reactors 0",
      "conns --reactors 2 --timers heap",
      "conns --reactors 2 --conns 100000",
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
TEST_CASE("evwheel-bench conns runs every phase: all held, mutes detected, no false close") {
  std::string stem = "/tmp/evwheel-bench-test-" + std::to_string(::getpid());
  std::string json = stem + ".json";
  Outcome outcome = run_bench("conns --conns 300 --ping-interval-ms 200 --idle-timeout-ms 1000 --duration 0.5"
                              " --mute-fraction 0.1 --timers both --floor-seconds 0.3 --json " + json +
                              " --svg " + stem + ".svg");
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  ::unlink(json.c_str());
  // Two runs (wheel, heap), each reporting the same shape.
  for (const char* timers : {"\"timers\": \"wheel\"", "\"timers\": \"heap\""}) {
    CAPTURE(timers);
    std::size_t at = all.find(timers);
    REQUIRE(at != std::string::npos);
    std::string run = all.substr(at);
    CHECK(json_number(run, "held") == 300);
    CHECK(json_number(run, "connect_failures") == 0);
    CHECK(json_number(run, "false_closes") == 0);
    CHECK(json_number(run, "muted") == 30);
    CHECK(json_number(run, "detected") == 30);
    CHECK(json_number(run, "leftover_processes") == 0);
  }
  CHECK(outcome.output.find("FALSE CLOSES") != std::string::npos);
  CHECK(json_number(all, "floor_us_per_message") > 0);
  // One timeline per run.
  for (const std::string& svg : {stem + ".svg", stem + "-heap.svg"}) {
    CAPTURE(svg);
    std::ifstream file(svg);
    std::stringstream content;
    content << file.rdbuf();
    CHECK(content.str().find("<svg") != std::string::npos);
    CHECK(content.str().find("</svg>") != std::string::npos);
    ::unlink(svg.c_str());
  }
}
