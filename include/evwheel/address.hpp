// address — the one place where text becomes a socket address and a socket address becomes
// text, for IPv4, IPv6 and Unix domain sockets.  Nothing here resolves a host name, so nothing
// here blocks (a Connector resolves names off the loop: see connector.hpp).
//
// Text forms (docs/addresses.md has the whole story):
//   1.2.3.4:80      IPv4.  "*:80" or ":80" is every local IPv4 address, "localhost:80" 127.0.0.1
//   [::1]:80        IPv6, always in brackets; [::]:80 is every local address (a listener on it
//                   takes IPv4 clients too unless ListenerOptions::v6_only), [fe80::1%eth0]:80
//                   a link-local address with its interface (name or index)
//   unix:/run/x     a Unix domain socket file (the path may be relative; at most 107 bytes)
//   unix:@name      an abstract Unix socket (Linux): no file, gone with its last descriptor
// to_string() writes the same forms, plus "unix:" for an unnamed Unix socket (a socketpair end,
// a connecting client) and "-" for no address.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace evwheel {

// An IPv4 or IPv6 address with its port, told apart by `any.sa_family` (AF_INET, AF_INET6, or
// AF_UNSPEC for "none").  A union, not sockaddr_storage: 28 bytes instead of 128, because an
// Endpoint keeps one per descriptor for PROXY-protocol clients.  Address holds any family.
union SocketAddress {
  sockaddr any;
  sockaddr_in v4;
  sockaddr_in6 v6{};  // the widest, so SocketAddress{} zeroes all 28 bytes (scope id included)
};
// "1.2.3.4:80", "[::1]:80", or "-" for AF_UNSPEC.
std::string to_string(const SocketAddress& address);

// A socket address of any family (IPv4, IPv6, Unix domain) with its length, which a Unix
// address needs: an abstract name is not NUL-terminated.  A value type (116 bytes on Linux).
class Address {
 public:
  Address() noexcept;  // family() AF_UNSPEC: no address
  // A copy of what accept, getpeername or getaddrinfo gave (`length` bytes at most).
  Address(const sockaddr* address, socklen_t length) noexcept;
  Address(const SocketAddress& address) noexcept;  // implicit: every SocketAddress is one

  // Any form listed at the top.  Throws std::invalid_argument quoting the text when it is none
  // of them: a bad port, a bad IPv4 or IPv6 literal, IPv6 without brackets, a Unix path that is
  // empty or too long, or a host name (only a Connector takes those: see HostName).
  static Address parse(std::string_view text);
  // A numeric host without a port ("127.0.0.2", "::1" or "[::1]"), port 0, as for
  // ConnectorOptions::source.  Throws std::invalid_argument quoting the text.
  static Address parse_host(std::string_view text);
  // The socket's own address (getsockname) and its peer's (getpeername); AF_UNSPEC when the
  // socket has none (a reset connection has no peer).
  static Address local_of(int fd) noexcept;
  static Address peer_of(int fd) noexcept;

  int family() const noexcept { return storage_.any.sa_family; }
  const sockaddr* get() const noexcept { return &storage_.any; }
  socklen_t length() const noexcept { return length_; }
  uint16_t port() const noexcept;  // IPv4 and IPv6; 0 for the other families
  // As a SocketAddress (what Endpoint::adopt_proxied takes); AF_UNSPEC unless IPv4 or IPv6.
  SocketAddress ip() const noexcept;
  // The file of a unix:/path address (what a listener unlinks); empty for every other address,
  // abstract and unnamed Unix ones included.
  std::string_view unix_path() const noexcept;

 private:
  union Storage {
    sockaddr any;
    sockaddr_in v4;
    sockaddr_in6 v6;
    sockaddr_un local;
  };
  Storage storage_;
  socklen_t length_;
};
std::string to_string(const Address& address);
// The same family, length and bytes.
bool operator==(const Address& a, const Address& b) noexcept;
inline bool operator!=(const Address& a, const Address& b) noexcept { return !(a == b); }

// NAME:PORT where NAME is a host name to resolve ("localhost" included: resolved, it may be ::1
// as well as 127.0.0.1), as a Connector takes it.
struct HostName {
  std::string host;
  uint16_t port = 0;

  // nullopt for every form Address::parse reads (other than localhost); a HostName for
  // NAME:PORT.  Throws std::invalid_argument quoting the text for a bad port or a NAME that
  // cannot be a host name (characters other than letters, digits, '-', '.', '_'; all digits
  // and dots; longer than 253).
  static std::optional<HostName> parse(std::string_view text);
};

}  // namespace evwheel
