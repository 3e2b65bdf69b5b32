// sweep_server — the `sweep` baseline (see servers.hpp): no timer per connection.  Connections
// live in dense arrays indexed by slot (a closed slot takes the last one's place), and one
// periodic timerfd tick does everything: it pings the next slice of slots — as many as keep
// each connection pinged once per P — and scans every last-read time for a silence of I.
// A read only stores the time.  The tick is the evwheel server's (--tick-ms, or P/16 within
// 1 ms..1 s), so detection is as prompt (I + a tick at most) and pings leave in batches alike.
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <system_error>
#include <vector>

#include "server_core.hpp"
#include "servers.hpp"

namespace bench {
namespace baselines {
namespace {

using evwheel::CloseReason;

class SweepServer {
 public:
  explicit SweepServer(ServerCore& core) : core_(core), last_tick_(now_ns()) {
    timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_ < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    const timespec tick{static_cast<time_t>(core.tick_ns() / 1'000'000'000), static_cast<long>(core.tick_ns() % 1'000'000'000)};
    const itimerspec every_tick{tick, tick};
    if (timerfd_settime(timer_, 0, &every_tick, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "timerfd_settime");
    core.watch(timer_);
  }
  ~SweepServer() {
    for (int fd : fd_) ::close(fd);
    ::close(timer_);
  }
  SweepServer(const SweepServer&) = delete;
  SweepServer& operator=(const SweepServer&) = delete;

  int64_t next_due() const { return INT64_MAX; }  // the timerfd wakes the loop
  void expire(int64_t) {}

  void opened(int fd, int64_t now) {
    if (static_cast<std::size_t>(fd) >= slot_of_fd_.size()) slot_of_fd_.resize(static_cast<std::size_t>(fd) + 1);
    slot_of_fd_[static_cast<std::size_t>(fd)] = static_cast<uint32_t>(fd_.size());
    fd_.push_back(fd);
    last_receive_.push_back(now);
    last_ping_.push_back(0);
    outstanding_.push_back(0);
    partial_.emplace_back();
  }

  void readable(int fd, int64_t now) {
    if (fd == timer_) return tick(now);
    const uint32_t slot = slot_of_fd_[static_cast<std::size_t>(fd)];
    const ReadResult read = core_.read(fd, partial_[slot]);
    if (read.close) return close(slot, read.reason, now);
    if (!read.received) return;
    last_receive_[slot] = now;
    if (read.pongs > 0) {
      core_.pongs_received(read.pongs);
      if (outstanding_[slot]) core_.pong_answered(now - last_ping_[slot]);
      outstanding_[slot] = 0;
    }
  }

 private:
  void tick(int64_t now) {
    uint64_t expirations = 0;
    [[maybe_unused]] auto n = ::read(timer_, &expirations, sizeof expirations);
    // This tick's share of the pings: N connections every P, the fraction carried over, and
    // never more than one round at once (a late tick does not ping anyone twice).
    const auto count = static_cast<double>(fd_.size());
    credit_ = std::min(count, credit_ + count * static_cast<double>(now - last_tick_) /
                                            static_cast<double>(core_.ping_interval_ns()));
    last_tick_ = now;
    for (; credit_ >= 1 && !fd_.empty(); credit_ -= 1) {
      if (cursor_ >= fd_.size()) cursor_ = 0;
      if (ping(static_cast<uint32_t>(cursor_), now)) ++cursor_;
    }
    const int64_t idle = core_.idle_timeout_ns();
    for (std::size_t slot = 0; slot < fd_.size();) {
      if (now - last_receive_[slot] >= idle)
        close(static_cast<uint32_t>(slot), CloseReason::idle_timeout, now);  // the last slot moved here
      else
        ++slot;
    }
  }

  bool ping(uint32_t slot, int64_t now) {
    const int64_t due = last_ping_[slot] ? last_ping_[slot] + core_.ping_interval_ns() : now;
    if (!core_.send_ping(fd_[slot], now, due)) {
      close(slot, CloseReason::error, now);
      return false;
    }
    last_ping_[slot] = now;
    outstanding_[slot] = 1;
    return true;
  }

  // Closes the connection in `slot` and moves the last slot into its place.
  void close(uint32_t slot, CloseReason reason, int64_t now) {
    core_.close(fd_[slot], reason, now - last_receive_[slot]);
    const std::size_t last = fd_.size() - 1;
    fd_[slot] = fd_[last];
    last_receive_[slot] = last_receive_[last];
    last_ping_[slot] = last_ping_[last];
    outstanding_[slot] = outstanding_[last];
    partial_[slot] = partial_[last];
    slot_of_fd_[static_cast<std::size_t>(fd_[slot])] = slot;
    fd_.pop_back();
    last_receive_.pop_back();
    last_ping_.pop_back();
    outstanding_.pop_back();
    partial_.pop_back();
  }

  ServerCore& core_;
  int timer_ = -1;
  int64_t last_tick_;
  double credit_ = 0;       // pings owed, carried from tick to tick
  std::size_t cursor_ = 0;  // the next slot to ping
  // One entry per connection, by slot.
  std::vector<int> fd_;
  std::vector<int64_t> last_receive_;
  std::vector<int64_t> last_ping_;    // 0: never pinged
  std::vector<uint8_t> outstanding_;  // a ping awaits its pong (for the RTT)
  std::vector<Partial> partial_;
  std::vector<uint32_t> slot_of_fd_;
};

}  // namespace

int run_sweep_worker(const conns::Options& options, const conns::Role& role) {
  return run_worker<SweepServer>("sweep", options, role);
}

}  // namespace baselines
}  // namespace bench
