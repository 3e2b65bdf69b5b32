// hb_server --metrics-port: the example serves its counters over HTTP for Prometheus.  The
// test starts the real binary ($EVWHEEL_BUILD/hb_server, as `make test` builds it), connects a
// peer, and scrapes /metrics over a raw socket until the peer shows up in the counters.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <string>

#include "fd_count.hpp"
#include "loopback.hpp"
#include "programs.hpp"

using namespace loopback;
using programs::number_after;

namespace {

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
  const std::size_t fds = open_fd_count();
  {
    programs::Built server({"hb_server", "--listen", "127.0.0.1:0", "--metrics-port", "0", "--ping-interval-ms",
                             "100", "--idle-timeout-ms", "10000"});
    REQUIRE(server.started());
    bool started = server.wait_for_stderr("/metrics\n");
    const std::string output = server.stderr_text();
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
    server.signal(SIGTERM);
    CHECK_MESSAGE(server.wait() == 0, "hb_server did not exit 0 within 5 s of SIGTERM");
  }
  CHECK(open_fd_count() == fds);
}
