// address — "HOST:PORT" text to an IPv4 socket address and back.  HOST is a dotted quad,
// "localhost", or "*" / empty for every local address.  SocketAddress holds either family, for
// client addresses that a proxy reports (the PROXY protocol can carry IPv6 ones).
#pragma once

#include <netinet/in.h>

#include <string>
#include <string_view>

namespace evwheel {

// Throws std::invalid_argument naming the text when it is not a valid HOST:PORT.
sockaddr_in parse_address(std::string_view text);
// Throws std::invalid_argument unless `text` is a dotted-quad IPv4 address.
in_addr parse_host(std::string_view text);
std::string to_string(const sockaddr_in& address);

// An IPv4 or IPv6 address with its port, told apart by `any.sa_family` (AF_INET, AF_INET6, or
// AF_UNSPEC for "none").  A union, not sockaddr_storage: 28 bytes instead of 128.
union SocketAddress {
  sockaddr any;
  sockaddr_in v4;
  sockaddr_in6 v6;
};
// "1.2.3.4:80", "[::1]:80", or "-" for AF_UNSPEC.
std::string to_string(const SocketAddress& address);

}  // namespace evwheel
