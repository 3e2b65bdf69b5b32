// A real browser on evwheel's WebSocket server: headless Chromium loads examples/ws_server's
// page (started from $EVWHEEL_BUILD, as `make test` builds it), whose script opens a
// WebSocket back to the server, sends a few text messages and shows their echoes and the RTT
// reports the server sends.  The server pings the browser, which answers by itself; the page
// sends nothing after its greetings, so only those answers keep the connection open past the
// idle timeout.
//
// The test reads the page's DOM through Chromium's DevTools protocol, which it speaks over
// evwheel's own WebSocket client (a second real peer: Chromium's DevTools server).  It cannot
// use --dump-dom: that dumps at the load event, before the WebSocket has even opened, and
// --virtual-time-budget does not wait for WebSocket traffic (virtual time runs ahead of the
// real pings).  DevTools waits, in real time, until the page has seen enough RTT reports.
// Skipped, saying so, where chromium is not installed (a failure under CI, whose .ci/run
// installs it: tests/skip.hpp).
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/websocket.hpp"
#include "loopback.hpp"
#include "programs.hpp"
#include "skip.hpp"

using namespace evwheel;
using namespace loopback;
using programs::Built;
using programs::number_after;
using programs::occurrences;

namespace {

// What this machine's Chromium needs to run headless as root in a container, quietly.
const std::vector<std::string> kChromiumFlags = {
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"};

// The value of the string field `key` in a JSON text, if it has no escapes; "" if absent.
std::string json_string(const std::string& json, const std::string& key) {
  const std::string opening = "\"" + key + "\":\"";
  std::size_t at = json.find(opening);
  if (at == std::string::npos) return "";
  at += opening.size();
  return json.substr(at, json.find('"', at) - at);
}

// Chromium's DevTools protocol over evwheel's WebSocket client: one command at a time, each
// answered by the message that starts with its id.
class DevTools final : public ConnectionHandler {
 public:
  DevTools(Reactor& reactor, uint16_t port, const std::string& path)
      : reactor_(reactor), endpoint_(reactor, *this, endpoint_options(path)) {
    ConnectorOptions connect;
    connect.address = "127.0.0.1:" + std::to_string(port);
    connector_ = std::make_unique<Connector>(endpoint_, connect);
    connector_->start();
  }

  bool connected() { return pump_until(reactor_, [&] { return connector_->connection() != nullptr; }, 10s); }

  // The answer to `method` with `params` (a JSON object), in the target session `session` if
  // one is given; "" if none came within `timeout`.
  std::string call(const std::string& method, const std::string& params, const std::string& session = "",
                   Duration timeout = 10s) {
    Connection* connection = connector_->connection();
    if (connection == nullptr) return "";
    expected_ = "{\"id\":" + std::to_string(++id_) + ",";
    answer_.clear();
    std::string command = expected_ + "\"method\":\"" + method + "\",\"params\":" + params;
    if (!session.empty()) command += ",\"sessionId\":\"" + session + "\"";
    if (!connection->send_text(command + "}")) return "";
    pump_until(reactor_, [&] { return !answer_.empty(); }, timeout);
    return answer_;
  }

 private:
  static EndpointOptions endpoint_options(const std::string& path) {
    WebSocketOptions websocket;
    websocket.role = WebSocketRole::client;
    websocket.path = path;
    EndpointOptions options;
    options.side = Side::client;
    options.codec = std::make_shared<WebSocketCodec>(websocket);
    options.heartbeat.ping_interval = std::chrono::hours(1);  // DevTools never pings: nothing to judge
    options.heartbeat.idle_timeout = std::chrono::hours(2);
    return options;
  }
  void on_text(Connection&, std::string_view text) override {
    if (text.substr(0, expected_.size()) == expected_) answer_ = text;
  }

  Reactor& reactor_;
  Endpoint endpoint_;
  std::unique_ptr<Connector> connector_;
  int id_ = 0;
  std::string expected_, answer_;
};

// The page's state once it has seen `reports` RTT reports: "connection|echoed/sent|rtt in us".
std::string page_state_after(int reports) {
  return "new Promise((resolve) => {"
         "  const text = (id) => document.getElementById(id) ? document.getElementById(id).textContent : '';"
         "  const poll = () => {"
         "    if (Number(text('reports')) < " + std::to_string(reports) + ") return setTimeout(poll, 20);"
         "    resolve([text('state'), text('echoed') + '/' + text('sent'), parseInt(text('rtt')) || 0].join('|'));"
         "  };"
         "  poll();"
         "})";
}

// The last `n` characters of `text` (Chromium's log is long).
std::string tail(const std::string& text, std::size_t n = 3000) {
  return text.size() > n ? text.substr(text.size() - n) : text;
}

}  // namespace

TEST_CASE("websocket: headless Chromium loads ws_server's page, stays open on its answers to the server's pings, and sees its messages echoed") {
  const std::string chromium = programs::find("chromium");
  if (chromium.empty()) {
    skip::because("chromium is not installed (apt-get install chromium); the real-browser WebSocket test did not run");
    return;
  }
  // P = 200 ms, I = 1 s; eight reports 200 ms apart span more than I.
  constexpr int kReports = 8;
  Built server({"ws_server", "--listen", "127.0.0.1:0", "--ping-interval-ms", "200", "--idle-timeout-ms", "1000",
                "--rtt-every-ms", "200"});
  REQUIRE(server.started());
  const long port = server.wait_for_number("listening on http://127.0.0.1:");
  REQUIRE(port > 0);

  char profile_template[] = "/tmp/evwheel-chromium-XXXXXX";
  REQUIRE(::mkdtemp(profile_template) != nullptr);
  const std::string profile = profile_template;
  std::vector<std::string> args = {chromium};
  args.insert(args.end(), kChromiumFlags.begin(), kChromiumFlags.end());
  args.insert(args.end(), {"--user-data-dir=" + profile, "--remote-debugging-port=0", "about:blank"});
  {
    Built browser(args);
    REQUIRE(browser.started());
    // Chromium names its DevTools port and path in the profile once it listens.
    const std::string active = profile + "/DevToolsActivePort";
    long devtools_port = -1;
    std::string devtools_path;
    auto deadline = Clock::now() + 30s;
    while ((devtools_port <= 0 || devtools_path.empty()) && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      std::ifstream in(active);
      in >> devtools_port >> devtools_path;
    }
    INFO("chromium said: ", tail(browser.stderr_text()));
    REQUIRE(devtools_port > 0);

    Reactor reactor;
    DevTools devtools(reactor, static_cast<uint16_t>(devtools_port), devtools_path);
    REQUIRE(devtools.connected());
    const std::string page = "http://127.0.0.1:" + std::to_string(port) + "/";
    const std::string target =
        json_string(devtools.call("Target.createTarget", "{\"url\":\"" + page + "\"}"), "targetId");
    REQUIRE(!target.empty());
    const std::string session = json_string(
        devtools.call("Target.attachToTarget", "{\"targetId\":\"" + target + "\",\"flatten\":true}"), "sessionId");
    REQUIRE(!session.empty());
    // Until the page has committed, an evaluation may run in the blank document it replaces
    // and end with its context: ask again.
    std::string state;
    deadline = Clock::now() + 30s;
    while (state.empty() && Clock::now() < deadline) {
      state = json_string(devtools.call("Runtime.evaluate", "{\"expression\":\"" + page_state_after(kReports) +
                                                               "\",\"awaitPromise\":true,\"returnByValue\":true}",
                                        session, 15s),
                          "value");
    }
    INFO("the page said: ", state);
    // Still open after more than an idle timeout with nothing sent but pongs; the three
    // greetings (two of them beyond ASCII) echoed; an RTT measured from the pings.
    CHECK(state.rfind("open|3/3|", 0) == 0);
    CHECK(std::atol(state.substr(state.rfind('|') + 1).c_str()) > 0);
    CHECK(!devtools.call("Browser.close", "{}").empty());
    CHECK(browser.wait(10s) == 0);
  }
  std::filesystem::remove_all(profile);

  server.signal(SIGTERM);
  CHECK(server.wait() == 0);
  const std::string out = server.stderr_text();
  INFO("ws_server said: ", out);
  CHECK(occurrences(out, "open fd ") == 1);
  CHECK(number_after(out, "upgrades ") == 1);
  CHECK(number_after(out, "pongs ") >= kReports - 2);  // Chromium answered ping after ping
  CHECK(number_after(out, "idle-closes ") == 0);
  CHECK(number_after(out, "protocol-errors ") == 0);
}
