// The examples as programs (started from $EVWHEEL_BUILD, as `make test` builds them): they
// print their lines as they happen even into a file, end cleanly on SIGTERM, say what went
// wrong once and under their own name, and give up when told to.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fd_count.hpp"
#include "loopback.hpp"
#include "programs.hpp"

using namespace loopback;
using programs::Built;
using programs::occurrences;

namespace {

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `path` until it holds `text`, for at most `timeout`.
bool wait_for_file(const std::string& path, const std::string& text, Duration timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (file_text(path).find(text) == std::string::npos) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A port nobody listens on now (bound, then released).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A port somebody listens on for as long as the object lives.
struct BusyPort {
  BusyPort() : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(fd, 1);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ~BusyPort() { ::close(fd); }
  int fd;
  uint16_t port = 0;
};

}  // namespace

TEST_CASE("minimal_server with stdout in a file: each line is there as it happens; SIGTERM closes its connections and exits 0") {
  const std::string path = "/tmp/evwheel-minimal-server-" + std::to_string(::getpid()) + ".out";
  const std::size_t fds = open_fd_count();
  {
    Built server({"minimal_server"}, path);
    REQUIRE(server.started());
    int peer = -1;  // it listens on 127.0.0.1:7001, as docs/api.md shows
    auto deadline = Clock::now() + 5s;
    while ((peer = raw_connect(7001)) < 0 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    REQUIRE_MESSAGE(peer >= 0, "minimal_server did not listen on 127.0.0.1:7001 (is the port taken?)");
    CHECK_MESSAGE(wait_for_file(path, " open\n"), "the open line never reached the file: stdout is not flushed");

    server.signal(SIGTERM);
    CHECK(server.wait() == 0);
    std::string out = file_text(path);
    INFO("minimal_server wrote: ", out);
    long fd = programs::number_after(out, "fd ");
    CHECK(fd > 2);
    CHECK(out.find("fd " + std::to_string(fd) + " open\n") != std::string::npos);
    CHECK(out.find("fd " + std::to_string(fd) + " closed: shutdown\n") != std::string::npos);
    CHECK(read_to_end(peer) == kEof);  // the connection was closed, not left to die with the process
    ::close(peer);
  }
  ::unlink(path.c_str());
  CHECK(open_fd_count() == fds);
}

TEST_CASE("every long-running example exits 0 on SIGTERM and on SIGINT") {
  const std::string port = std::to_string(free_port());
  const std::vector<std::vector<std::string>> commands = {
      {"hb_server", "--listen", "127.0.0.1:0"},
      {"hb_client", "--connect", "127.0.0.1:1"},
      {"pool_server", "--listen", "127.0.0.1:0", "--reactors", "2"},
      {"pool_server", "--listen", "127.0.0.1:" + port, "--prefork", "2"},
      {"minimal_client"},
      {"ws_server", "--listen", "127.0.0.1:0"},
  };
  const char* const started[] = {"listening on port", "failed", "reactor thread(s)", "worker process(es)", "",
                                 "listening on http://"};
  for (int signal : {SIGTERM, SIGINT}) {
    for (std::size_t i = 0; i < commands.size(); ++i) {
      CAPTURE(commands[i][0]);
      CAPTURE(signal);
      Built example(commands[i]);
      REQUIRE(example.started());
      // Running and past its setup: its first line, or (minimal_client says nothing until it
      // connects) a moment.
      if (*started[i]) {
        CHECK(example.wait_for_stderr(started[i]));
      } else {
        std::this_thread::sleep_for(200ms);
      }
      example.signal(signal);
      CHECK(example.wait() == 0);
    }
  }
}

TEST_CASE("hb_client against a closed port: the error once, then backoff; --connect-attempts gives up with status 1") {
  Built client({"hb_client", "--connect", "127.0.0.1:1", "--conns", "2", "--connect-attempts", "3"});
  REQUIRE(client.started());
  const int status = client.wait(10s);
  const std::string err = client.stderr_text();
  INFO("hb_client said: ", err);
  CHECK(status == 1);
  CHECK(occurrences(err, "Connection refused") == 2);  // the error once, and the giving-up line
  CHECK(occurrences(err, "hb_client: connect to 127.0.0.1:1 failed: Connection refused") == 1);
  CHECK(err.find("hb_client: giving up: every connection failed 3 attempts in a row") != std::string::npos);
  CHECK(err.find("failed 6  given-up 2") != std::string::npos);  // 2 connections x 3 attempts
}

TEST_CASE("hb_client without --connect-attempts keeps trying, visibly, until stopped") {
  Built client({"hb_client", "--connect", "127.0.0.1:1"});
  REQUIRE(client.started());
  REQUIRE(client.wait_for_stderr("Connection refused"));
  // The backoff starts at 100 ms: within a few seconds the once-a-second line counts retries.
  CHECK(client.wait_for_stderr("given-up 0"));
  std::this_thread::sleep_for(1500ms);
  client.signal(SIGTERM);
  CHECK(client.wait() == 0);
  const std::string err = client.stderr_text();
  INFO("hb_client said: ", err);
  CHECK(occurrences(err, "Connection refused") == 1);
  const std::size_t last = err.rfind("failed ");
  REQUIRE(last != std::string::npos);
  CHECK(std::stol(err.substr(last + 7)) >= 3);
}

TEST_CASE("an example's errors carry its own name once, never the library's prefix") {
  struct Case {
    std::vector<std::string> args;
    int status;
    const char* says;
  };
  BusyPort busy;
  const Case cases[] = {
      {{"hb_server", "--listen", "127.0.0.1:99999"}, 2, "hb_server: bad port in address"},
      {{"hb_server", "--listen=127.0.0.1:0", "--ping-interval-ms=3000", "--idle-timeout-ms", "1000"}, 2,
       "hb_server: heartbeat idle_timeout must be longer than ping_interval"},
      {{"hb_server", "--listen", "127.0.0.1:" + std::to_string(busy.port)}, 1, "hb_server: bind 127.0.0.1:"},
      {{"hb_server", "--listen"}, 2, "hb_server: --listen needs a value"},
      {{"hb_client", "--connect", "127.0.0.1:1", "--mute", "2"}, 2, "hb_client: --mute must not exceed --conns"},
      {{"pool_server", "--listen", "127.0.0.1:0", "--prefork", "2"}, 2, "pool_server: --prefork needs a fixed port"},
      {{"pool_server", "--listen", "127.0.0.1:0", "--tick-ms", "x"}, 2, "pool_server: bad --tick-ms 'x'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.says);
    Built example(c.args);
    REQUIRE(example.started());
    CHECK(example.wait() == c.status);
    const std::string err = example.stderr_text();
    CHECK(err.rfind(c.says, 0) == 0);
    CHECK(err.find('\n') == err.size() - 1);
    CHECK(err.find("evwheel: ") == std::string::npos);
  }
}

TEST_CASE("hb_client --codec websocket holds WebSocket connections to hb_server --codec websocket; its muted one is closed by the idle timeout") {
  Built server({"hb_server", "--listen", "127.0.0.1:0", "--codec", "websocket", "--ping-interval-ms", "100",
                "--idle-timeout-ms", "500"});
  REQUIRE(server.started());
  const long port = server.wait_for_number("listening on port ");
  REQUIRE(port > 0);
  Built client({"hb_client", "--connect", "127.0.0.1:" + std::to_string(port), "--codec", "websocket", "--conns", "2",
                "--mute", "1"});
  REQUIRE(client.started());
  // Counters come once a second: the mute one is gone within I and a tick.
  CHECK(server.wait_for_stderr("idle-closes 1 ", 5s));
  client.signal(SIGTERM);
  CHECK(client.wait() == 0);
  server.signal(SIGTERM);
  CHECK(server.wait() == 0);
  const std::string client_said = client.stderr_text(), server_said = server.stderr_text();
  INFO("hb_client said: ", client_said, "\nhb_server said: ", server_said);
  const std::string last_client = client_said.substr(client_said.rfind("open "));
  const std::string last_server = server_said.substr(server_said.rfind("open "));
  CHECK(programs::number_after(last_client, "failed ") == 0);
  CHECK(programs::number_after(last_client, "pongs-sent ") >= 5);  // ping frames answered
  CHECK(programs::number_after(last_client, "reset ") >= 1);       // the mute one, dropped by the server
  CHECK(programs::number_after(last_server, "pongs ") >= 5);
  CHECK(programs::number_after(last_server, "idle-closes ") >= 1);
}

TEST_CASE("ws_server serves its page at /, 404 elsewhere, upgrades /ws only, and sends each connection its RTT as text; a line per open and close") {
  Built server({"ws_server", "--listen", "127.0.0.1:0", "--ping-interval-ms", "50", "--idle-timeout-ms", "2000",
                "--rtt-every-ms", "50"});
  REQUIRE(server.started());
  const long announced = server.wait_for_number("listening on http://127.0.0.1:");
  REQUIRE(announced > 0);
  const auto port = static_cast<uint16_t>(announced);
  auto exchange = [port](const std::string& request) {
    int fd = raw_connect(port);
    std::string answer;
    if (fd >= 0 && write_all(fd, request)) read_to_end(fd, &answer);
    ::close(fd);
    return answer;
  };
  const std::string upgrade = " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const std::string page = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(page.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(page.find("new WebSocket(`ws://${location.host}/ws`)") != std::string::npos);
  CHECK(exchange("GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0);
  CHECK(exchange("GET /chat" + upgrade).rfind("HTTP/1.1 404", 0) == 0);

  int peer = raw_connect(port);
  REQUIRE(peer >= 0);
  REQUIRE(write_all(peer, "GET /ws" + upgrade));
  std::string got;
  // Unmasked text frames: 0x81, the length, the report.  This client answers no ping, so the
  // server has measured nothing yet.
  const std::string report = std::string("\x81\x0d") + "{\"rtt_us\": 0}";
  auto deadline = Clock::now() + 5s;
  while (got.find(report) == std::string::npos && Clock::now() < deadline && drain(peer, got) == kOpen)
    std::this_thread::sleep_for(10ms);
  CHECK(got.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(got.find(report) != std::string::npos);
  ::close(peer);  // no close frame: 1006

  server.signal(SIGTERM);
  CHECK(server.wait() == 0);
  const std::string out = server.stderr_text();
  INFO("ws_server said: ", out);
  CHECK(occurrences(out, "open fd ") == 1);
  CHECK(occurrences(out, ": peer closed, code 1006, rtt 0 us\n") == 1);
  CHECK(programs::number_after(out, "pages ") == 2);
  CHECK(programs::number_after(out, "upgrades ") == 1);
  CHECK(programs::number_after(out, "refused ") == 1);
}
