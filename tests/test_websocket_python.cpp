// evwheel's WebSocket server against a client it did not write: Debian's python3-websockets,
// driven by tests/clients/ws_client.py, talks to examples/ws_server (started from
// $EVWHEEL_BUILD, as `make test` builds it).  The client checks what it receives with the
// library's own strict frame checks; the server's lines say how each connection closed and
// what its heartbeat counted.  Skipped, saying so, where no python3 can import websockets
// (a failure under CI, whose .ci/run installs python3-websockets: tests/skip.hpp).
#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include "doc_blocks.hpp"
#include "loopback.hpp"
#include "programs.hpp"
#include "skip.hpp"

using namespace loopback;
using programs::Built;
using programs::number_after;
using programs::occurrences;

namespace {

// A python3 that has websockets: Debian's (python3-websockets installs into it), else the
// first on PATH; "" if neither has it.
std::string python_with_websockets() {
  for (const std::string& python : {std::string("/usr/bin/python3"), programs::find("python3")}) {
    if (python.empty() || ::access(python.c_str(), X_OK) != 0) continue;
    Built probe({python, "-c", "import websockets"});
    if (probe.started() && probe.wait() == 0) return python;
  }
  return "";
}

}  // namespace

TEST_CASE("websocket: python3-websockets exchanges whole and fragmented messages, stays open under pings, and a client that stops reading is closed after the idle timeout") {
  const std::string python = python_with_websockets();
  if (python.empty()) {
    skip::because("no python3 has websockets (apt-get install python3-websockets); the python3-websockets test did not run");
    return;
  }
  // P = 200 ms, I = 1 s: a client muted for 2.5 s is well past its idle timeout, and eight RTT
  // reports 200 ms apart keep the talking client open beyond I on pongs alone.
  Built server({"ws_server", "--listen", "127.0.0.1:0", "--ping-interval-ms", "200", "--idle-timeout-ms", "1000",
                "--rtt-every-ms", "200"});
  REQUIRE(server.started());
  const long port = server.wait_for_number("listening on http://127.0.0.1:");
  REQUIRE(port > 0);

  const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/ws";
  Built client({python, doc_blocks::source_dir() + "/tests/clients/ws_client.py", url, "8", "2.5"});
  REQUIRE(client.started());
  const int status = client.wait(30s);
  const std::string said = client.stderr_text();
  INFO("ws_client.py said:\n", said);
  CHECK(status == 0);
  CHECK(said.size() >= 3);
  CHECK(said.compare(said.size() - 3, 3, "ok\n") == 0);

  server.signal(SIGTERM);
  CHECK(server.wait() == 0);
  const std::string out = server.stderr_text();
  INFO("ws_server said:\n", out);
  CHECK(occurrences(out, "open fd ") == 2);
  CHECK(occurrences(out, ": peer closed, code 1000,") == 1);  // the talking client's close
  CHECK(occurrences(out, ": idle timeout, code 1006,") == 1);  // the mute one, reset
  CHECK(number_after(out, "upgrades ") == 2);
  CHECK(number_after(out, "pongs ") >= 5);  // the talking client answered ping after ping
  CHECK(number_after(out, "idle-closes ") == 1);
  CHECK(number_after(out, "protocol-errors ") == 0);
}
