// heap_server — the `lazy` and `rearm` baselines (see servers.hpp): one timer per connection in
// the TimerHeap, due at min(next ping, last read + I).  They differ in one line, what a read
// does to the timer: nothing (lazy), or stop and start it again (rearm).
//
// Connections are allocated one by one, as the struct a libev or libuv user keeps per
// connection is; the heap holds pointers to them.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "server_core.hpp"
#include "servers.hpp"
#include "timer_heap.hpp"

namespace bench {
namespace baselines {
namespace {

using evwheel::CloseReason;

struct Peer : HeapTimerHook {
  explicit Peer(int descriptor) : fd(descriptor) {}
  int fd;
  bool ping_outstanding = false;
  Partial partial;
  int64_t last_receive = 0;
  int64_t next_ping = 0;
  int64_t ping_sent = 0;
};

template <bool kRearmOnRead>
class HeapServer {
 public:
  explicit HeapServer(ServerCore& core) : core_(core) {}
  ~HeapServer() {
    for (Peer* peer : by_fd_) {
      if (!peer) continue;
      ::close(peer->fd);
      delete peer;
    }
  }
  HeapServer(const HeapServer&) = delete;
  HeapServer& operator=(const HeapServer&) = delete;

  int64_t next_due() const { return heap_.empty() ? INT64_MAX : heap_.next_due(); }

  void opened(int fd, int64_t now) {
    auto* peer = new Peer(fd);
    peer->last_receive = now;
    // The first ping at a spread point of the interval (a golden-ratio sequence), as evwheel
    // spreads the connections it accepts together.
    const double fraction = std::fmod(static_cast<double>(++accepted_) * 0.6180339887498949, 1.0);
    peer->next_ping = now + static_cast<int64_t>(fraction * static_cast<double>(core_.ping_interval_ns()));
    if (static_cast<std::size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<std::size_t>(fd) + 1, nullptr);
    by_fd_[static_cast<std::size_t>(fd)] = peer;
    heap_.schedule(*peer, due(*peer));
  }

  void readable(int fd, int64_t now) {
    Peer& peer = *by_fd_[static_cast<std::size_t>(fd)];
    const ReadResult read = core_.read(fd, peer.partial);
    if (read.close) return close(peer, read.reason, now);
    if (!read.received) return;
    peer.last_receive = now;
    if (read.pongs > 0) {
      core_.pongs_received(read.pongs);
      if (peer.ping_outstanding) core_.pong_answered(now - peer.ping_sent);
      peer.ping_outstanding = false;
    }
    if (kRearmOnRead) {
      // uv_timer_start on a running timer: out of the heap, and in again at its new due time.
      heap_.cancel(peer);
      heap_.schedule(peer, due(peer));
    }
  }

  void expire(int64_t now) {
    while (!heap_.empty() && heap_.next_due() <= now) {
      Peer& peer = heap_.top();
      if (now - peer.last_receive >= core_.idle_timeout_ns()) {
        close(peer, CloseReason::idle_timeout, now);
        continue;
      }
      if (now >= peer.next_ping && !ping(peer, now)) continue;
      // Reads moved last_receive without touching the timer (lazy): it fired early for the
      // idle deadline, or on time for the ping; either way it goes to the next due time now.
      heap_.schedule(peer, due(peer));
    }
  }

 private:
  int64_t due(const Peer& peer) const {
    return std::min(peer.next_ping, peer.last_receive + core_.idle_timeout_ns());
  }

  bool ping(Peer& peer, int64_t now) {
    if (!core_.send_ping(peer.fd, now, peer.next_ping)) {
      close(peer, CloseReason::error, now);
      return false;
    }
    peer.ping_sent = now;
    peer.ping_outstanding = true;
    peer.next_ping += core_.ping_interval_ns();
    if (peer.next_ping <= now) peer.next_ping = now + core_.ping_interval_ns();
    return true;
  }

  void close(Peer& peer, CloseReason reason, int64_t now) {
    heap_.cancel(peer);
    by_fd_[static_cast<std::size_t>(peer.fd)] = nullptr;
    core_.close(peer.fd, reason, now - peer.last_receive);
    delete &peer;
  }

  ServerCore& core_;
  TimerHeap<Peer> heap_;
  std::vector<Peer*> by_fd_;
  uint64_t accepted_ = 0;
};

}  // namespace

int run_lazy_worker(const conns::Options& options, const conns::Role& role) {
  return run_worker<HeapServer<false>>("lazy", options, role);
}

int run_rearm_worker(const conns::Options& options, const conns::Role& role) {
  return run_worker<HeapServer<true>>("rearm", options, role);
}

}  // namespace baselines
}  // namespace bench
