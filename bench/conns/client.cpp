// conns — a client process: its share of the connections, opened from its own source address
// with evwheel Connectors, answering every ping and counting the data messages it receives
// (`send`), until told to mute some of them (they stay open and stop reading, so they stop
// answering) and finally to close everything.
#include <memory>
#include <vector>

#include "protocol.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"

namespace bench {
namespace conns {
namespace {

// Connects in flight at once: enough to ramp at tens of thousands per second, few enough that
// a burst never overflows the server's accept queue.
constexpr uint64_t kMaxInFlight = 256;

// Marks a muted connection (Connection::context) so its close is counted as a detection.
char muted_marker;

class ClientHandler final : public evwheel::ConnectionHandler {
 public:
  explicit ClientHandler(ClientSlot& slot) : slot_(slot) {}

  void on_open(evwheel::Connection& connection) override {
    connection.set_context(nullptr);
    slot_.established.fetch_add(1, std::memory_order_relaxed);
  }
  // Only this process writes its slot: a plain add, published for the coordinator to read.
  void on_message(evwheel::Connection&, std::string_view message) override {
    slot_.messages.store(slot_.messages.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    slot_.message_bytes.store(slot_.message_bytes.load(std::memory_order_relaxed) + message.size(),
                              std::memory_order_relaxed);
  }
  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int) override {
    if (connection.context() == &muted_marker) {
      slot_.muted_closed.fetch_add(1, std::memory_order_relaxed);
    } else if (!tearing_down) {
      slot_.false_closes.fetch_add(1, std::memory_order_relaxed);
      slot_.false_by_reason[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
    }
  }
  void on_connect_error(evwheel::Connector&, int) override {
    slot_.failed.fetch_add(1, std::memory_order_relaxed);
  }

  bool tearing_down = false;

 private:
  ClientSlot& slot_;
};

// The client answers pings and never judges the server: a bench that closed the server's
// connections from the client side would hide the server's own behaviour.
evwheel::EndpointOptions endpoint_options(const Options& options) {
  evwheel::EndpointOptions endpoint;
  endpoint.side = evwheel::Side::client;
  endpoint.codec = make_codec(options.codec, endpoint.side);
  endpoint.heartbeat.mode = evwheel::PingMode::server;
  endpoint.heartbeat.ping_interval = std::chrono::hours(1);
  endpoint.heartbeat.idle_timeout = std::chrono::hours(2);
  return endpoint;
}

class Client {
 public:
  Client(const Options& options, const Role& role)
      : role_(role),
        slot_(role.shared->clients[role.index]),
        handler_(slot_),
        endpoint_(reactor_, handler_, endpoint_options(options)) {
    evwheel::ConnectorOptions connect;
    connect.address = "127.0.0.1:" + std::to_string(role.port);
    connect.connect_timeout = std::chrono::seconds(10);
    connectors_.reserve(slot_.target);
    for (uint64_t i = 0; i < slot_.target; ++i) {
      const int source = role.first_source + static_cast<int>(i % static_cast<uint64_t>(slot_.sources));
      connect.source = client_source(role.index + role.workers * source);
      connectors_.push_back(std::make_unique<evwheel::Connector>(endpoint_, connect));
    }
    mute_count_ = static_cast<uint64_t>(options.mute_fraction * static_cast<double>(slot_.target));
  }

  void run() {
    slot_.ready.store(1, std::memory_order_release);
    reactor_.run_every(kPollInterval, [this] {
      record_lag();
      follower_.poll(*role_.shared, slot_.ack, [this](int phase) { enter(phase); });
      if (follower_.seen >= kRamp) top_up();
    });
    reactor_.run();
  }

 private:
  void enter(int phase) {
    if (phase == kMute) mute();
    if (phase == kTeardown) {
      handler_.tearing_down = true;
      endpoint_.close_all();
      reactor_.stop();
    }
  }

  // A client that cannot answer in time makes the server close live connections: the report
  // must be able to blame the client then, so it records how late its own loop ran.
  void record_lag() {
    evwheel::TimePoint now = reactor_.now();
    if (last_poll_ != evwheel::TimePoint{}) {
      int64_t lag = (now - last_poll_ - kPollInterval).count();
      if (lag > slot_.max_lag_ns.load(std::memory_order_relaxed)) slot_.max_lag_ns.store(lag, std::memory_order_relaxed);
    }
    last_poll_ = now;
  }

  void top_up() {
    uint64_t done = slot_.established.load(std::memory_order_relaxed) +
                    slot_.failed.load(std::memory_order_relaxed);
    while (started_ < connectors_.size() && started_ - done < kMaxInFlight)
      connectors_[started_++]->start();
  }

  void mute() {
    uint64_t muted = 0;
    for (uint64_t i = 0; i < connectors_.size() && muted < mute_count_; ++i) {
      evwheel::Connection* connection = connectors_[i]->connection();
      if (connection == nullptr || !connection->open()) continue;
      connection->set_context(&muted_marker);
      connection->pause_reading();
      ++muted;
    }
    slot_.muted.store(muted, std::memory_order_release);
  }

  const Role& role_;
  ClientSlot& slot_;
  ClientHandler handler_;
  evwheel::Reactor reactor_;
  evwheel::Endpoint endpoint_;
  std::vector<std::unique_ptr<evwheel::Connector>> connectors_;
  PhaseFollower follower_;
  uint64_t started_ = 0;
  uint64_t mute_count_ = 0;
  evwheel::TimePoint last_poll_{};
};

}  // namespace

int run_client(const Options& options, const Role& role) {
  ClientSlot& slot = role.shared->clients[role.index];
  try {
    Client client(options, role);
    client.run();
    return 0;
  } catch (const std::exception& e) {
    return failed(slot, std::string("client: ") + e.what());
  }
}

}  // namespace conns
}  // namespace bench
