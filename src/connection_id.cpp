// connection_id — see include/evwheel/connection_id.hpp.
#include "evwheel/connection_id.hpp"

namespace evwheel {

std::string to_string(const ConnectionId& id) {
  return "r" + std::to_string(id.reactor) + ".e" + std::to_string(id.endpoint) + ".fd" + std::to_string(id.fd) +
         ".g" + std::to_string(id.generation);
}

}  // namespace evwheel
