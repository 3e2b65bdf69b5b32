// MetricsHttp over real loopback sockets: each status (200, 404, 405, 400, 431), HEAD, a query
// string, the bind address, a request split over several writes, a client that trickles its
// request past the deadline, the client limit, and running out of descriptors (EMFILE) in a
// forked child with a low RLIMIT_NOFILE, whose CPU time shows it does not spin.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "evwheel/metrics_http.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

const std::string kBody = "evwheel_up 1\n";

// A MetricsHttp in its own reactor whose render() returns kBody and counts its calls.
struct Server {
  Reactor reactor;
  int renders = 0;
  MetricsHttp http;
  explicit Server(MetricsHttpOptions options = {})
      : http(reactor, [this] { ++renders; return kBody; }, std::move(options)) {}
};

// A blocking TCP socket connected to host:port; -1 (errno set) on failure.
int connect_to(const char* host, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  ::inet_pton(AF_INET, host, &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
  int error = errno;
  ::close(fd);
  errno = error;
  return -1;
}

// Reads `fd` while the server's loop runs, until the server closes it: everything it sent.
std::string read_answer(Server& s, int fd) {
  std::string answer;
  pump_until(s.reactor, [&] { return drain(fd, answer) != kOpen; });
  return answer;
}

// One request on a new connection to 127.0.0.1, the whole answer back.
std::string ask(Server& s, const std::string& request) {
  int fd = raw_connect(s.http.port());
  if (fd < 0) return "";
  std::string answer = write_all(fd, request) ? read_answer(s, fd) : "";
  ::close(fd);
  return answer;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// What follows the blank line of an HTTP answer ("" if there is none).
std::string body_of(const std::string& answer) {
  std::size_t end = answer.find("\r\n\r\n");
  return end == std::string::npos ? "" : answer.substr(end + 4);
}

}  // namespace

TEST_CASE("metrics_http: GET /metrics answers 200 with render()'s text, its length and Connection: close") {
  const std::size_t fds = open_fd_count();
  {
    Server s;
    std::string answer = ask(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    INFO(answer);
    CHECK(starts_with(answer, "HTTP/1.1 200 OK\r\n"));
    CHECK(answer.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
    CHECK(answer.find("\r\nContent-Length: " + std::to_string(kBody.size()) + "\r\n") != std::string::npos);
    CHECK(answer.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(body_of(answer) == kBody);
    CHECK(s.renders == 1);
    CHECK(pump_until(s.reactor, [&] { return s.http.clients() == 0; }));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("metrics_http: a query string is ignored, and bare-LF requests are accepted") {
  Server s;
  CHECK(body_of(ask(s, "GET /metrics?x=1&name[]=a HTTP/1.1\r\n\r\n")) == kBody);
  CHECK(body_of(ask(s, "GET /metrics? HTTP/1.0\r\n\r\n")) == kBody);
  CHECK(body_of(ask(s, "GET /metrics HTTP/1.1\nHost: x\n\n")) == kBody);
  CHECK(starts_with(ask(s, "GET /metricsx?a HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found\r\n"));
}

TEST_CASE("metrics_http: HEAD /metrics answers the GET headers, Content-Length included, without a body") {
  Server s;
  std::string get = ask(s, "GET /metrics HTTP/1.1\r\n\r\n");
  std::string head = ask(s, "HEAD /metrics HTTP/1.1\r\n\r\n");
  INFO(head);
  CHECK(starts_with(head, "HTTP/1.1 200 OK\r\n"));
  CHECK(head.find("\r\nContent-Length: " + std::to_string(kBody.size()) + "\r\n") != std::string::npos);
  CHECK(body_of(head).empty());
  CHECK(head == get.substr(0, get.size() - kBody.size()));
  std::string missing = ask(s, "HEAD /nothing HTTP/1.1\r\n\r\n");
  CHECK(starts_with(missing, "HTTP/1.1 404 Not Found\r\n"));
  CHECK(body_of(missing).empty());
}

TEST_CASE("metrics_http: other methods get 405 with Allow: GET, HEAD; other paths 404; a malformed request line 400") {
  Server s;
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "get"}) {
    std::string answer = ask(s, std::string(method) + " /metrics HTTP/1.1\r\n\r\n");
    INFO(method, ": ", answer);
    CHECK(starts_with(answer, "HTTP/1.1 405 Method Not Allowed\r\n"));
    CHECK(answer.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  }
  CHECK(starts_with(ask(s, "GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found\r\n"));
  for (const char* line : {"nonsense", "GET /metrics", "GET /metrics FTP/1.0", " /metrics HTTP/1.1", "GET  HTTP/1.1"}) {
    std::string answer = ask(s, std::string(line) + "\r\n\r\n");
    INFO("'", line, "': ", answer);
    CHECK(starts_with(answer, "HTTP/1.1 400 Bad Request\r\n"));
  }
  CHECK(s.renders == 0);
}

TEST_CASE("metrics_http: a request split over several writes is answered once, when its head is complete") {
  Server s;
  int fd = raw_connect(s.http.port());
  REQUIRE(fd >= 0);
  std::string answer;
  for (const char* part : {"GE", "T /met", "rics HTTP/1.1\r", "\nHost: x\r\n", "\r"}) {
    REQUIRE(write_all(fd, part));
    pump_for(s.reactor, 20ms);
    CHECK(drain(fd, answer) == kOpen);
    CHECK(answer.empty());
  }
  REQUIRE(write_all(fd, "\n"));
  answer = read_answer(s, fd);
  CHECK(starts_with(answer, "HTTP/1.1 200 OK\r\n"));
  CHECK(s.renders == 1);
  ::close(fd);
}

TEST_CASE("metrics_http: only the first request of a connection is answered") {
  Server s;
  std::string answer = ask(s, "GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n");
  CHECK(answer.find("HTTP/1.1", 1) == std::string::npos);
  CHECK(s.renders == 1);
}

TEST_CASE("metrics_http: a request head over kMaxRequest bytes is answered 431 without waiting for its end") {
  Server s;
  std::string request = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(MetricsHttp::kMaxRequest, 'a');
  std::string answer = ask(s, request);  // the blank line never comes
  INFO(answer.substr(0, 200));
  CHECK(starts_with(answer, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  CHECK(s.renders == 0);
  // A head of exactly kMaxRequest bytes is still served.
  std::string exact = "GET /metrics HTTP/1.1\r\nX-Padding: ";
  exact += std::string(MetricsHttp::kMaxRequest - exact.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(exact.size() == MetricsHttp::kMaxRequest);
  CHECK(body_of(ask(s, exact)) == kBody);
}

TEST_CASE("metrics_http: it listens on the configured address only; a bad address or deadline throws") {
  const std::size_t fds = open_fd_count();
  {
    MetricsHttpOptions options;
    options.address = "127.0.0.2:0";
    Server s(options);
    int other = connect_to("127.0.0.1", s.http.port());
    CHECK(other < 0);
    CHECK(errno == ECONNREFUSED);
    if (other >= 0) ::close(other);
    int fd = connect_to("127.0.0.2", s.http.port());
    REQUIRE(fd >= 0);
    REQUIRE(write_all(fd, "GET /metrics HTTP/1.1\r\n\r\n"));
    CHECK(body_of(read_answer(s, fd)) == kBody);
    ::close(fd);

    Reactor reactor;
    auto render = [] { return std::string(); };
    MetricsHttpOptions bad;
    bad.address = "127.0.0.300:80";
    CHECK_THROWS_AS(MetricsHttp(reactor, render, bad), std::invalid_argument);
    bad.address = "127.0.0.2:" + std::to_string(s.http.port());
    CHECK_THROWS_AS(MetricsHttp(reactor, render, bad), std::system_error);  // EADDRINUSE
    for (Duration deadline : {Duration::zero(), Duration(-1), Duration::max()}) {
      MetricsHttpOptions wrong;
      wrong.deadline = deadline;
      CHECK_THROWS_AS(MetricsHttp(reactor, render, wrong), std::invalid_argument);
    }
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("metrics_http: a client that trickles its request is closed at the deadline, unanswered") {
  const std::size_t fds = open_fd_count();
  {
    MetricsHttpOptions options;
    options.deadline = 300ms;
    Server s(options);
    const auto opened = Clock::now();  // before accept, so the deadline ends after it
    int fd = raw_connect(s.http.port());
    REQUIRE(fd >= 0);
    const std::string request = "GET /metrics HTTP/1.1\r\nX-Slow: " + std::string(1000, 'a');
    std::size_t sent = 0;
    std::string answer;
    int status = kOpen;
    // One byte every 10 ms: never silent, never done.
    bool closed = pump_until(s.reactor, [&] {
      if (sent < request.size() && Clock::now() - opened >= sent * 10ms) {
        ::send(fd, request.data() + sent, 1, MSG_NOSIGNAL);
        ++sent;
      }
      status = drain(fd, answer);
      return status != kOpen;
    });
    REQUIRE(closed);
    const auto took = Clock::now() - opened;
    INFO("closed after " << ms_between(opened, Clock::now()) << " ms, " << sent << " bytes sent");
    CHECK(took >= options.deadline);
    CHECK(sent < request.size());
    CHECK(answer.empty());
    CHECK(s.renders == 0);
    CHECK(s.http.clients() == 0);
    ::close(fd);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("metrics_http: beyond kMaxClients at once, new clients are reset at accept") {
  Server s;
  std::vector<int> held;
  for (std::size_t i = 0; i < MetricsHttp::kMaxClients; ++i) {
    held.push_back(raw_connect(s.http.port()));
    REQUIRE(held.back() >= 0);
  }
  REQUIRE(pump_until(s.reactor, [&] { return s.http.clients() == MetricsHttp::kMaxClients; }));
  int extra = raw_connect(s.http.port());
  REQUIRE(extra >= 0);
  std::string answer;
  REQUIRE(pump_until(s.reactor, [&] { return drain(extra, answer) != kOpen; }));
  CHECK(s.http.listener_stats().shed_limit == 1);
  CHECK(answer.empty());
  ::close(extra);
  // A freed place serves again.
  ::close(held.back());
  held.pop_back();
  REQUIRE(pump_until(s.reactor, [&] { return s.http.clients() == MetricsHttp::kMaxClients - 1; }));
  CHECK(body_of(ask(s, "GET /metrics HTTP/1.1\r\n\r\n")) == kBody);
  for (int fd : held) ::close(fd);
}

// --- EMFILE, in a forked child ---------------------------------------------------------------

namespace {

constexpr int kChildRoom = 3;  // descriptors the child has left for clients

// A metrics endpoint that has kChildRoom descriptors left once it is set up.
int run_starved_metrics(int in, int out) {
  Reactor reactor;
  MetricsHttpOptions options;
  options.deadline = 30s;  // held clients stay held for the whole test
  MetricsHttp http(reactor, [] { return kBody; }, options);
  auto report = [&] {
    child::Message r;
    r.kind = 'r';
    r.port = http.port();
    r.open = http.clients();
    r.shed_descriptors = http.listener_stats().shed_descriptors;
    r.pauses = http.listener_stats().pauses;
    child::send_message(out, r);
  };
  command_pipe::CommandReader commands(reactor, in, [&](char command) {
    if (command == 'r') report();
  });
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = static_cast<rlim_t>(open_fd_count()) + kChildRoom;  // descriptors are 0..count-1
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return 3;
  report();
  reactor.run();
  return 0;
}

// User + system CPU time `pid` has used, from /proc/PID/stat (clock-tick resolution).
Duration cpu_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t name_end = text.rfind(')');  // the command name may hold spaces
  if (name_end == std::string::npos) return Duration::max();
  std::istringstream fields(text.substr(name_end + 2));
  std::string field;
  for (int i = 3; i < 14; ++i) fields >> field;  // state .. cmajflt: fields 3 to 13
  long long user = 0, system = 0;
  fields >> user >> system;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return std::chrono::duration_cast<Duration>(std::chrono::seconds(user + system)) / ticks;
}

}  // namespace

TEST_CASE("metrics_http: out of descriptors (EMFILE) it sheds new clients without spinning and serves again once some close") {
  const std::size_t fds = open_fd_count();
  {
    child::Child server([](int in, int out) { return run_starved_metrics(in, out); });
    REQUIRE(server.started());
    child::Message start;
    REQUIRE(server.next(start));
    REQUIRE(start.kind == 'r');
    const auto port = static_cast<uint16_t>(start.port);
    auto get = [&] {
      int fd = raw_connect(port);
      std::string answer;
      if (fd >= 0 && write_all(fd, "GET /metrics HTTP/1.1\r\n\r\n")) read_to_end(fd, &answer);
      if (fd >= 0) ::close(fd);
      return answer;
    };
    // Served while descriptors are plentiful (and every code path the child takes under
    // EMFILE has run once: see the UBSan note in test_listener's EMFILE test).
    CHECK(body_of(get()) == kBody);
    child::Message warm;
    REQUIRE(server.report(warm));  // the child's command handler has run once too

    std::vector<int> held;
    for (int i = 0; i < kChildRoom; ++i) {
      held.push_back(raw_connect(port));
      REQUIRE(held.back() >= 0);
    }
    child::Message r;
    auto full = Clock::now() + 5s;
    while (server.report(r) && r.open < kChildRoom && Clock::now() < full) std::this_thread::sleep_for(5ms);
    REQUIRE(r.open == kChildRoom);

    // ~300 ms of new clients arriving at a server with no descriptor left.
    const Duration cpu_before = cpu_time(server.pid());
    const auto wall_before = Clock::now();
    std::vector<int> late;
    for (int i = 0; i < 10; ++i) {
      late.push_back(raw_connect(port));
      REQUIRE(late.back() >= 0);
      std::this_thread::sleep_for(30ms);
    }
    const Duration cpu = cpu_time(server.pid()) - cpu_before;
    const Duration wall = Clock::now() - wall_before;
    REQUIRE(server.report(r));
    INFO("child cpu " << std::chrono::duration_cast<std::chrono::milliseconds>(cpu).count() << " ms over "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count() << " ms; shed "
                      << r.shed_descriptors << ", pauses " << r.pauses);
    CHECK(cpu * 4 < wall);  // a spinning loop takes what the core gives it: most of `wall`
    CHECK(r.shed_descriptors + r.pauses > 0);
    for (int fd : late) {
      int end = read_to_end(fd);
      CHECK((end == kEof || end == ECONNRESET));  // told at once, not left pending
      ::close(fd);
    }

    for (int fd : held) ::close(fd);
    held.clear();
    auto freed = Clock::now() + 5s;
    while (server.report(r) && r.open != 0 && Clock::now() < freed) std::this_thread::sleep_for(5ms);
    CHECK(body_of(get()) == kBody);
    CHECK(server.finish() == 0);
  }
  CHECK(open_fd_count() == fds);
}
