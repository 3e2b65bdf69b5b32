// shutdown — graceful shutdown of one reactor's service: stop accepting, drain, then report.
//
// start() closes every added Listener (new clients are refused by the kernel from then on) and
// drains every added Endpoint (see Endpoint::drain: queued output is delivered, within the
// deadline, before each connection closes with CloseReason::shutdown).  `done` runs on the
// reactor thread once every endpoint is drained; the usual `done` stops the loop.
//
// Listeners and endpoints are registered once, at setup (the only allocation); start() itself
// allocates nothing per connection.  Everything added must outlive the Shutdown, and the
// Shutdown must outlive the reactor's loop (drains report back to it through posted tasks).
// Like the reactor, a Shutdown belongs to the reactor's thread.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"

namespace evwheel {

class Shutdown {
 public:
  explicit Shutdown(Reactor& reactor) : reactor_(reactor) {}
  Shutdown(const Shutdown&) = delete;
  Shutdown& operator=(const Shutdown&) = delete;

  void add(Listener& listener) { listeners_.push_back(&listener); }
  void add(Endpoint& endpoint) { endpoints_.push_back(&endpoint); }

  // Begins the shutdown; `done` (may be empty) is posted to the reactor when every endpoint has
  // drained — at once if there is none.  Later calls do nothing: a second SIGTERM while
  // draining does not restart the deadline.  Returns whether this call started it; throws
  // std::invalid_argument for a negative deadline (before closing anything).
  bool start(Duration deadline, std::function<void()> done);
  bool started() const noexcept { return started_; }
  bool finished() const noexcept { return started_ && pending_ == 0; }

 private:
  void endpoint_drained();

  Reactor& reactor_;
  std::vector<Listener*> listeners_;
  std::vector<Endpoint*> endpoints_;
  std::function<void()> done_;
  std::size_t pending_ = 0;  // endpoints still draining
  bool started_ = false;
};

}  // namespace evwheel
