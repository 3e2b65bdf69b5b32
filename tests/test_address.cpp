// Unit tests for evwheel::parse_address / parse_host / to_string (include/evwheel/address.hpp).
#include <doctest/doctest.h>

#include "evwheel/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace {

using evwheel::parse_address;
using evwheel::parse_host;

uint32_t host_order(const sockaddr_in& a) { return ntohl(a.sin_addr.s_addr); }
uint16_t port_of(const sockaddr_in& a) { return ntohs(a.sin_port); }

// parse_address must throw std::invalid_argument whose message quotes the text — the whole
// text for a bad port, the HOST part for a bad host.
void check_rejected(const std::string& text) {
  CAPTURE(text);
  try {
    sockaddr_in a = parse_address(text);
    FAIL_CHECK("accepted as ", evwheel::to_string(a));
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    CAPTURE(what);
    std::size_t colon = text.rfind(':');
    std::string host = colon == std::string::npos ? text : text.substr(0, colon);
    CHECK((what.find("'" + text + "'") != std::string::npos || what.find("'" + host + "'") != std::string::npos));
  } catch (...) {
    FAIL_CHECK("threw something other than std::invalid_argument");
  }
}

}  // namespace

TEST_CASE("parse_address reads a dotted quad and a port") {
  sockaddr_in a = parse_address("127.0.0.1:80");
  CHECK(a.sin_family == AF_INET);
  CHECK(host_order(a) == 0x7f000001u);
  CHECK(port_of(a) == 80);

  a = parse_address("10.20.30.40:65535");
  CHECK(host_order(a) == 0x0a141e28u);
  CHECK(port_of(a) == 65535);

  a = parse_address("255.255.255.255:1");
  CHECK(host_order(a) == 0xffffffffu);
  CHECK(port_of(a) == 1);
}

TEST_CASE("parse_address maps \"localhost\" to 127.0.0.1") {
  sockaddr_in a = parse_address("localhost:1");
  CHECK(a.sin_family == AF_INET);
  CHECK(host_order(a) == INADDR_LOOPBACK);
  CHECK(port_of(a) == 1);
}

TEST_CASE("parse_address maps \"*\" and an empty host to every local address") {
  sockaddr_in a = parse_address("*:0");
  CHECK(a.sin_family == AF_INET);
  CHECK(host_order(a) == INADDR_ANY);
  CHECK(port_of(a) == 0);

  a = parse_address(":8080");
  CHECK(a.sin_family == AF_INET);
  CHECK(host_order(a) == INADDR_ANY);
  CHECK(port_of(a) == 8080);
}

TEST_CASE("parse_address zero-fills the rest of the sockaddr_in") {
  sockaddr_in a = parse_address("1.2.3.4:5");
  for (unsigned char c : a.sin_zero) CHECK(c == 0);
}

TEST_CASE("parse_address rejects a missing, empty, out-of-range or malformed port or host") {
  for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "300.1.1.1:80", "host:80",
                           "1.2.3.4:80x", "", ":", "localhost", "1.2.3.4:99999999999999999999", "1.2.3.4: 80",
                           "1.2.3.4:+80", "1.2.3:80", "1.2.3.4.5:80", " 1.2.3.4:80", "1.2.3.4 :80",
                           "1.2.3.4:80:90", "[::1]:80", "::1:80", "LOCALHOST:80", "**:80"}) {
    check_rejected(text);
  }
}

TEST_CASE("parse_host reads a dotted quad, localhost and *, and rejects the rest") {
  CHECK(ntohl(parse_host("192.168.1.2").s_addr) == 0xc0a80102u);
  CHECK(ntohl(parse_host("localhost").s_addr) == INADDR_LOOPBACK);
  CHECK(ntohl(parse_host("*").s_addr) == INADDR_ANY);
  CHECK(ntohl(parse_host("").s_addr) == INADDR_ANY);
  CHECK_THROWS_AS(parse_host("300.1.1.1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_host("example.com"), std::invalid_argument);
  CHECK_THROWS_AS(parse_host("1.2.3.4:80"), std::invalid_argument);
}

TEST_CASE("to_string writes HOST:PORT and round-trips through parse_address") {
  for (const char* text : {"127.0.0.1:80", "0.0.0.0:0", "10.20.30.40:65535", "255.255.255.255:1", "1.2.3.4:8080"}) {
    CAPTURE(text);
    CHECK(evwheel::to_string(parse_address(text)) == text);
    sockaddr_in a = parse_address(text);
    sockaddr_in b = parse_address(evwheel::to_string(a));
    CHECK(a.sin_addr.s_addr == b.sin_addr.s_addr);
    CHECK(a.sin_port == b.sin_port);
  }
  CHECK(evwheel::to_string(parse_address("localhost:1")) == "127.0.0.1:1");
  CHECK(evwheel::to_string(parse_address("*:0")) == "0.0.0.0:0");
  CHECK(evwheel::to_string(parse_address(":8080")) == "0.0.0.0:8080");
}

TEST_CASE("to_string of a SocketAddress: IPv4 as HOST:PORT, IPv6 in brackets, '-' for none") {
  evwheel::SocketAddress address{};
  CHECK(evwheel::to_string(address) == "-");
  address.v4 = parse_address("192.0.2.1:443");
  CHECK(evwheel::to_string(address) == "192.0.2.1:443");
  address = evwheel::SocketAddress{};
  address.v6.sin6_family = AF_INET6;
  address.v6.sin6_port = htons(8080);
  REQUIRE(::inet_pton(AF_INET6, "2001:db8::1", &address.v6.sin6_addr) == 1);
  CHECK(evwheel::to_string(address) == "[2001:db8::1]:8080");
  CHECK(sizeof(evwheel::SocketAddress) == sizeof(sockaddr_in6));  // the reason it is a union
}
