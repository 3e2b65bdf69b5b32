// shutdown — see include/evwheel/shutdown.hpp.
#include "evwheel/shutdown.hpp"

#include <stdexcept>

namespace evwheel {

bool Shutdown::start(Duration deadline, std::function<void()> done) {
  if (started_) return false;
  // Checked before anything is closed, so a bad call leaves no half-started shutdown.
  if (deadline < Duration::zero()) throw std::invalid_argument("evwheel: shutdown deadline must not be negative");
  started_ = true;
  done_ = std::move(done);
  for (Listener* listener : listeners_) listener->close();
  pending_ = endpoints_.size();
  if (pending_ == 0) {
    if (done_) reactor_.post(std::move(done_));
    return true;
  }
  // Endpoint::drain posts its callback, so endpoint_drained() never runs inside this loop.
  for (Endpoint* endpoint : endpoints_) endpoint->drain(deadline, [this] { endpoint_drained(); });
  return true;
}

void Shutdown::endpoint_drained() {
  if (--pending_ == 0 && done_) done_();
}

}  // namespace evwheel
