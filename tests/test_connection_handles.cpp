// Connection handles on loopback: ConnectionId (connection_id.hpp), Endpoint::find/send/
// broadcast/for_each, sending from other threads through the reactor's mailbox, the same
// through a ReactorPool, a typed context, and the connection's own addresses.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "evwheel/connection.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor_pool.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// A server (no pings in the way) and raw clients; clients()[i] is the raw socket of live[i].
struct Server {
  explicit Server(ReactorOptions reactor_options = {}, EndpointOptions endpoint_options = options(Side::server, 10s, 30s))
      : reactor(reactor_options), endpoint(reactor, handler, endpoint_options), listener(endpoint, {}) {}

  // Connects `n` raw clients and runs the loop until the server has them all.
  void connect(std::size_t n) {
    std::size_t want = handler.live.size() + n;
    for (std::size_t i = 0; i < n; ++i) {
      int fd = raw_connect(listener.port());
      REQUIRE(fd >= 0);
      clients.push_back(fd);
    }
    REQUIRE(pump_until(reactor, [&] { return handler.live.size() == want; }));
  }
  ~Server() {
    for (int fd : clients) ::close(fd);
  }

  // The data payloads received so far by raw client `i`.
  std::vector<std::string> received(std::size_t i) {
    drain(clients[i], inbox[i]);
    std::vector<std::string> payloads;
    for (auto& [type, payload] : take_frames(inbox[i]))
      if (type == FrameType::data) payloads.push_back(payload);
    return payloads;
  }

  Reactor reactor;
  Recorder handler;
  Endpoint endpoint;
  Listener listener;
  std::vector<int> clients;
  std::string inbox[64];
};

}  // namespace

TEST_CASE("a connection's id names it from on_open through on_close, and only it") {
  std::vector<ConnectionId> opened, closed;  // before the server: its close hook outlives the test body
  Server server;
  server.handler.open_hook = [&](Connection& c) { opened.push_back(c.id()); };
  server.handler.close_hook = [&](Connection& c, CloseReason) { closed.push_back(c.id()); };
  server.connect(1);
  REQUIRE(opened.size() == 1);
  ConnectionId first = opened[0];
  CHECK(first);
  CHECK(first.fd == server.handler.live[0]->fd());
  CHECK(first.reactor == server.reactor.index());
  CHECK(server.endpoint.find(first) == server.handler.live[0]);

  server.handler.live[0]->close();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0] == first);
  CHECK(server.endpoint.find(first) == nullptr);

  // The next connection reuses the descriptor number, never the id.
  ::close(server.clients[0]);
  server.clients.clear();
  server.connect(1);
  REQUIRE(opened.size() == 2);
  CHECK(opened[1].fd == first.fd);
  CHECK(opened[1] != first);
  CHECK(server.endpoint.find(first) == nullptr);
  CHECK(server.endpoint.find(opened[1]) == server.handler.live[0]);
  CHECK(std::hash<ConnectionId>{}(opened[1]) != std::hash<ConnectionId>{}(first));
}

TEST_CASE("find() refuses an id of another endpoint or reactor, and an empty one") {
  Server server;
  server.connect(1);
  ConnectionId id = server.handler.live[0]->id();
  ConnectionId other_endpoint = id, other_reactor = id;
  ++other_endpoint.endpoint;
  ++other_reactor.reactor;
  CHECK(server.endpoint.find(other_endpoint) == nullptr);
  CHECK(server.endpoint.find(other_reactor) == nullptr);
  CHECK(server.endpoint.find(ConnectionId{}) == nullptr);
  CHECK_FALSE(ConnectionId{});
}

TEST_CASE("send(id) on the loop thread sends at once; to a closed connection it reports no_connection") {
  Server server;
  server.connect(2);
  ConnectionId a = server.handler.live[0]->id(), b = server.handler.live[1]->id();
  CHECK(server.endpoint.send(a, "to a") == SendResult::sent);
  CHECK(server.endpoint.send(b, "to b") == SendResult::sent);
  std::vector<std::string> got_a, got_b;
  REQUIRE(pump_until(server.reactor, [&] {
    for (auto& p : server.received(0)) got_a.push_back(p);
    for (auto& p : server.received(1)) got_b.push_back(p);
    return got_a.size() == 1 && got_b.size() == 1;
  }));
  CHECK(got_a[0] == "to a");
  CHECK(got_b[0] == "to b");
  server.handler.live[0]->close();
  CHECK(server.endpoint.send(a, "late") == SendResult::no_connection);
  CHECK(server.endpoint.stats().mail_dropped == 0);  // nothing was queued to drop
}

TEST_CASE("send(id) from other threads goes through the mailbox and arrives in per-thread order") {
  Server server;
  server.connect(4);
  std::vector<ConnectionId> ids;
  for (Connection* c : server.handler.live) ids.push_back(c->id());
  constexpr int kEach = 200;
  std::atomic<int> queued{0};
  std::vector<std::thread> senders;
  for (std::size_t t = 0; t < ids.size(); ++t)
    senders.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        if (server.endpoint.send(ids[t], std::to_string(i)) == SendResult::queued) ++queued;
    });
  std::vector<std::vector<std::string>> got(ids.size());
  bool done = pump_until(server.reactor, [&] {
    std::size_t total = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      for (auto& p : server.received(i)) got[i].push_back(p);
      total += got[i].size();
    }
    return total == ids.size() * kEach;
  }, 30s);
  for (auto& sender : senders) sender.join();
  REQUIRE(done);
  CHECK(queued == static_cast<int>(ids.size()) * kEach);
  for (auto& payloads : got) {
    REQUIRE(payloads.size() == kEach);
    for (int i = 0; i < kEach; ++i) CHECK(payloads[static_cast<std::size_t>(i)] == std::to_string(i));
  }
}

TEST_CASE("a letter for a connection that closed before delivery is dropped and counted") {
  Server server;
  server.connect(1);
  ConnectionId id = server.handler.live[0]->id();
  SendResult result = SendResult::sent;
  std::thread([&] { result = server.endpoint.send(id, "too late"); }).join();
  CHECK(result == SendResult::queued);
  server.handler.live[0]->close();
  REQUIRE(pump_until(server.reactor, [&] { return server.endpoint.stats().mail_dropped == 1; }));
}

TEST_CASE("a full mailbox refuses at once, counts it, and takes letters again once delivered") {
  ReactorOptions small;
  small.mailbox_bytes = 256;
  Server server(small);
  server.connect(1);
  ConnectionId id = server.handler.live[0]->id();
  std::vector<SendResult> results;
  std::thread([&] {
    for (int i = 0; i < 10; ++i) results.push_back(server.endpoint.send(id, std::string(60, 'x')));
  }).join();
  REQUIRE(results.size() == 10);
  CHECK(results.front() == SendResult::queued);
  CHECK(results.back() == SendResult::mailbox_full);
  auto refused = static_cast<uint64_t>(std::count(results.begin(), results.end(), SendResult::mailbox_full));
  CHECK(refused > 0);
  CHECK(server.reactor.mailbox().refused() == refused);
  std::size_t delivered = 10 - refused;
  std::vector<std::string> got;
  REQUIRE(pump_until(server.reactor, [&] {
    for (auto& p : server.received(0)) got.push_back(p);
    return got.size() == delivered;
  }));
  std::thread([&] { results.push_back(server.endpoint.send(id, "room again")); }).join();
  CHECK(results.back() == SendResult::queued);
}

TEST_CASE("broadcast reaches every open connection and skips one whose output is at its high-water mark") {
  EndpointOptions endpoint_options = options(Side::server, 10s, 30s);
  endpoint_options.high_water = 64 << 10;
  endpoint_options.max_output = 64 << 20;
  Server server({}, endpoint_options);
  server.connect(3);
  // Client 2 stops reading: fill its path until the server queues past high water.
  Connection* slow = server.handler.live[2];
  std::string chunk(16 << 10, 'z');
  for (int i = 0; i < 4096 && slow->queued() < endpoint_options.high_water; ++i) slow->send(chunk);
  REQUIRE(slow->queued() >= endpoint_options.high_water);
  CHECK(server.endpoint.broadcast("news") == SendResult::sent);
  CHECK(server.endpoint.stats().broadcast_skipped == 1);
  std::vector<std::string> got0, got1;
  REQUIRE(pump_until(server.reactor, [&] {
    for (auto& p : server.received(0)) got0.push_back(p);
    for (auto& p : server.received(1)) got1.push_back(p);
    return got0.size() == 1 && got1.size() == 1;
  }));
  CHECK(got0[0] == "news");
  CHECK(got1[0] == "news");
  CHECK(slow->open());  // skipped, not closed

  // From another thread: the same, through the mailbox.
  SendResult result = SendResult::sent;
  std::thread([&] { result = server.endpoint.broadcast("more"); }).join();
  CHECK(result == SendResult::queued);
  REQUIRE(pump_until(server.reactor, [&] {
    for (auto& p : server.received(0)) got0.push_back(p);
    for (auto& p : server.received(1)) got1.push_back(p);
    return got0.size() == 2 && got1.size() == 2;
  }));
  CHECK(got0[1] == "more");
  CHECK(server.endpoint.stats().broadcast_skipped == 2);
}

TEST_CASE("for_each visits every open connection once, and may close them") {
  Server server;
  server.connect(5);
  std::unordered_set<Connection*> seen;
  server.endpoint.for_each([&](Connection& c) { seen.insert(&c); });
  CHECK(seen.size() == 5);
  std::size_t visits = 0;
  server.endpoint.for_each([&](Connection& c) {
    ++visits;
    c.close();
  });
  CHECK(visits == 5);
  CHECK(server.endpoint.size() == 0);
  server.endpoint.for_each([&](Connection&) { FAIL("a closed connection was visited"); });
}

TEST_CASE("a ReactorPool routes send(id) to the connection's reactor and broadcasts to all") {
  struct Service {
    Recorder handler;
    std::unique_ptr<Endpoint> endpoint;
    std::unique_ptr<Listener> listener;
  };
  std::vector<Service*> services(2);  // owned by the pool: destroyed on their own threads
  std::mutex mutex;
  std::vector<std::pair<ConnectionId, int>> opened;  // id, server-side fd
  ReactorPoolOptions pool_options;
  pool_options.reactors = 2;
  ReactorPool pool(pool_options, [&](Reactor& reactor, Shutdown&, std::size_t index) {
    auto service = std::make_shared<Service>();
    service->handler.open_hook = [&](Connection& c) {
      std::lock_guard<std::mutex> lock(mutex);
      opened.emplace_back(c.id(), c.fd());
    };
    service->endpoint = std::make_unique<Endpoint>(reactor, service->handler, options(Side::server, 10s, 30s));
    service->listener = std::make_unique<Listener>(*service->endpoint, ListenerOptions{});
    services[index] = service.get();
    return service;
  });
  // One raw client per reactor's listener.
  int clients[2];
  for (std::size_t i = 0; i < 2; ++i) {
    clients[i] = raw_connect(services[i]->listener->port());
    REQUIRE(clients[i] >= 0);
  }
  auto wait_for = [](auto&& done) {
    auto deadline = Clock::now() + 10s;
    while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return done();
  };
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> lock(mutex);
    return opened.size() == 2;
  }));
  std::vector<uint16_t> reactors;
  for (auto& [id, fd] : opened) reactors.push_back(id.reactor);
  CHECK(std::count(reactors.begin(), reactors.end(), 0) == 1);
  CHECK(std::count(reactors.begin(), reactors.end(), 1) == 1);
  for (auto& [id, fd] : opened) CHECK(pool.send(id, "hello r" + std::to_string(id.reactor)));
  CHECK(pool.broadcast("everyone") == 2);
  ConnectionId bad = opened[0].first;
  bad.reactor = 9;
  CHECK_FALSE(pool.send(bad, "nowhere"));
  for (std::size_t i = 0; i < 2; ++i) {
    std::string in;
    std::vector<std::string> payloads;
    REQUIRE(wait_for([&] {
      drain(clients[i], in);
      for (auto& [type, payload] : take_frames(in))
        if (type == FrameType::data) payloads.push_back(payload);
      return payloads.size() == 2;
    }));
    CHECK(payloads[0] == "hello r" + std::to_string(i));
    CHECK(payloads[1] == "everyone");
    ::close(clients[i]);
  }
  pool.stop();
  pool.join();
}

TEST_CASE("the context is kept as the type it was set as") {
  struct Session {
    int user = 0;
  };
  Session session{42};
  Server server;
  server.handler.open_hook = [&](Connection& c) { c.set_context(&session); };
  server.connect(1);
  Connection& connection = *server.handler.live[0];
  REQUIRE(connection.context<Session>() != nullptr);
  CHECK(connection.context<Session>()->user == 42);
  CHECK(connection.context() == &session);
  connection.set_context(nullptr);
  CHECK(connection.context<Session>() == nullptr);
}

TEST_CASE("a connection knows its local and peer addresses") {
  Server server;
  server.connect(1);
  Connection& connection = *server.handler.live[0];
  CHECK(to_string(connection.local_address()) == "127.0.0.1:" + std::to_string(server.listener.port()));
  CHECK(to_string(connection.peer_address()) == local_address(server.clients[0]));
}
