// The built examples on IPv6 and Unix socket addresses: hb_server --listen and hb_client
// --connect hand their text straight to ListenerOptions / ConnectorOptions::address, so
// [::1]:PORT and unix:/path work end to end, as a user would type them.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "fd_count.hpp"
#include "loopback.hpp"
#include "programs.hpp"
#include "skip.hpp"
#include "temp_dir.hpp"

namespace {

// Waits until the latest `prefix` in the program's stderr shows a count of at least `least`
// (the examples print their counters once a second); that count, or -1 after 10 s.
long wait_for_count(const programs::Built& program, const std::string& prefix, long least) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::string text = program.stderr_text();
    std::size_t at = text.rfind(prefix);
    long count = at == std::string::npos ? -1 : std::strtol(text.c_str() + at + prefix.size(), nullptr, 10);
    if (count >= least) return count;
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// hb_server on `listen` and hb_client with two connections to `connect` (PORT in it replaced by
// the port the server printed): the server's pings are answered, and both exit 0 on SIGTERM.
void check_heartbeats(const std::string& listen, std::string connect) {
  programs::Built server({"hb_server", "--listen", listen, "--ping-interval-ms", "50", "--idle-timeout-ms", "10000"});
  REQUIRE(server.started());
  bool listening = server.wait_for_stderr("(codec");
  INFO("hb_server said: ", server.stderr_text());
  REQUIRE(listening);
  std::size_t port_at = connect.find("PORT");
  if (port_at != std::string::npos)
    connect.replace(port_at, 4, std::to_string(programs::number_after(server.stderr_text(), "listening on port ")));

  programs::Built client({"hb_client", "--connect", connect, "--conns", "2", "--ping-interval-ms", "50",
                          "--idle-timeout-ms", "10000"});
  REQUIRE(client.started());
  CHECK(wait_for_count(client, "pongs-sent ", 1) >= 1);
  INFO("hb_client --connect ", connect, " said: ", client.stderr_text());
  CHECK(client.stderr_text().find("open 2 ") != std::string::npos);
  CHECK(wait_for_count(server, "pongs ", 1) >= 1);
  client.signal(SIGTERM);
  CHECK(client.wait() == 0);
  server.signal(SIGTERM);
  CHECK(server.wait() == 0);
}

}  // namespace

TEST_CASE("hb_server --listen [::1]:0 and hb_client --connect [::1]:PORT exchange pings and pongs") {
  if (!loopback::ipv6_loopback_available()) return skip::because("this machine has no IPv6 loopback (::1)");
  const std::size_t fds = open_fd_count();
  check_heartbeats("[::1]:0", "[::1]:PORT");
  CHECK(open_fd_count() == fds);
}

TEST_CASE("hb_server --listen unix:PATH and hb_client --connect unix:PATH exchange pings; the file goes with the server") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-examples");
    const std::string path = dir / "hb.sock";
    check_heartbeats("unix:" + path, "unix:" + path);
    struct stat status {};
    CHECK(::lstat(path.c_str(), &status) != 0);  // removed by the listener as hb_server exited
  }
  CHECK(open_fd_count() == fds);
}
