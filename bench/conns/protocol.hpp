// conns — the end-to-end heartbeat bench: what the coordinator (run.cpp), the server workers
// (wheel_server.cpp; the baselines in ../baselines/) and the client processes (client.cpp)
// share.
//
// Every process is forked from the coordinator and talks to it only through one anonymous
// shared mapping (Shared below): the coordinator moves `phase` forward, each child polls it
// from its own loop, does what the phase asks, publishes a Sample and acknowledges.  Nothing
// crosses a pipe or a socket, so the bench adds no traffic of its own to the loads it measures.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "evwheel/codec.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/histogram.hpp"
#include "evwheel/timer_wheel.hpp"

namespace bench {
namespace conns {

// The server a run measures: evwheel, or one of the baselines (see ../baselines/servers.hpp).
enum class Timers : uint8_t { wheel, lazy, sweep, rearm };
constexpr int kTimersKinds = 4;
const char* to_string(Timers timers);

// What a run's connections speak.  The baselines speak framed and seed only; websocket
// connections open with the handshake during the ramp and ping with ping frames.
enum class Codec : uint8_t { framed, seed, websocket };
constexpr int kCodecs = 3;
const char* to_string(Codec codec);
// The codec of one side of a run: the server's, or the clients' (a WebSocket client's
// handshakes and masks).
std::shared_ptr<const evwheel::Codec> make_codec(Codec codec, evwheel::Side side);

struct Options {
  uint64_t conns = 10000;
  int64_t ping_ms = 1000;
  int64_t idle_ms = 3000;
  int64_t tick_ms = 0;            // 0: the heartbeat's automatic tick
  double duration_s = 10;         // steady state
  double mute_fraction = 0.1;
  Codec codec = Codec::framed;    // this run's (an invocation may run several, one after another)
  int server_cpu = 0;
  int client_cpu = 1;
  int reactors = 1;               // per server worker: a ReactorPool of this many threads
  uint16_t port = 0;              // 0: a free one
  double floor_seconds = 2;       // the kernel floor measured first; 0 skips it
  std::string json;
  std::string svg;
};

// The phases, in order.  A child's Sample i is taken when it sees phase i begin.
enum Phase : int { kSetup, kRamp, kSteady, kMute, kJudge, kTeardown, kPhases };

// What a server worker publishes at the start of each phase.
struct Sample {
  bool valid = false;
  uint64_t open = 0;
  uint64_t accepted = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t idle_closes = 0;
  uint64_t other_closes = 0;     // every close that is not an idle timeout
  uint64_t closes_by_reason[8] = {};  // by evwheel::CloseReason
  long rss_kib = 0;              // RssAnon: heap and stacks, not the shared mapping or code
  evwheel::Histogram rtt;
  evwheel::Histogram lateness;   // ping sent - ping due
  evwheel::Histogram detection;  // idle close - last byte received
};

constexpr int kErrorSize = 200;

struct alignas(64) WorkerSlot {
  pid_t pid = 0;
  std::atomic<int> ready{0};     // 1 listening, -1 failed (see error)
  std::atomic<int> ack{-1};      // the last phase handled
  std::atomic<uint64_t> open{0};
  char error[kErrorSize] = {};
  Sample at[kPhases];
};

struct alignas(64) ClientSlot {
  pid_t pid = 0;
  std::atomic<int> ready{0};
  std::atomic<int> ack{-1};
  uint64_t target = 0;           // connections this process opens
  int sources = 1;               // source addresses it spreads them over
  std::atomic<int64_t> max_lag_ns{0};    // the worst delay of its own 20 ms poll: a stalled client
  std::atomic<uint64_t> established{0};
  std::atomic<uint64_t> failed{0};       // connect attempts that failed
  std::atomic<uint64_t> false_closes{0}; // answering connections closed before teardown
  std::atomic<uint64_t> false_by_reason[8] = {};  // by evwheel::CloseReason, as the client saw it
  std::atomic<uint64_t> muted{0};
  std::atomic<uint64_t> muted_closed{0};
  std::atomic<uint64_t> messages{0};       // data messages received (`send` sends them)
  std::atomic<uint64_t> message_bytes{0};
  char error[kErrorSize] = {};
};

constexpr int kMaxProcesses = 128;  // per side: 128 * ~19.9k descriptors is 2.5M connections

struct Shared {
  std::atomic<int> phase{kSetup};
  WorkerSlot workers[kMaxProcesses];
  ClientSlot clients[kMaxProcesses];
};

// What each forked process needs to know besides Options.
struct Role {
  Shared* shared;
  int index;          // worker or client number
  int workers;        // how many server workers share the port
  uint16_t port;
  int first_source;   // a client's source addresses are its numbers first_source, first_source + 1, ...
};

// Children's bodies; each returns the process's exit status.
int run_wheel_worker(const Options& options, const Role& role);
int run_client(const Options& options, const Role& role);

// The heartbeat tick every server uses: --tick-ms, or the heartbeat's automatic one (the
// library's own rule, HeartbeatPolicy::effective_tick).
evwheel::Duration tick(const Options& options);

// Polls `shared.phase` from a child's loop and calls `on_phase` once per phase, in order.
// Shared by the three kinds of child so they follow the protocol identically.
struct PhaseFollower {
  int seen = kSetup;
  template <class Handler>
  void poll(const Shared& shared, std::atomic<int>& ack, Handler&& on_phase) {
    int now = shared.phase.load(std::memory_order_acquire);
    while (seen < now) {
      ++seen;
      on_phase(seen);
      ack.store(seen, std::memory_order_release);
    }
  }
};

// How often children look at the phase.
constexpr evwheel::Duration kPollInterval = std::chrono::milliseconds(20);

// "127.0.0.(2+a)" counted through the whole 127/8 network: source address number a.  Client k
// of W uses addresses k + W * s for its source numbers s: their low 24 bits minus 2, mod W,
// are k, which is what the server-side steering program reads.
std::string client_source(int a);

// Makes the SO_REUSEPORT group of listening socket `fd` hand client k's connections to the
// group's (k mod workers)-th member (members count in the order they started listening), so a
// client process talks to one server worker.  False with *error set when the kernel refuses.
bool attach_steering(int fd, int workers, std::string* error);

// Copies `message` into a slot's error field (truncated, always terminated).
void set_error(char (&field)[kErrorSize], const std::string& message);

// A child that could not start or run: its reason where the coordinator reads it, and the
// exit status (1) for the child to return.
template <class Slot>
int failed(Slot& slot, const std::string& message) {
  set_error(slot.error, message);
  slot.ready.store(-1, std::memory_order_release);
  return 1;
}

}  // namespace conns
}  // namespace bench
