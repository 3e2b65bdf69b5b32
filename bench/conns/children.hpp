// conns — the coordinator's side of the processes of one run (see protocol.hpp): the shared
// mapping they follow, forking them (each pinned to its core, the port's reservation closed),
// waiting until they are ready, moving the phase forward, the ramp, summing what the clients
// count, and making sure every one has exited at the end.  `conns` drives its server workers
// and clients through it; `send` only clients (its server is a thread of the coordinator).
//
// Invariant: every child forked is waited for — by teardown(), or by the destructor, which
// kills what is left — so no run leaves a process behind.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>

#include "../common/system.hpp"
#include "plan.hpp"
#include "protocol.hpp"

namespace bench {
namespace conns {

class Children {
 public:
  // `workers`: the server worker processes of the run (0 when the server is not a child);
  // `number`: the run's number in its invocation (its clients' source addresses).
  Children(const Options& options, const Plan& plan, int workers, int number, uint16_t port, int reserve_fd);
  ~Children();
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;

  // False (error() says why) when the shared mapping could not be made: nothing may start.
  bool mapped() const { return shared_ != nullptr; }
  Shared& shared() { return *shared_; }
  const Shared& shared() const { return *shared_; }
  Role role(int index) const;
  int workers() const { return workers_; }
  int clients() const { return plan_.clients; }

  // Forks worker w running `body` (its exit status) on `cpu`, and waits until it is ready.
  bool start_worker(int w, int cpu, const std::function<int()>& body);
  // Forks every client process on the client CPU, and waits until all are ready.
  bool start_clients();

  // Moves every child to `phase` and waits until all have taken their sample.
  bool advance(int phase);
  // True (error() says which) when a child has exited before teardown.
  bool any_child_died();

  // Moves the clients to kRamp and waits until they have established (or failed) every
  // connection — a progress line on stderr names `label` — and then until `server_open`
  // reports as many as the clients established (10 s at most).  *seconds: how long it took.
  bool ramp(const std::string& label, const std::function<uint64_t()>& server_open, double* seconds);

  // Sleeps about `seconds` in short steps, calling on_wait (if set) at each.
  void pause(double seconds);
  std::function<void()> on_wait;

  uint64_t sum_clients(std::atomic<uint64_t> ClientSlot::*field) const;
  // One side's CPU times, summed over its processes.
  sys::CpuTimes cpu(bool servers) const;
  int64_t max_client_lag_ns() const;

  // Moves everyone to kTeardown and waits for each to exit (20 s at most, then kills it);
  // returns how many had to be killed.
  int teardown();

  const std::string& error() const { return error_; }

 private:
  pid_t spawn(int cpu, const std::function<int()>& body);
  bool wait_ready(std::atomic<int>& ready, const char* error, pid_t pid);

  const Options& options_;
  const Plan& plan_;
  int workers_;
  int number_;
  uint16_t port_;
  int reserve_fd_;
  Shared* shared_ = nullptr;
  bool torn_down_ = false;
  std::string error_;
};

}  // namespace conns
}  // namespace bench
