// engine — see include/evwheel/engine.hpp.  The engine's heartbeat wheel is attached to the
// reactor for the engine's whole life, so the one timerfd also wakes the loop for it.
#include "evwheel/engine.hpp"

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
      limits(limits_) {
  reactor.attach(heartbeat.wheel());
}

Engine::~Engine() { reactor.detach(heartbeat.wheel()); }

}  // namespace evwheel::detail
