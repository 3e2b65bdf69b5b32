// send — the server the `send` mode measures: a Reactor, an Endpoint (framed, with the run's
// heartbeat) and an SO_REUSEPORT Listener on a loop thread of their own, exactly as a push
// service embeds them, plus what the bench asks of that loop from outside: snapshots of its
// counters and of the loop thread's CPU time, the ids of its open connections, and a
// repeating broadcast.
//
// Invariant: everything of the reactor's is touched on the loop thread only — the
// coordinator reaches it through post() and waits for the answer; the one exception is
// Endpoint::send(), which is thread-safe by contract and is what the mode measures.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../common/system.hpp"
#include "../conns/protocol.hpp"
#include "evwheel/connection_id.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/histogram.hpp"

namespace bench {
namespace send {

// The loop's counters at one moment, read on the loop thread.
struct Snapshot {
  int64_t at_ns = 0;              // monotonic
  sys::CpuTimes loop;             // the loop thread's CPU time so far
  uint64_t open = 0;
  uint64_t pings_sent = 0, pongs_received = 0;
  evwheel::Histogram rtt, lateness;
  uint64_t mail_dropped = 0;      // letters for a connection that had closed
  uint64_t mailbox_refused = 0;   // puts the reactor's mailbox refused (full)
  uint64_t broadcasts = 0;        // broadcast() calls made by the timer
  uint64_t broadcast_targets = 0; // open connections at each of them, summed
  uint64_t broadcast_skipped = 0; // copies not queued: the connection was above high_water
  int64_t broadcast_cpu_ns = 0;   // loop CPU time spent inside those broadcast() calls
};

class Server {
 public:
  // Starts the loop thread (pinned to `cpu`; -1: not pinned) listening on 127.0.0.1:`port`.
  Server(const conns::Options& options, uint16_t port, int cpu);
  // Stops the loop (its endpoint closes what is left) and joins the thread.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "" once listening; otherwise why the server could not start.
  const std::string& error() const { return error_; }

  // Open connections, as the loop published them (every 20 ms).
  uint64_t open() const { return open_.load(std::memory_order_relaxed); }
  Snapshot snapshot();
  std::vector<evwheel::ConnectionId> ids();

  // Any thread: what a producer calls (Endpoint::send is thread-safe).
  evwheel::SendResult send(const evwheel::ConnectionId& id, std::string_view message);

  // A reactor timer broadcasts `message` every `interval` until stop_broadcasts().
  void start_broadcasts(std::chrono::milliseconds interval, std::string message);
  void stop_broadcasts();

 private:
  struct Loop;  // what lives on the loop thread
  // Runs `task` on the loop thread and waits for it.
  template <class Task>
  auto on_loop(Task task) -> decltype(task());
  void run(const conns::Options& options, uint16_t port, int cpu);

  std::promise<std::string> started_;  // "" once listening, or why not
  std::unique_ptr<Loop> loop_;
  std::atomic<uint64_t> open_{0};
  std::string error_;
  std::thread thread_;
};

}  // namespace send
}  // namespace bench
