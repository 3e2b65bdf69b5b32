// engine — see include/evwheel/engine.hpp.  The engine's heartbeat wheel is attached to the
// reactor for the engine's whole life, so the one timerfd also wakes the loop for it.
#include "evwheel/engine.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace evwheel::detail {

Engine::Engine(Reactor& reactor_, ConnectionHandler& handler_, Owner& owner_, Endpoint& endpoint_,
               std::shared_ptr<const Codec> codec_, const HeartbeatPolicy& policy, bool pings,
               Limits limits_)
    : reactor(reactor_),
      handler(handler_),
      owner(owner_),
      endpoint(endpoint_),
      codec(std::move(codec_)),
      heartbeat(policy, pings, codec->ping_payload_size(), reactor_.now()),
      scratch(new char[limits_.read_size]),
      limits(limits_),
      close_frames(has_close_frames(*codec)) {
  reactor.attach(heartbeat.wheel());
}

Engine::~Engine() {
  messages.for_each([this](int, Buffer*& message) { buffers.release(message); });
  reactor.detach(heartbeat.wheel());
}

bool Engine::has_close_frames(const Codec& codec) noexcept {
  char payload[125];
  return codec.close_payload(1000, payload) >= 0;
}

void Engine::mask_key(uint8_t key[4]) {
  if (random_left_ < 4) {
    if (!random_) random_.reset(new uint8_t[kRandomBatch]);
    std::size_t filled = 0;
    while (filled < kRandomBatch) {
      ssize_t got = ::getrandom(random_.get() + filled, kRandomBatch - filled, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw std::system_error(errno, std::generic_category(), "evwheel: getrandom");
      filled += static_cast<std::size_t>(got);
    }
    random_left_ = kRandomBatch;
  }
  random_left_ -= 4;
  std::memcpy(key, random_.get() + random_left_, 4);
}

}  // namespace evwheel::detail
