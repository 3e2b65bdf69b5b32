// resolver — host names to addresses without blocking a loop: getaddrinfo runs on a short-lived
// helper thread of its own, and the answer comes back to the loop through Reactor::post.
// Internal (used by Connector).
//
// Why a thread per lookup rather than a pool: a lookup happens once per connection attempt, so
// they are rare; a thread per lookup shares no state between lookups, so a slow DNS server
// delays only the connector waiting on it, and nothing survives into a fork()ed child half-made
// (a pool's parked threads would not exist there, though its queue would say they do).
//
// Lifetime invariant: the helper thread touches the reactor only while holding the lookup's
// mutex and only if the lookup is not cancelled.  cancel() takes that mutex, so once it returns
// the helper will not post; a task it posted before finds the lookup cancelled and does nothing.
// The requester therefore calls cancel() before it goes away (on its loop thread), and
// everything the helper uses is owned by the Lookup, which lives as long as its last holder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

// Blocking: the TCP addresses of host:port in getaddrinfo's order (RFC 6724: on most systems
// IPv6 before IPv4), each once, only of `family` unless it is AF_UNSPEC.  Returns 0, or the failure: a
// negative EAI_* code (EAI_NONAME for a name that does not exist), or a positive errno for
// EAI_SYSTEM.  A lookup that finds nothing of `family` is EAI_NONAME too.
int resolve(const std::string& host, uint16_t port, int family, std::vector<Address>* addresses);

class Lookup {
 public:
  // `error` as resolve() returns it; `addresses` empty unless error is 0.
  using Done = std::function<void(int error, std::vector<Address> addresses)>;

  // Starts resolve(host, port, family) on a helper thread; `done` runs on `reactor`'s loop
  // thread when it is answered, unless cancel() came first.  Throws std::system_error if the
  // thread cannot be started (EAGAIN: too many threads).
  static std::shared_ptr<Lookup> start(Reactor& reactor, std::string host, uint16_t port, int family, Done done);

  // From the loop thread: `done` will not run.  Idempotent.
  void cancel() noexcept;

  // Helper threads not yet finished, in the whole process (tests wait for 0 to know that every
  // answer has been posted).
  static int running() noexcept { return running_.load(); }
  // What a helper thread is called (ps -L, top -H, /proc/PID/task/*/comm, a debugger).
  static constexpr const char* kThreadName = "evwheel-lookup";

  Lookup(Reactor& reactor, Done done) : reactor_(&reactor), done_(std::move(done)) {}

 private:
  bool cancelled() noexcept;

  std::mutex mutex_;
  Reactor* reactor_;  // null once cancelled; guarded by mutex_
  Done done_;
  static std::atomic<int> running_;
};

}  // namespace evwheel
