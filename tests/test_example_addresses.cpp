// The built examples on IPv6 and Unix socket addresses: hb_server --listen and hb_client
// --connect hand their text straight to ListenerOptions / ConnectorOptions::address, so
// [::1]:PORT and unix:/path work end to end, as a user would type them.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "example_process.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"

using namespace example_process;

namespace {

// Reads the child's stderr until the latest `prefix` in it shows a count of at least `least`
// (the examples print their counters once a second); that count, or -1 after 10 s.
long wait_for_count(Child& child, std::string& seen, const std::string& prefix, long least) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool ended = false;
  for (;;) {
    std::size_t at = seen.rfind(prefix);
    long count = at == std::string::npos ? -1 : std::strtol(seen.c_str() + at + prefix.size(), nullptr, 10);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (count >= least) return count;
    if (left.count() <= 0 || ended) return -1;
    read_more(child.stderr_fd, seen, left, &ended);
  }
}

// hb_server on `listen` (its port read back when `listen` ends in :0), hb_client with two
// connections to `connect` (PORT in it replaced by the server's port): the server's pings are
// answered, and both exit 0 on SIGTERM.
void check_heartbeats(const std::string& listen, std::string connect) {
  Child server;
  spawn(server, {binary("hb_server"), "--listen", listen, "--ping-interval-ms", "50", "--idle-timeout-ms", "10000"});
  REQUIRE(server.pid > 0);
  std::string server_output;
  REQUIRE_MESSAGE(wait_for_output(server.stderr_fd, "(codec", server_output), "hb_server said: ", server_output);
  std::size_t port_at = connect.find("PORT");
  if (port_at != std::string::npos)
    connect.replace(port_at, 4, std::to_string(number_after(server_output, "listening on port ")));

  Child client;
  spawn(client, {binary("hb_client"), "--connect", connect, "--conns", "2", "--ping-interval-ms", "50",
                 "--idle-timeout-ms", "10000"});
  REQUIRE(client.pid > 0);
  std::string client_output;
  INFO("hb_client --connect ", connect, " said: ", client_output);
  CHECK(wait_for_count(client, client_output, "pongs-sent ", 1) >= 1);
  CHECK(client_output.find("open 2 ") != std::string::npos);
  CHECK(wait_for_count(server, server_output, "pongs ", 1) >= 1);
  CHECK(terminate(client) == 0);
  CHECK(terminate(server) == 0);
}

}  // namespace

TEST_CASE("hb_server --listen [::1]:0 and hb_client --connect [::1]:PORT exchange pings and pongs") {
  if (!loopback::ipv6_loopback_available()) {
    MESSAGE("skipped: this machine has no IPv6 loopback (::1)");
    return;
  }
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
