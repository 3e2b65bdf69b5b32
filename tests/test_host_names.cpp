// Host names for connectors: resolve() and the Lookup that runs it off the loop (src/
// resolver.hpp), a connector that resolves a name, one that cannot, and one destroyed or
// stopped while its lookup is in flight.
//
// "localhost is ::1 and 127.0.0.1": many machines list localhost for IPv4 only, so these tests
// run in a child process with a private mount namespace whose /etc/hosts says both and whose
// nsswitch.conf asks that file only (the machine's own files are untouched).  Without the
// privilege for a mount namespace they skip (skip.hpp).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../src/resolver.hpp"
#include "child.hpp"
#include "evwheel/address.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "skip.hpp"
#include "temp_dir.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Waits until no lookup thread is left, then runs the loop a few more times for the answers
// they posted.  False if a lookup is still running after 10 s.
bool settle(Reactor& reactor) {
  auto deadline = Clock::now() + 10s;
  while (Lookup::running() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  for (int i = 0; i < 5; ++i) reactor.run_once(1ms);
  return Lookup::running() == 0;
}

// Lookup helper threads still in the process, by name: a thread's name lasts until it is gone,
// past the end of its work (which is all Lookup::running() can see).
std::size_t lookup_threads() {
  std::size_t count = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::string name;
    std::getline(std::ifstream(task.path() / "comm"), name);
    count += name == Lookup::kThreadName;
  }
  return count;
}

// --- the private /etc/hosts -----------------------------------------------------------------

// In the child: a mount namespace of its own in which /etc/hosts lists localhost as ::1 and
// 127.0.0.1 and nsswitch.conf resolves hosts from that file alone.  "" or why it cannot.
std::string private_hosts(const TempDir& dir) {
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  // Private first, so that nothing mounted here shows through to the rest of the machine.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("mount --make-rprivate /: ") + std::strerror(errno);
  std::ofstream(dir / "hosts") << "::1 localhost\n127.0.0.1 localhost\n";
  std::ofstream(dir / "nsswitch.conf") << "hosts: files\n";
  for (const char* file : {"hosts", "nsswitch.conf"}) {
    std::string target = std::string("/etc/") + file;
    if (::mount((dir / file).c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
      return "mount --bind over " + target + ": " + std::strerror(errno);
  }
  return "";
}

// Runs `scenario` (returning "" or what went wrong) in a child with the private /etc/hosts.
// Returns its result, or "skipped: ..." when the child cannot have one.
template <class Scenario>
std::string with_dual_localhost(Scenario&& scenario) {
  // fork() copies one thread: a lookup thread still running could hold a resolver lock, and
  // ThreadSanitizer refuses new threads in the child of a multi-threaded fork.
  auto deadline = Clock::now() + 10s;
  while (lookup_threads() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  if (lookup_threads() > 0) return "lookup threads of earlier tests are still running: cannot fork cleanly";
  TempDir dir("evwheel-hosts");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "pipe2 failed";
  pid_t pid = child::start([&] {
    ::close(pipe_fds[0]);
    std::string why = private_hosts(dir);
    std::string result = why.empty() ? scenario() : "skipped: no private /etc/hosts (" + why + "; it needs root)";
    [[maybe_unused]] auto written = ::write(pipe_fds[1], result.data(), result.size());
    return 0;
  });
  ::close(pipe_fds[1]);
  std::string result;
  char chunk[4096];
  pollfd ready{pipe_fds[0], POLLIN, 0};
  while (::poll(&ready, 1, 20000) > 0) {
    ssize_t got = ::read(pipe_fds[0], chunk, sizeof chunk);
    if (got <= 0) break;
    result.append(chunk, static_cast<std::size_t>(got));
  }
  ::close(pipe_fds[0]);
  int status = child::wait(pid);
  if (status != 0) result += " (the child ended with status " + std::to_string(status) + ")";
  return result;
}

void check_scenario(const std::string& result) {
  const std::string skipped = "skipped: ";
  if (result.rfind(skipped, 0) == 0) return skip::because(result.substr(skipped.size()));
  CHECK_MESSAGE(result.empty(), result);
}

// What a connector to localhost:PORT did, in the child.
struct Reached {
  std::string failure;  // "" when the run went as far as it could
  bool opened = false;
  int family = AF_UNSPEC;  // of the server's address it reached
  int last_family = AF_UNSPEC;  // of the address tried last (Connector::remote())
  uint64_t attempts = 0;
  std::vector<int> errors;
};

// A server listening on `listen_host` only, the same port held (bound, not listening) on each of
// `held_hosts`, and a connector to localhost:PORT from `source`.
Reached connect_to_localhost(const std::string& listen_host, const std::vector<std::string>& held_hosts,
                             const std::string& source = "") {
  Reached reached;
  Sides sides;
  std::vector<int> held;
  uint16_t port = listen_host.empty() ? 0 : sides.listen(listen_host + ":0").port();
  for (const std::string& host : held_hosts) {
    std::string at = host + ":" + std::to_string(port);
    held.push_back(bound_not_listening(Address::parse(at)));
    if (held.back() < 0) reached.failure = "cannot hold " + at;
    if (port == 0) port = Address::local_of(held.back()).port();
  }
  if (reached.failure.empty()) {
    Connector& connector = sides.connect("localhost:" + std::to_string(port), source);
    if (connector.state() != Connector::State::resolving) reached.failure = "not resolving after start()";
    pump_until(sides.reactor, [&] { return !sides.client.live.empty() || !sides.client.connect_errors.empty(); });
    pump_for(sides.reactor, 20ms);  // nothing more may happen
    reached.opened = !sides.client.live.empty();
    if (reached.opened) reached.family = sides.client.live[0]->peer_address().family();
    reached.last_family = connector.remote().family();
    reached.attempts = connector.attempts();
    reached.errors = sides.client.connect_errors;
  }
  for (int fd : held)
    if (fd >= 0) ::close(fd);
  return reached;
}

// The family of the first address localhost resolves to; AF_UNSPEC unless it is ::1, 127.0.0.1.
int first_family_of_localhost(std::string* failure) {
  std::vector<Address> addresses;
  int error = resolve("localhost", 1, AF_UNSPEC, &addresses);
  std::string seen;
  for (const Address& a : addresses) seen += to_string(a) + " ";
  if (error || addresses.size() != 2 || addresses[0].family() == addresses[1].family()) {
    *failure = "localhost resolved to '" + seen + "' (error " + std::to_string(error) + "), not [::1] and 127.0.0.1";
    return AF_UNSPEC;
  }
  return addresses[0].family();
}

const char* name_of(int family) { return family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : "none"; }

}  // namespace

TEST_CASE("resolve: localhost has 127.0.0.1 with the port asked for, and a family limits what it gives") {
  std::vector<Address> addresses;
  REQUIRE(resolve("localhost", 8080, AF_UNSPEC, &addresses) == 0);
  bool loopback4 = false;
  for (const Address& a : addresses) loopback4 |= to_string(a) == "127.0.0.1:8080";
  CHECK(loopback4);
  addresses.clear();
  REQUIRE(resolve("localhost", 8080, AF_INET, &addresses) == 0);
  REQUIRE_FALSE(addresses.empty());
  for (const Address& a : addresses) CHECK(a.family() == AF_INET);
}

TEST_CASE("resolve: a name under .invalid does not resolve: a negative getaddrinfo code, never an errno") {
  std::vector<Address> addresses;
  int error = resolve("no-such-host.invalid", 80, AF_UNSPEC, &addresses);
  INFO("getaddrinfo said: ", connect_error_string(error));
  CHECK(error < 0);  // EAI_NONAME, or EAI_AGAIN on a machine whose DNS server does not answer
  CHECK(addresses.empty());
  CHECK(std::string(connect_error_string(error)) == ::gai_strerror(error));
}

TEST_CASE("a Lookup answers on its reactor's loop thread, and a cancelled one never does") {
  Reactor reactor;
  int answers = 0, cancelled_answers = 0;
  std::thread::id answered_on;
  auto answered = Lookup::start(reactor, "localhost", 80, AF_INET, [&](int error, std::vector<Address> addresses) {
    ++answers;
    answered_on = std::this_thread::get_id();
    CHECK(error == 0);
    CHECK_FALSE(addresses.empty());
  });
  auto cancelled = Lookup::start(reactor, "localhost", 80, AF_INET, [&](int, std::vector<Address>) { ++cancelled_answers; });
  cancelled->cancel();
  REQUIRE(settle(reactor));
  CHECK(answers == 1);
  CHECK(answered_on == std::this_thread::get_id());
  CHECK(cancelled_answers == 0);
}

TEST_CASE("a connector to localhost:PORT resolves off the loop, then connects") {
  const std::size_t fds = open_fd_count();
  {
    Sides sides;
    const std::string port = std::to_string(sides.listen("127.0.0.1:0").port());
    Connector& connector = sides.connect("localhost:" + port, "127.0.0.1");
    CHECK(connector.state() == Connector::State::resolving);
    CHECK(connector.remote().family() == AF_UNSPEC);  // no address yet
    REQUIRE(sides.opened());
    CHECK(connector.state() == Connector::State::connected);
    CHECK(to_string(connector.remote()) == "127.0.0.1:" + port);
    CHECK(sides.client.connect_errors.empty());
    REQUIRE(settle(sides.reactor));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a connector to a name that does not resolve reports one negative error per pass and tries no address") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder client;
    Endpoint endpoint(reactor, client, options(Side::client, 1s, 3s));
    ConnectorOptions o;
    o.address = "no-such-host.invalid:80";
    o.reconnect = true;
    o.backoff_initial = 10ms;
    o.backoff_max = 20ms;
    Connector connector(endpoint, o);
    connector.start();
    REQUIRE(pump_until(reactor, [&] { return client.connect_errors.size() >= 2; }, 30s));
    for (int error : client.connect_errors) CHECK(error < 0);
    CHECK(connector.last_error() == client.connect_errors.back());
    CHECK(connector.attempts() == client.connect_errors.size());
    CHECK(connector.remote().family() == AF_UNSPEC);  // no connect was ever made
    CHECK(client.opens == 0);
    connector.stop();
    CHECK(connector.state() == Connector::State::stopped);
    REQUIRE(settle(reactor));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("destroying or stopping a connector whose lookup is in flight is safe: the answer is dropped") {
  const std::size_t fds = open_fd_count();
  {
    Sides sides;
    const std::string address = "localhost:" + std::to_string(sides.listen("127.0.0.1:0").port());
    ConnectorOptions o;
    o.address = address;
    std::vector<std::unique_ptr<Connector>> stopped;
    // Some answers are posted before the destructor runs, some after: each way must drop them.
    for (int i = 0; i < 20; ++i) {
      sides.connect(address);
      auto deadline = Clock::now() + 10s;
      while (i % 2 && Lookup::running() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
      sides.connector.reset();
      stopped.push_back(std::make_unique<Connector>(sides.client_ep, o));
      stopped.back()->start();
      stopped.back()->stop();
    }
    REQUIRE(settle(sides.reactor));
    pump_for(sides.reactor, 20ms);
    CHECK(sides.client.opens == 0);
    CHECK(sides.server.opens == 0);
    CHECK(sides.client.connect_errors.empty());
    for (const auto& connector : stopped) CHECK(connector->state() == Connector::State::stopped);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("localhost as ::1 and 127.0.0.1: a server on either one alone is reached, trying the next address") {
  check_scenario(with_dual_localhost([]() -> std::string {
    std::string failure;
    if (first_family_of_localhost(&failure) == AF_UNSPEC) return failure;
    for (int server_family : {AF_INET, AF_INET6}) {
      bool on_v4 = server_family == AF_INET;
      Reached reached = connect_to_localhost(on_v4 ? "127.0.0.1" : "[::1]", {on_v4 ? "[::1]" : "127.0.0.1"});
      std::string which = std::string("server on ") + name_of(server_family) + ": ";
      if (!reached.failure.empty()) return which + reached.failure;
      if (!reached.opened || reached.family != server_family) return which + "not reached, or reached " + name_of(reached.family);
      // One attempt, no on_connect_error: when the server is on the second address, the first was
      // refused and the next one tried within the same attempt.
      if (!reached.errors.empty()) return which + "on_connect_error was called for an address that was not the last";
      if (reached.attempts != 1) return which + std::to_string(reached.attempts) + " attempts, not 1";
    }
    return "";
  }));
}

TEST_CASE("localhost as ::1 and 127.0.0.1 with no server on either: one ECONNREFUSED after both were tried") {
  check_scenario(with_dual_localhost([]() -> std::string {
    std::string failure;
    int first = first_family_of_localhost(&failure);
    if (first == AF_UNSPEC) return failure;
    Reached reached = connect_to_localhost("", {"127.0.0.1", "[::1]"});
    if (!reached.failure.empty()) return reached.failure;
    if (reached.opened) return "connected to nothing?";
    if (reached.errors != std::vector<int>{ECONNREFUSED})
      return std::to_string(reached.errors.size()) + " on_connect_error calls, not one ECONNREFUSED";
    if (reached.attempts != 1) return std::to_string(reached.attempts) + " attempts, not 1";
    if (reached.last_family == first) return "the error came before the second address was tried";
    return "";
  }));
}

TEST_CASE("localhost as ::1 and 127.0.0.1: a source address limits the connector to its own family") {
  check_scenario(with_dual_localhost([]() -> std::string {
    std::string failure;
    if (first_family_of_localhost(&failure) == AF_UNSPEC) return failure;
    // The server is on IPv6 only; from an IPv4 source, ::1 is never tried.
    Reached reached = connect_to_localhost("[::1]", {"127.0.0.1"}, "127.0.0.1");
    if (!reached.failure.empty()) return reached.failure;
    if (reached.opened || reached.errors != std::vector<int>{ECONNREFUSED} || reached.last_family != AF_INET)
      return "from 127.0.0.1: expected 127.0.0.1 refused, got " + std::to_string(reached.errors.size()) +
             " errors, " + name_of(reached.last_family) + " tried last";
    reached = connect_to_localhost("[::1]", {"127.0.0.1"}, "::1");
    if (!reached.failure.empty()) return reached.failure;
    if (!reached.opened || reached.family != AF_INET6 || !reached.errors.empty())
      return std::string("from ::1: expected ::1 reached, got ") + name_of(reached.family);
    return "";
  }));
}
