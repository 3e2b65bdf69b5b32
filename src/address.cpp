// address — see include/evwheel/address.hpp.  Every text form is read here and written back
// here, so the two cannot drift apart.
#include "evwheel/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <stdexcept>

namespace evwheel {

namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr socklen_t kUnixHeader = offsetof(sockaddr_un, sun_path);
constexpr std::size_t kUnixNameMax = sizeof(sockaddr_un::sun_path) - 1;  // a path keeps its NUL
constexpr const char* kUnbracketedIpv6 = "an IPv6 address goes in brackets, as in [::1]:80";

// The message quotes the text, with a NUL written as \0 so that the line stays whole.
[[noreturn]] void reject(std::string_view text, const char* why) {
  std::string quoted;
  for (char c : text) quoted += c == '\0' ? std::string("\\0") : std::string(1, c);
  throw std::invalid_argument("evwheel: " + std::string(why) + ": '" + quoted + "'");
}

// The host and port of HOST:PORT or [HOST]:PORT; the host keeps its brackets.
std::pair<std::string_view, uint16_t> split_host_port(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) reject(text, "address needs HOST:PORT");
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    reject(text, "bad port in address");
  return {text.substr(0, colon), static_cast<uint16_t>(port)};
}

bool bracketed(std::string_view host) { return host.size() >= 2 && host.front() == '[' && host.back() == ']'; }

bool parse_ipv4(std::string_view host, in_addr* out) {
  std::string copy(host);
  return ::inet_pton(AF_INET, copy.c_str(), out) == 1;
}

// "::1" or "fe80::1%eth0" / "fe80::1%2" (no brackets).
bool parse_ipv6(std::string_view host, sockaddr_in6* out) {
  std::size_t percent = host.find('%');
  std::string literal(host.substr(0, percent));
  if (::inet_pton(AF_INET6, literal.c_str(), &out->sin6_addr) != 1) return false;
  if (percent == std::string_view::npos) return true;
  std::string scope(host.substr(percent + 1));
  if (scope.empty()) return false;
  unsigned index = 0;
  auto [end, error] = std::from_chars(scope.data(), scope.data() + scope.size(), index);
  if (error != std::errc() || end != scope.data() + scope.size()) index = ::if_nametoindex(scope.c_str());
  out->sin6_scope_id = index;
  return index != 0;
}

Address ipv4_address(std::string_view text, std::string_view host, uint16_t port) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  if (host.empty() || host == "*") {
    v4.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (host == "localhost") {
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (host.find(':') != std::string_view::npos) {
    reject(text, kUnbracketedIpv6);
  } else if (!parse_ipv4(host, &v4.sin_addr)) {
    reject(text, "not a numeric address (only a connector resolves host names)");
  }
  return Address(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
}

// `host` without its brackets.
Address ipv6_address(std::string_view text, std::string_view host, uint16_t port) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  if (!parse_ipv6(host, &v6)) reject(text, "not an IPv6 address");
  return Address(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
}

Address unix_address(std::string_view text) {
  std::string_view name = text.substr(kUnixPrefix.size());
  bool abstract = !name.empty() && name.front() == '@';
  if (abstract) name.remove_prefix(1);
  if (name.empty()) reject(text, "a Unix socket address needs a path or @name");
  if (name.size() > kUnixNameMax) reject(text, "Unix socket path longer than 107 bytes");
  if (name.find('\0') != std::string_view::npos) reject(text, "NUL byte in a Unix socket path");
  sockaddr_un local{};
  local.sun_family = AF_UNIX;
  std::memcpy(local.sun_path + (abstract ? 1 : 0), name.data(), name.size());
  // A path is measured with its NUL; an abstract name is exactly its bytes after the 0.
  return Address(reinterpret_cast<const sockaddr*>(&local), static_cast<socklen_t>(kUnixHeader + 1 + name.size()));
}

// getsockname or getpeername into an Address; AF_UNSPEC when the call fails.
Address socket_name(int fd, int (*call)(int, sockaddr*, socklen_t*) noexcept) noexcept {
  sockaddr_storage name{};
  socklen_t length = sizeof name;
  if (call(fd, reinterpret_cast<sockaddr*>(&name), &length) < 0) return Address();
  return Address(reinterpret_cast<const sockaddr*>(&name), length);
}

bool is_unix(std::string_view text) { return text.substr(0, kUnixPrefix.size()) == kUnixPrefix; }

std::string ipv4_to_string(const sockaddr_in& address) {
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(address.sin_port));
}

// "[::1]:80", with "%index" when a scope is set.
std::string ipv6_to_string(const sockaddr_in6& address) {
  char host[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &address.sin6_addr, host, sizeof host);
  std::string scope = address.sin6_scope_id ? "%" + std::to_string(address.sin6_scope_id) : "";
  return "[" + std::string(host) + scope + "]:" + std::to_string(ntohs(address.sin6_port));
}

std::string unix_to_string(const sockaddr_un& address, socklen_t length) {
  if (length <= kUnixHeader) return std::string(kUnixPrefix);
  const char* name = address.sun_path;
  std::size_t size = length - kUnixHeader;
  if (name[0] == '\0') return std::string(kUnixPrefix) + "@" + std::string(name + 1, size - 1);
  return std::string(kUnixPrefix) + std::string(name, strnlen(name, size));
}

}  // namespace

Address::Address() noexcept : storage_{}, length_(0) { storage_.any.sa_family = AF_UNSPEC; }

Address::Address(const sockaddr* address, socklen_t length) noexcept : storage_{} {
  length_ = std::min<socklen_t>(length, sizeof storage_);
  std::memcpy(&storage_, address, length_);
  if (length_ < sizeof(sa_family_t)) storage_.any.sa_family = AF_UNSPEC;
}

Address::Address(const SocketAddress& address) noexcept
    : Address(&address.any, address.any.sa_family == AF_INET    ? sizeof(sockaddr_in)
                            : address.any.sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                                : 0) {}

Address Address::parse(std::string_view text) {
  if (is_unix(text)) return unix_address(text);
  auto [host, port] = split_host_port(text);
  if (bracketed(host)) return ipv6_address(text, host.substr(1, host.size() - 2), port);
  return ipv4_address(text, host, port);
}

Address Address::parse_host(std::string_view text) {
  sockaddr_in v4{};
  if (parse_ipv4(text, &v4.sin_addr)) {
    v4.sin_family = AF_INET;
    return Address(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
  }
  return ipv6_address(text, bracketed(text) ? text.substr(1, text.size() - 2) : text, 0);
}

Address Address::local_of(int fd) noexcept { return socket_name(fd, ::getsockname); }

Address Address::peer_of(int fd) noexcept { return socket_name(fd, ::getpeername); }

uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(storage_.v4.sin_port);
  return family() == AF_INET6 ? ntohs(storage_.v6.sin6_port) : 0;
}

SocketAddress Address::ip() const noexcept {
  SocketAddress ip;
  if (family() == AF_INET) ip.v4 = storage_.v4;
  if (family() == AF_INET6) ip.v6 = storage_.v6;
  return ip;
}

std::string_view Address::unix_path() const noexcept {
  if (family() != AF_UNIX || length_ <= kUnixHeader || storage_.local.sun_path[0] == '\0') return {};
  const char* path = storage_.local.sun_path;
  return {path, strnlen(path, length_ - kUnixHeader)};
}

std::string to_string(const Address& address) {
  switch (address.family()) {
    case AF_INET:
      return ipv4_to_string(reinterpret_cast<const sockaddr_in&>(*address.get()));
    case AF_INET6:
      return ipv6_to_string(reinterpret_cast<const sockaddr_in6&>(*address.get()));
    case AF_UNIX:
      return unix_to_string(reinterpret_cast<const sockaddr_un&>(*address.get()), address.length());
    default:
      return "-";
  }
}

bool operator==(const Address& a, const Address& b) noexcept {
  return a.length() == b.length() && std::memcmp(a.get(), b.get(), a.length()) == 0;
}

std::string to_string(const SocketAddress& address) {
  if (address.any.sa_family == AF_INET) return ipv4_to_string(address.v4);
  return address.any.sa_family == AF_INET6 ? ipv6_to_string(address.v6) : "-";
}

std::optional<HostName> HostName::parse(std::string_view text) {
  if (is_unix(text)) return std::nullopt;
  auto [host, port] = split_host_port(text);
  in_addr ignored{};
  if (host.empty() || host == "*" || bracketed(host) || parse_ipv4(host, &ignored)) return std::nullopt;
  if (host.find(':') != std::string_view::npos) reject(text, kUnbracketedIpv6);
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; };
  if (host.size() > 253 || !std::all_of(host.begin(), host.end(), name_char))
    reject(text, "not a host name");
  // getaddrinfo would read "1.2.3" as 1.2.0.3; a name has a letter somewhere.
  if (std::all_of(host.begin(), host.end(), [](char c) { return c == '.' || std::isdigit(static_cast<unsigned char>(c)); }))
    reject(text, "not an IPv4 address");
  return HostName{std::string(host), port};
}

}  // namespace evwheel
