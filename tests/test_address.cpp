// Unit tests for include/evwheel/address.hpp: every text form read by Address::parse and
// written back by to_string, host names told apart by HostName::parse, numeric sources by
// Address::parse_host, and addresses read back from real sockets.
#include <doctest/doctest.h>

#include "evwheel/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace {

using evwheel::Address;
using evwheel::HostName;

const sockaddr_in& v4(const Address& a) { return reinterpret_cast<const sockaddr_in&>(*a.get()); }
const sockaddr_in6& v6(const Address& a) { return reinterpret_cast<const sockaddr_in6&>(*a.get()); }
const sockaddr_un& local(const Address& a) { return reinterpret_cast<const sockaddr_un&>(*a.get()); }
uint32_t host_order(const Address& a) { return ntohl(v4(a).sin_addr.s_addr); }

// `parse` must throw std::invalid_argument whose message quotes the whole text.
template <class Parse>
void check_rejected(const std::string& text, Parse&& parse) {
  CAPTURE(text);
  try {
    parse(text);
    FAIL_CHECK("accepted");
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    CAPTURE(what);
    CHECK(what.rfind("evwheel: ", 0) == 0);
    CHECK(what.find("'" + text + "'") != std::string::npos);
  } catch (...) {
    FAIL_CHECK("threw something other than std::invalid_argument");
  }
}

}  // namespace

TEST_CASE("Address::parse reads a dotted quad and a port") {
  Address a = Address::parse("127.0.0.1:80");
  CHECK(a.family() == AF_INET);
  CHECK(a.length() == sizeof(sockaddr_in));
  CHECK(host_order(a) == 0x7f000001u);
  CHECK(a.port() == 80);
  for (unsigned char c : v4(a).sin_zero) CHECK(c == 0);

  a = Address::parse("10.20.30.40:65535");
  CHECK(host_order(a) == 0x0a141e28u);
  CHECK(a.port() == 65535);
  CHECK(host_order(Address::parse("255.255.255.255:1")) == 0xffffffffu);
}

TEST_CASE("Address::parse maps localhost to 127.0.0.1, and * or an empty host to every IPv4 address") {
  CHECK(host_order(Address::parse("localhost:1")) == INADDR_LOOPBACK);
  CHECK(Address::parse("localhost:1").port() == 1);
  CHECK(host_order(Address::parse("*:0")) == INADDR_ANY);
  CHECK(host_order(Address::parse(":8080")) == INADDR_ANY);
  CHECK(Address::parse(":8080").port() == 8080);
}

TEST_CASE("Address::parse reads IPv6 in brackets, with a scope by index or interface name") {
  Address a = Address::parse("[::1]:9000");
  CHECK(a.family() == AF_INET6);
  CHECK(a.length() == sizeof(sockaddr_in6));
  CHECK(IN6_IS_ADDR_LOOPBACK(&v6(a).sin6_addr));
  CHECK(a.port() == 9000);
  CHECK(v6(a).sin6_scope_id == 0);

  a = Address::parse("[::]:0");
  CHECK(IN6_IS_ADDR_UNSPECIFIED(&v6(a).sin6_addr));

  a = Address::parse("[2001:db8::7]:443");
  in6_addr want{};
  REQUIRE(::inet_pton(AF_INET6, "2001:db8::7", &want) == 1);
  CHECK(IN6_ARE_ADDR_EQUAL(&v6(a).sin6_addr, &want));

  CHECK(v6(Address::parse("[fe80::1%3]:80")).sin6_scope_id == 3);
  unsigned loopback = ::if_nametoindex("lo");  // every network namespace has one
  REQUIRE(loopback != 0);
  CHECK(v6(Address::parse("[fe80::1%lo]:80")).sin6_scope_id == loopback);
}

TEST_CASE("Address::parse reads unix:/path and the abstract unix:@name") {
  Address a = Address::parse("unix:/run/evwheel.sock");
  CHECK(a.family() == AF_UNIX);
  CHECK(a.unix_path() == "/run/evwheel.sock");
  CHECK(std::string(local(a).sun_path) == "/run/evwheel.sock");
  CHECK(a.length() == offsetof(sockaddr_un, sun_path) + sizeof "/run/evwheel.sock");  // with the NUL
  CHECK(a.port() == 0);

  CHECK(Address::parse("unix:relative.sock").unix_path() == "relative.sock");

  a = Address::parse("unix:@evwheel-test");
  CHECK(a.family() == AF_UNIX);
  CHECK(a.unix_path().empty());  // nothing on disk
  CHECK(local(a).sun_path[0] == '\0');
  CHECK(std::string(local(a).sun_path + 1, 12) == "evwheel-test");
  CHECK(a.length() == offsetof(sockaddr_un, sun_path) + 1 + 12);  // exactly the name, no NUL

  std::string longest(107, 'x');  // sun_path is 108 bytes, a path keeps its NUL
  CHECK(Address::parse("unix:/" + longest.substr(1)).unix_path().size() == 107);
  CHECK(Address::parse("unix:@" + longest).family() == AF_UNIX);
}

TEST_CASE("Address::parse rejects bad ports, bad literals, IPv6 without brackets, host names and bad Unix paths") {
  for (const char* text :
       {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "300.1.1.1:80", "host:80", "1.2.3.4:80x", "",
        ":", "localhost", "1.2.3.4:99999999999999999999", "1.2.3.4: 80", "1.2.3.4:+80", "1.2.3:80", "1.2.3.4.5:80",
        " 1.2.3.4:80", "1.2.3.4 :80", "1.2.3.4:80:90", "::1:80", "LOCALHOST:80", "**:80", "example.com:443", "[::1]",
        "[::1]:", "[::1]:65536", "[1.2.3.4]:80", "[::g]:80", "[]:80", "[::1:80", "::1]:80", "[fe80::1%]:80",
        "[fe80::1%no-such-interface-0]:80", "[fe80::1%0]:80", "unix:", "unix:@"}) {
    check_rejected(text, Address::parse);
  }
  check_rejected("unix:/" + std::string(107, 'x'), Address::parse);  // 108 bytes: no room for the NUL
  check_rejected("unix:@" + std::string(108, 'x'), Address::parse);
  CHECK_THROWS_WITH_AS(Address::parse(std::string("unix:/a\0b", 9)),
                       "evwheel: NUL byte in a Unix socket path: 'unix:/a\\0b'", std::invalid_argument);
}

TEST_CASE("to_string writes each form back, and Address::parse reads it again to the same address") {
  for (const char* text : {"127.0.0.1:80", "0.0.0.0:0", "10.20.30.40:65535", "[::1]:9000", "[::]:0",
                           "[2001:db8::7]:443", "[fe80::1%3]:80", "unix:/run/evwheel.sock", "unix:relative.sock",
                           "unix:@evwheel-test"}) {
    CAPTURE(text);
    Address a = Address::parse(text);
    CHECK(evwheel::to_string(a) == text);
    CHECK(Address::parse(evwheel::to_string(a)) == a);
  }
  CHECK(evwheel::to_string(Address::parse("localhost:1")) == "127.0.0.1:1");
  CHECK(evwheel::to_string(Address::parse("*:0")) == "0.0.0.0:0");
  CHECK(evwheel::to_string(Address()) == "-");
  CHECK(Address::parse("[::1]:80") != Address::parse("[::1]:81"));
  CHECK(Address::parse("unix:@a") != Address::parse("unix:/a"));
}

TEST_CASE("Address::parse_host reads a numeric IPv4 or IPv6 host without a port, and nothing else") {
  Address a = Address::parse_host("127.0.0.2");
  CHECK(a.family() == AF_INET);
  CHECK(host_order(a) == 0x7f000002u);
  CHECK(a.port() == 0);
  for (const char* text : {"::1", "[::1]"}) {
    CAPTURE(text);
    a = Address::parse_host(text);
    CHECK(a.family() == AF_INET6);
    CHECK(IN6_IS_ADDR_LOOPBACK(&v6(a).sin6_addr));
  }
  for (const char* text : {"", "*", "localhost", "example.com", "1.2.3.4:80", "[::1]:80", "300.1.1.1", "unix:/x"})
    check_rejected(text, Address::parse_host);
}

TEST_CASE("HostName::parse takes NAME:PORT and leaves every numeric form to Address::parse") {
  for (const char* text : {"1.2.3.4:80", "[::1]:80", "[::]:0", "*:80", ":80", "unix:/x", "unix:@x"}) {
    CAPTURE(text);
    CHECK_FALSE(HostName::parse(text).has_value());
  }
  auto name = HostName::parse("localhost:9000");
  REQUIRE(name.has_value());
  CHECK(name->host == "localhost");
  CHECK(name->port == 9000);
  name = HostName::parse("push-1.example.com:443");
  REQUIRE(name.has_value());
  CHECK(name->host == "push-1.example.com");
  CHECK(name->port == 443);
  CHECK(HostName::parse("no_such.host.invalid:1").has_value());  // getaddrinfo's to judge
  for (const char* text : {"example.com", "example.com:", "example.com:65536", "bad name:80", "b@d:80", "1.2.3:80",
                           "1.2.3.4.5:80", "::1:80", "fe80::1:80"})
    check_rejected(text, HostName::parse);
  check_rejected(std::string(254, 'a') + ":80", HostName::parse);
}

TEST_CASE("Address::local_of and peer_of read real sockets: unnamed, path and abstract Unix sockets print as such") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  CHECK(Address::local_of(pair[0]).family() == AF_UNIX);
  CHECK(evwheel::to_string(Address::local_of(pair[0])) == "unix:");
  CHECK(evwheel::to_string(Address::peer_of(pair[1])) == "unix:");
  ::close(pair[0]);
  ::close(pair[1]);

  Address abstract = Address::parse("unix:@evwheel-test-address-" + std::to_string(::getpid()));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::bind(fd, abstract.get(), abstract.length()) == 0);
  CHECK(evwheel::to_string(Address::local_of(fd)) == evwheel::to_string(abstract));
  ::close(fd);

  CHECK(Address::local_of(-1).family() == AF_UNSPEC);
  int unconnected = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(Address::peer_of(unconnected).family() == AF_UNSPEC);
  CHECK(evwheel::to_string(Address::peer_of(unconnected)) == "-");
  ::close(unconnected);
}

TEST_CASE("to_string of a SocketAddress: IPv4 as HOST:PORT, IPv6 in brackets, '-' for none; an Address holds it") {
  evwheel::SocketAddress address{};
  CHECK(evwheel::to_string(address) == "-");
  CHECK(Address(address).family() == AF_UNSPEC);
  address = Address::parse("192.0.2.1:443").ip();
  CHECK(evwheel::to_string(address) == "192.0.2.1:443");
  CHECK(evwheel::to_string(Address(address)) == "192.0.2.1:443");
  address = evwheel::SocketAddress{};
  address.v6.sin6_family = AF_INET6;
  address.v6.sin6_port = htons(8080);
  REQUIRE(::inet_pton(AF_INET6, "2001:db8::1", &address.v6.sin6_addr) == 1);
  CHECK(evwheel::to_string(address) == "[2001:db8::1]:8080");
  CHECK(evwheel::to_string(Address(address)) == "[2001:db8::1]:8080");
  CHECK(Address(address).length() == sizeof(sockaddr_in6));
  CHECK(sizeof(evwheel::SocketAddress) == sizeof(sockaddr_in6));  // the reason it is a union
}

TEST_CASE("SocketAddress{} zeroes all its bytes, the IPv6 scope id included") {
  alignas(evwheel::SocketAddress) unsigned char bytes[sizeof(evwheel::SocketAddress)];
  std::memset(bytes, 0xab, sizeof bytes);
  auto* address = new (bytes) evwheel::SocketAddress{};
  CHECK(address->v6.sin6_scope_id == 0);
  CHECK(address->v6.sin6_flowinfo == 0);
  for (unsigned char byte : bytes) CHECK(byte == 0);
}

TEST_CASE("Address::ip gives the SocketAddress of an IPv4 or IPv6 address, and none for a Unix one") {
  for (const char* text : {"192.0.2.1:443", "[2001:db8::1]:8080", "[fe80::1%3]:80"}) {
    CAPTURE(text);
    evwheel::SocketAddress ip = Address::parse(text).ip();
    CHECK(evwheel::to_string(ip) == text);
    CHECK(Address(ip) == Address::parse(text));
  }
  CHECK(Address::parse("unix:/x").ip().any.sa_family == AF_UNSPEC);
  CHECK(Address().ip().any.sa_family == AF_UNSPEC);
}
