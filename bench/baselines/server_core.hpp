// server_core — what the baseline heartbeat servers of `conns` share, so that they differ only
// in how they time their connections: the SO_REUSEPORT listening socket and its steering,
// accepting, reading and decoding a peer's pongs with the codec the evwheel server uses,
// sending a ping, closing (a reset for idle and protocol closes, as evwheel does), the
// statistics the coordinator reads, and the 20 ms look at the phase.  No timer structure is
// here: that is what each baseline is about (see servers.hpp).
//
// Invariant, the one that makes the comparison fair: one `send` per ping and one `recv` per
// readiness event (level-triggered, so a pong is one epoll event and one recv) — the system
// calls per heartbeat are evwheel's; what differs is the work in user space.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "../conns/protocol.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"

namespace bench {
namespace baselines {

int64_t now_ns();  // CLOCK_MONOTONIC, the clock every baseline keeps its times on

// The bytes of an incomplete frame kept between reads (a pong is 4 or 13 bytes).
struct Partial {
  uint8_t size = 0;
  char bytes[23] = {};
};

struct ReadResult {
  bool received = false;  // bytes arrived: the peer is alive
  bool close = false;     // the connection must be closed, for `reason`
  evwheel::CloseReason reason = evwheel::CloseReason::peer_closed;
  uint32_t pongs = 0;
};

class ServerCore {
 public:
  // Listens on the run's port (joining its SO_REUSEPORT group; worker 0 attaches the steering
  // program).  Throws std::system_error or std::runtime_error when it cannot.
  ServerCore(const conns::Options& options, const conns::Role& role);
  ~ServerCore();
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  int listen_fd() const noexcept { return listen_; }
  int64_t ping_interval_ns() const noexcept { return ping_interval_ns_; }
  int64_t idle_timeout_ns() const noexcept { return idle_timeout_ns_; }
  int64_t tick_ns() const noexcept { return tick_ns_; }

  // Takes one pending connection (nonblocking, TCP_NODELAY, watched for input with its fd as
  // the event's data); -1 when none is pending.
  int accept_one();
  // Registers another descriptor of the server's own (a timerfd) for input.
  void watch(int fd);
  // One recv of `fd`'s input behind `partial`, every whole frame decoded.
  ReadResult read(int fd, Partial& partial);
  // One send of a ping stamped `now`; counts it and its lateness past `due`.  False when the
  // socket refused it: the caller closes the connection.
  bool send_ping(int fd, int64_t now, int64_t due);
  void pong_answered(int64_t rtt_ns) { rtt_.record(evwheel::Duration(rtt_ns)); }
  void pongs_received(uint32_t count) { pongs_ += count; }
  // Closes `fd` for `reason` (a reset for idle_timeout and protocol_error); for an idle close
  // `silence_ns` is how long the peer had been silent.
  void close(int fd, evwheel::CloseReason reason, int64_t silence_ns = 0);

  // epoll_wait until an event, `wake_at` (a time of now_ns(); INT64_MAX: none) or the next
  // look at the phase, whichever comes first; the events' count.
  int wait(epoll_event* events, int capacity, int64_t wake_at);
  // Every 20 ms: publishes a sample for each new phase; true once teardown began.
  bool poll_phase(int64_t now);
  // Tells the coordinator the server listens (after a first sample).
  void ready();

 private:
  void publish(conns::Sample& sample) const;

  const conns::Role& role_;
  conns::WorkerSlot& slot_;
  const int64_t ping_interval_ns_, idle_timeout_ns_, tick_ns_;
  std::shared_ptr<const evwheel::Codec> codec_;  // framed or seed (conns refuses websocket here)
  char ping_frame_[evwheel::Codec::kMaxHeader + 8] = {};
  std::size_t ping_header_ = 0, ping_size_ = 0;
  std::unique_ptr<char[]> scratch_;
  int epoll_ = -1;
  int listen_ = -1;
  conns::PhaseFollower follower_;
  int64_t next_poll_ = 0;
  bool stopping_ = false;
  uint64_t open_ = 0, accepted_ = 0, pings_ = 0, pongs_ = 0;
  uint64_t closes_[8] = {};  // by evwheel::CloseReason
  evwheel::Histogram rtt_, lateness_, detection_;
};

// Runs `server` until teardown.  A Server has opened(fd, now), readable(fd, now) for every
// other descriptor that has input, expire(now) after each batch of events, and next_due(): the
// time it wants to wake at (INT64_MAX: none).
template <class Server>
void serve(ServerCore& core, Server& server) {
  constexpr int kEvents = 1024;    // what the Reactor takes per epoll_wait by default
  constexpr int kAcceptBatch = 64;  // accepts per listener event, as the Listener bounds them
  epoll_event events[kEvents];
  core.ready();
  for (;;) {
    const int n = core.wait(events, kEvents, server.next_due());
    const int64_t now = now_ns();
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd != core.listen_fd()) {
        server.readable(fd, now);
        continue;
      }
      for (int k = 0; k < kAcceptBatch; ++k) {
        const int accepted = core.accept_one();
        if (accepted < 0) break;
        server.opened(accepted, now);
      }
    }
    server.expire(now);
    if (core.poll_phase(now)) return;
  }
}

// A worker process's body for the baseline `Server` (constructed from the core and options):
// its exit status; a failure to start is reported in the worker's slot.
template <class Server>
int run_worker(const char* name, const conns::Options& options, const conns::Role& role) {
  try {
    ServerCore core(options, role);
    Server server(core);
    serve(core, server);
    return 0;
  } catch (const std::exception& e) {
    return conns::failed(role.shared->workers[role.index], std::string(name) + " server worker: " + e.what());
  }
}

}  // namespace baselines
}  // namespace bench
