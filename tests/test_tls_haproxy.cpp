// TLS through a real HAProxy, with docs/tls.md's haproxy.cfg: the test makes a throw-away
// certificate (`openssl req`), runs HAProxy with the document's configuration (only the
// certificate path, the bind address, the backend port and maxconn swapped for the test's) in front
// of an in-process evwheel server (seed codec, PROXY v2), and starts `openssl s_client`
// processes as TLS clients, each from its own loopback address (127.0.0.5, .6, .7) and
// verifying the certificate.  The test answers each client's "ping" with "pong" through the
// client's stdin, so heartbeats cross TLS both ways; one client then falls silent and evwheel
// must close it for idle_timeout while the others stay up, and evwheel must name each client by
// its own address (from the PROXY header), not HAProxy's.
// Skipped, with a message saying so, when haproxy or openssl is not installed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "doc_blocks.hpp"
#include "evwheel/address.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "programs.hpp"
#include "skip.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Replaces the one occurrence of `from` in `text`; false (text unchanged) if there is none.
bool replace_once(std::string& text, const std::string& from, const std::string& to) {
  std::size_t at = text.find(from);
  if (at == std::string::npos) return false;
  text.replace(at, from.size(), to);
  return true;
}

// Kills (SIGKILL) and reaps a child process unless it has already been reaped.
void stop_process(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
}

// One `openssl s_client` process: its stdout comes into the test's reactor through a pipe, and
// each "ping" it prints is answered with "pong" on its stdin — until the test mutes it.
class TlsClient final : public IoHandler {
 public:
  TlsClient(Reactor& reactor, const std::string& openssl, const std::string& source, uint16_t port,
            const std::string& ca, const std::string& log)
      : reactor_(reactor), source_(source) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return;
    }
    programs::Plumbing plumbing;
    plumbing.in = in[0];
    plumbing.out = out[1];
    plumbing.log = log;
    pid_ = programs::spawn({openssl, "s_client", "-quiet", "-connect", "127.0.0.1:" + std::to_string(port),
                            "-bind", source, "-servername", "localhost", "-verify_hostname", "localhost",
                            "-CAfile", ca, "-verify_return_error"},
                           plumbing);
    ::close(in[0]);
    ::close(out[1]);
    to_client_ = in[1];
    from_client_ = out[0];
    ::fcntl(from_client_, F_SETFL, O_NONBLOCK);
    reactor_.add(from_client_, EPOLLIN, *this);
  }
  ~TlsClient() {
    if (!ended_) reactor_.remove(from_client_);
    if (from_client_ >= 0) ::close(from_client_);
    if (to_client_ >= 0) ::close(to_client_);
    stop_process(pid_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool started() const { return pid_ > 0; }
  const std::string& source() const { return source_; }
  int pings() const { return pings_; }
  bool ended() const { return ended_; }          // the client's output ended: TLS closed
  bool garbled() const { return garbled_; }      // it printed something other than "ping"
  void mute() { muted_ = true; }

  void on_io(uint32_t) override {
    char chunk[256];
    ssize_t got;
    while ((got = ::read(from_client_, chunk, sizeof chunk)) > 0) pending_.append(chunk, static_cast<std::size_t>(got));
    for (; pending_.size() >= 4; pending_.erase(0, 4)) {
      if (pending_.compare(0, 4, "ping") != 0) garbled_ = true;
      ++pings_;
      if (!muted_) [[maybe_unused]] auto n = ::write(to_client_, "pong", 4);
    }
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      ended_ = true;
      reactor_.remove(from_client_);
    }
  }

 private:
  Reactor& reactor_;
  std::string source_;
  pid_t pid_ = -1;
  int to_client_ = -1, from_client_ = -1;
  std::string pending_;
  int pings_ = 0;
  bool muted_ = false, ended_ = false, garbled_ = false;
};

// A temporary directory, removed with what is in it (also when a REQUIRE fails half-way).
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/evwheel-tls-XXXXXX";
    if (::mkdtemp(pattern)) path = pattern;
  }
  ~TempDir() {
    if (!path.empty()) [[maybe_unused]] int status = std::system(("rm -rf " + path).c_str());
  }
};

}  // namespace

TEST_CASE("TLS through HAProxy with docs/tls.md's config: heartbeats flow, a muted client is closed for idle_timeout, evwheel sees each client's own address") {
  const std::string haproxy = programs::find("haproxy"), openssl = programs::find("openssl");
  if (haproxy.empty()) {
    skip::because("haproxy is not installed (apt-get install haproxy); the TLS-through-HAProxy test did not run");
    return;
  }
  if (openssl.empty()) {
    skip::because("openssl is not installed (apt-get install openssl); the TLS-through-HAProxy test did not run");
    return;
  }
  const std::size_t fds = open_fd_count();
  {
    std::optional<std::string> doc = doc_blocks::read_file(doc_blocks::source_dir() + "/docs/tls.md");
    REQUIRE_MESSAGE(doc, "cannot read docs/tls.md (run from the repository root, or set EVWHEEL_SOURCE_DIR)");
    doc_blocks::Extracted extracted = doc_blocks::extract_block(*doc, "<!-- haproxy.cfg -->", "docs/tls.md", "haproxy");
    REQUIRE_MESSAGE(extracted.block, extracted.error);
    std::string config = *extracted.block;

    // The document's config is for the default heartbeat: every HAProxy inactivity timeout must
    // exceed its idle timeout (docs/tls.md says why).
    for (const char* timeout : {"timeout client ", "timeout server ", "timeout tunnel "}) {
      std::size_t at = config.find(timeout);
      REQUIRE_MESSAGE(at != std::string::npos, "docs/tls.md's haproxy.cfg sets no " << timeout);
      std::size_t digits = at + std::string(timeout).size();
      const long seconds = std::strtol(config.c_str() + digits, nullptr, 10);
      INFO(config.substr(at, config.find('\n', at) - at));
      CHECK(config.compare(config.find_first_not_of("0123456789", digits), 2, "s\n") == 0);
      CHECK(std::chrono::seconds(seconds) > HeartbeatPolicy{}.idle_timeout);
    }

    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string cert = dir.path + "/cert.pem", key = dir.path + "/key.pem", pem = dir.path + "/evwheel.pem";
    const std::string tool_log = dir.path + "/openssl.log", haproxy_log = dir.path + "/haproxy.log";
    int made = std::system((openssl + " req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2" +
                            " -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout " + key +
                            " -out " + cert + " >" + tool_log + " 2>&1 && cat " + cert + " " + key + " >" + pem)
                               .c_str());
    INFO("openssl req: ", programs::read_file(tool_log));
    REQUIRE(made == 0);

    // The evwheel server: seed codec, a ping every 100 ms, a peer silent for 1 s is closed.
    Reactor reactor;
    Recorder handler;
    EndpointOptions endpoint_options = options(Side::server, 100ms, 1s);
    endpoint_options.codec = std::make_shared<SeedCodec>();
    Endpoint endpoint(reactor, handler, endpoint_options);
    ListenerOptions listener_options;
    listener_options.proxy_protocol = ProxyProtocol::v2;
    Listener listener(endpoint, listener_options);
    std::vector<std::string> clients;  // peer_address() at on_open: the PROXY header's client
    std::vector<std::string> sockets;  // the socket's own peer: HAProxy
    handler.open_hook = [&](Connection& c) {
      clients.push_back(to_string(c.peer_address()));
      sockets.push_back(peer_host(c.fd()));
    };
    std::vector<std::string> idle_closed;
    handler.close_hook = [&](Connection& c, CloseReason reason) {
      if (reason == CloseReason::idle_timeout) idle_closed.push_back(to_string(c.peer_address()));
    };

    // HAProxy's frontend socket is bound here and handed over as fd@N: no port race.
    sockaddr_in front{};
    int front_fd = raw_listen(16, &front);
    REQUIRE(front_fd >= 0);
    const int at = front_fd + 1;
    REQUIRE_MESSAGE(replace_once(config, "bind :443 ssl crt /etc/haproxy/certs/evwheel.pem",
                                 "bind fd@" + std::to_string(at) + " ssl crt " + pem),
                    "docs/tls.md's haproxy.cfg no longer has the bind line this test expects");
    // 100000 connections need a descriptor limit a test machine may not grant.
    REQUIRE_MESSAGE(replace_once(config, "    maxconn 100000\n", "    maxconn 1000\n"),
                    "docs/tls.md's haproxy.cfg no longer has the maxconn line this test expects");
    REQUIRE_MESSAGE(replace_once(config, "server evwheel1 127.0.0.1:9000 send-proxy-v2",
                                 "server evwheel1 127.0.0.1:" + std::to_string(listener.port()) + " send-proxy-v2"),
                    "docs/tls.md's haproxy.cfg no longer has the server line this test expects");
    const std::string config_path = dir.path + "/haproxy.cfg";
    std::ofstream(config_path) << config;
    pid_t haproxy_pid = programs::spawn_haproxy(haproxy, config_path, haproxy_log, {front_fd}, {at});
    ::close(front_fd);  // haproxy has its own copy
    REQUIRE(haproxy_pid > 0);
    struct Reap {
      pid_t& pid;
      ~Reap() { stop_process(pid); }
    } reap_haproxy{haproxy_pid};

    std::vector<std::unique_ptr<TlsClient>> tls;
    for (const char* source : {"127.0.0.5", "127.0.0.6", "127.0.0.7"}) {
      tls.push_back(std::make_unique<TlsClient>(reactor, openssl, source, ntohs(front.sin_port), cert,
                                                dir.path + "/s_client-" + source + ".log"));
      REQUIRE(tls.back()->started());
    }
    auto report = [&] {
      std::string text = "evwheel: opens " + std::to_string(handler.opens) + ", pongs " +
                         std::to_string(endpoint.heartbeat_stats().pongs_received) + ", proxy failures ";
      for (uint64_t count : listener.stats().proxy_failures) text += std::to_string(count) + " ";
      for (const auto& client : tls)
        text += "\n" + client->source() + ": pings " + std::to_string(client->pings()) +
                (client->ended() ? ", ended" : "") + "\n" +
                programs::read_file(dir.path + "/s_client-" + client->source() + ".log");
      return text + "\nhaproxy:\n" + programs::read_file(haproxy_log);
    };

    // Heartbeats cross TLS both ways for every client.
    bool flowing = pump_until(reactor, [&] {
      for (const auto& client : tls)
        if (client->pings() < 3) return false;
      return handler.opens == 3 && endpoint.heartbeat_stats().pongs_received >= 9;
    }, 20s);
    INFO(report());
    REQUIRE(flowing);
    for (const auto& client : tls) CHECK_FALSE(client->garbled());
    CHECK(handler.closes.empty());

    // evwheel names each client by its own address and port (from the PROXY header), while the
    // socket it reads comes from HAProxy.
    REQUIRE(clients.size() == 3);
    std::set<std::string> hosts;
    for (const std::string& client : clients) hosts.insert(client.substr(0, client.find(':')));
    CHECK(hosts == std::set<std::string>{"127.0.0.5", "127.0.0.6", "127.0.0.7"});
    for (const std::string& socket : sockets) CHECK(socket == "127.0.0.1");

    // The client from 127.0.0.5 stops answering: evwheel closes it for idle_timeout, HAProxy
    // then ends its TLS session, and the other two keep their heartbeat.
    TlsClient& muted = *tls[0];
    muted.mute();
    const uint64_t pongs_before = endpoint.heartbeat_stats().pongs_received;
    REQUIRE(pump_until(reactor, [&] { return !handler.closes.empty(); }, 10s));
    REQUIRE(handler.closes.size() == 1);
    CHECK(handler.closes[0].reason == CloseReason::idle_timeout);
    REQUIRE(idle_closed.size() == 1);
    CHECK(idle_closed[0].rfind("127.0.0.5:", 0) == 0);
    CHECK(pump_until(reactor, [&] { return muted.ended(); }, 10s));
    CHECK(endpoint.size() == 2);
    CHECK(pump_until(reactor, [&] { return endpoint.heartbeat_stats().pongs_received >= pongs_before + 6; }, 10s));
    CHECK(handler.closes.size() == 1);
    uint64_t failures = 0;
    for (uint64_t count : listener.stats().proxy_failures) failures += count;
    CHECK(failures == 0);

    tls.clear();  // kills the clients before the reactor their pipes are registered with goes
  }
  CHECK(open_fd_count() == fds);
}
