// hb_server --metrics-port: the example serves its counters over HTTP for Prometheus.  The
// test starts the real binary ($EVWHEEL_BUILD/hb_server, as `make test` builds it), connects a
// peer, and scrapes /metrics over a raw socket until the peer shows up in the counters.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fd_count.hpp"
#include "loopback.hpp"

using namespace loopback;

namespace {

// A child process that is killed and reaped if the test stops early (a failed REQUIRE).
struct Child {
  pid_t pid = -1;
  int stderr_fd = -1;  // the read end of the child's stderr
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (stderr_fd >= 0) ::close(stderr_fd);
  }
};

void spawn(Child& child, std::vector<std::string> args) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return;
  child.pid = ::fork();
  if (child.pid == 0) {
    ::dup2(pipe_fds[1], 2);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  child.stderr_fd = pipe_fds[0];
}

// Reads the child's stderr until `text` appears (true) or `timeout` passes; `seen` keeps all of it.
bool wait_for_output(int fd, const std::string& text, std::string& seen, Duration timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (seen.find(text) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char chunk[1024];
    ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got <= 0) return false;
    seen.append(chunk, static_cast<std::size_t>(got));
  }
  return true;
}

// The number after `prefix` in `text` (up to the end of that line); -1 if absent.
long number_after(const std::string& text, const std::string& prefix) {
  std::size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : std::strtol(text.c_str() + at + prefix.size(), nullptr, 10);
}

// One HTTP exchange over a raw socket: the whole response, or "" if the connection failed.
std::string http(uint16_t port, const std::string& request) {
  int fd = raw_connect(port);
  if (fd < 0) return "";
  std::string response;
  if (write_all(fd, request)) read_to_end(fd, &response);
  ::close(fd);
  return response;
}

std::string get(uint16_t port, const std::string& target) {
  return http(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

}  // namespace

TEST_CASE("hb_server --metrics-port serves its counters at GET /metrics, 404 elsewhere, 405 for other methods") {
  const std::string build = std::getenv("EVWHEEL_BUILD") ? std::getenv("EVWHEEL_BUILD") : "build";
  const std::size_t fds = open_fd_count();
  {
    Child server;
    spawn(server, {build + "/hb_server", "--listen", "127.0.0.1:0", "--metrics-port", "0",
                   "--ping-interval-ms", "100", "--idle-timeout-ms", "10000"});
    REQUIRE(server.pid > 0);
    std::string output;
    bool started = wait_for_output(server.stderr_fd, "/metrics\n", output);
    INFO("hb_server said: ", output);
    REQUIRE(started);
    long listen_port = number_after(output, "listening on port ");
    long metrics_port = number_after(output, "metrics on http://127.0.0.1:");
    REQUIRE(listen_port > 0);
    REQUIRE(metrics_port > 0);

    int peer = raw_connect(static_cast<uint16_t>(listen_port));
    REQUIRE(peer >= 0);
    std::string response;
    auto deadline = Clock::now() + 5s;
    do {
      response = get(static_cast<uint16_t>(metrics_port), "/metrics");
    } while (response.find("\nevwheel_connections_open 1\n") == std::string::npos && Clock::now() < deadline);
    INFO("scraped: ", response);
    CHECK(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(response.find("\r\nContent-Type: text/plain; version=0.0.4") != std::string::npos);
    std::size_t body = response.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    CHECK(number_after(response, "\r\nContent-Length: ") == static_cast<long>(response.size() - body - 4));
    CHECK(response.find("\nevwheel_connections_open 1\n") != std::string::npos);
    CHECK(response.find("\nevwheel_accepted_total 1\n") != std::string::npos);
    CHECK(response.find("# TYPE evwheel_rtt_seconds histogram\n") != std::string::npos);

    CHECK(get(static_cast<uint16_t>(metrics_port), "/").rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    CHECK(http(static_cast<uint16_t>(metrics_port), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);
    CHECK(http(static_cast<uint16_t>(metrics_port), "nonsense\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);

    ::close(peer);
    ::kill(server.pid, SIGTERM);
    int status = 0;
    auto exit_deadline = Clock::now() + 5s;
    pid_t reaped;
    while ((reaped = ::waitpid(server.pid, &status, WNOHANG)) == 0 && Clock::now() < exit_deadline) ::usleep(10'000);
    REQUIRE_MESSAGE(reaped == server.pid, "hb_server did not exit within 5 s of SIGTERM");
    server.pid = -1;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(open_fd_count() == fds);
}
