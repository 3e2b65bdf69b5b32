// address — "HOST:PORT" text to an IPv4 socket address and back.  HOST is a dotted quad,
// "localhost", or "*" / empty for every local address.
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

}  // namespace evwheel
