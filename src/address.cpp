// address — see include/evwheel/address.hpp.
#include "evwheel/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <stdexcept>

namespace evwheel {

in_addr parse_host(std::string_view text) {
  in_addr host{};
  std::string copy(text);
  if (copy == "localhost") copy = "127.0.0.1";
  if (copy.empty() || copy == "*") {
    host.s_addr = htonl(INADDR_ANY);
  } else if (::inet_pton(AF_INET, copy.c_str(), &host) != 1) {
    throw std::invalid_argument("evwheel: not an IPv4 address: '" + std::string(text) + "'");
  }
  return host;
}

sockaddr_in parse_address(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("evwheel: address needs HOST:PORT: '" + std::string(text) + "'");
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty())
    throw std::invalid_argument("evwheel: bad port in address '" + std::string(text) + "'");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr = parse_host(text.substr(0, colon));
  return address;
}

std::string to_string(const sockaddr_in& address) {
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(address.sin_port));
}

std::string to_string(const SocketAddress& address) {
  if (address.any.sa_family == AF_INET) return to_string(address.v4);
  if (address.any.sa_family != AF_INET6) return "-";
  char host[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &address.v6.sin6_addr, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(address.v6.sin6_port));
}

}  // namespace evwheel
