// proxy_protocol — see include/evwheel/proxy_protocol.hpp.
#include "evwheel/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace evwheel {

static_assert(static_cast<std::size_t>(ProxyError::closed) + 1 == kProxyErrors,
              "ListenerStats::proxy_failures has one counter per ProxyError");

const char* to_string(ProxyError error) noexcept {
  switch (error) {
    case ProxyError::none: return "none";
    case ProxyError::not_proxy: return "not_proxy";
    case ProxyError::wrong_version: return "wrong_version";
    case ProxyError::malformed: return "malformed";
    case ProxyError::unsupported: return "unsupported";
    case ProxyError::too_long: return "too_long";
    case ProxyError::timeout: return "timeout";
    case ProxyError::closed: return "closed";
  }
  return "?";
}

namespace {

constexpr std::string_view kV1Signature = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kV2FixedSize = 16;  // signature, version/command, family, length
constexpr std::size_t kV2InetBlock = 12;  // two IPv4 addresses, two ports
constexpr std::size_t kV2Inet6Block = 36;

enum class Match { full, prefix, none };

// Whether `bytes` starts with `signature`, or is a (possibly empty) beginning of it.
Match match(std::string_view bytes, std::string_view signature) {
  std::size_t n = std::min(bytes.size(), signature.size());
  if (bytes.substr(0, n) != signature.substr(0, n)) return Match::none;
  return n == signature.size() ? Match::full : Match::prefix;
}

ProxyHeader need_more(uint8_t version) {
  ProxyHeader header;
  header.version = version;
  return header;
}

ProxyHeader failure(ProxyError error, uint8_t version) {
  ProxyHeader header;
  header.status = ProxyHeader::Status::error;
  header.error = error;
  header.version = version;
  return header;
}

// A v1 port: decimal 0..65535, no sign, no leading zero.
bool parse_port(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5 || (text[0] == '0' && text.size() > 1)) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

// A v1 address of `family` with its port, into `out`.
bool parse_v1_address(int family, std::string_view host, std::string_view port_text, SocketAddress* out) {
  char text[INET6_ADDRSTRLEN] = {};  // inet_pton wants a terminated string
  uint16_t port = 0;
  if (host.empty() || host.size() >= sizeof text || !parse_port(port_text, &port)) return false;
  std::memcpy(text, host.data(), host.size());
  *out = SocketAddress{};
  if (family == AF_INET) {
    out->v4.sin_family = AF_INET;
    out->v4.sin_port = htons(port);
    return ::inet_pton(AF_INET, text, &out->v4.sin_addr) == 1;
  }
  out->v6.sin6_family = AF_INET6;
  out->v6.sin6_port = htons(port);
  return ::inet_pton(AF_INET6, text, &out->v6.sin6_addr) == 1;
}

// Cuts `line` at its next single space; false when there is none or the field is empty.
bool next_field(std::string_view* line, std::string_view* field) {
  std::size_t space = line->find(' ');
  if (space == 0 || space == std::string_view::npos) return false;
  *field = line->substr(0, space);
  line->remove_prefix(space + 1);
  return true;
}

ProxyHeader parse_v1(std::string_view bytes) {
  std::size_t lf = bytes.substr(0, kProxyV1MaxHeader).find('\n');
  if (lf == std::string_view::npos)
    return bytes.size() >= kProxyV1MaxHeader ? failure(ProxyError::too_long, 1) : need_more(1);
  if (bytes[lf - 1] != '\r') return failure(ProxyError::malformed, 1);
  ProxyHeader header = need_more(1);
  header.status = ProxyHeader::Status::done;
  header.length = lf + 1;
  std::string_view line = bytes.substr(kV1Signature.size(), lf - 1 - kV1Signature.size());
  // UNKNOWN: the spec has the receiver ignore whatever follows it on the line.
  if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ") {
    header.local = true;
    return header;
  }
  std::string_view protocol, source, destination, source_port;
  if (!next_field(&line, &protocol) || !next_field(&line, &source) || !next_field(&line, &destination) ||
      !next_field(&line, &source_port))
    return failure(ProxyError::malformed, 1);
  std::string_view destination_port = line;  // the last field: no space may follow
  int family = protocol == "TCP4" ? AF_INET : protocol == "TCP6" ? AF_INET6 : AF_UNSPEC;
  if (family == AF_UNSPEC || destination_port.find(' ') != std::string_view::npos ||
      !parse_v1_address(family, source, source_port, &header.source) ||
      !parse_v1_address(family, destination, destination_port, &header.destination))
    return failure(ProxyError::malformed, 1);
  return header;
}

uint16_t read16(std::string_view bytes, std::size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(bytes[at]) << 8 | static_cast<unsigned char>(bytes[at + 1]));
}

// The TLVs in `bytes` (type, 16-bit length, value) must tile it exactly; their content is skipped.
bool well_formed_tlvs(std::string_view bytes) {
  while (!bytes.empty()) {
    if (bytes.size() < 3) return false;
    std::size_t size = 3 + std::size_t{read16(bytes, 1)};
    if (size > bytes.size()) return false;
    bytes.remove_prefix(size);
  }
  return true;
}

ProxyHeader parse_v2(std::string_view bytes) {
  if (bytes.size() < kV2FixedSize) return need_more(2);
  auto version_command = static_cast<unsigned char>(bytes[12]);
  auto family_transport = static_cast<unsigned char>(bytes[13]);
  std::size_t length = kV2FixedSize + read16(bytes, 14);
  if (version_command >> 4 != 2) return failure(ProxyError::unsupported, 2);
  unsigned command = version_command & 0xf;  // 0 LOCAL, 1 PROXY
  if (command > 1) return failure(ProxyError::unsupported, 2);
  if (length > kProxyV2MaxHeader) return failure(ProxyError::too_long, 2);
  unsigned family = family_transport >> 4;  // 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX
  bool local = command == 0 || family == 0;  // LOCAL ignores the address block altogether
  std::size_t block = family == 1 ? kV2InetBlock : kV2Inet6Block;
  if (!local) {
    if (family > 2 || (family_transport & 0xf) != 1) return failure(ProxyError::unsupported, 2);
    if (length < kV2FixedSize + block) return failure(ProxyError::malformed, 2);
  }
  if (bytes.size() < length) return need_more(2);
  ProxyHeader header = need_more(2);
  header.status = ProxyHeader::Status::done;
  header.length = length;
  header.local = local;
  if (local) return header;
  if (!well_formed_tlvs(bytes.substr(kV2FixedSize + block, length - kV2FixedSize - block)))
    return failure(ProxyError::malformed, 2);
  const char* addresses = bytes.data() + kV2FixedSize;
  if (family == 1) {
    header.source.v4.sin_family = header.destination.v4.sin_family = AF_INET;
    std::memcpy(&header.source.v4.sin_addr, addresses, 4);
    std::memcpy(&header.destination.v4.sin_addr, addresses + 4, 4);
    std::memcpy(&header.source.v4.sin_port, addresses + 8, 2);  // both in network order already
    std::memcpy(&header.destination.v4.sin_port, addresses + 10, 2);
  } else {
    header.source.v6.sin6_family = header.destination.v6.sin6_family = AF_INET6;
    std::memcpy(&header.source.v6.sin6_addr, addresses, 16);
    std::memcpy(&header.destination.v6.sin6_addr, addresses + 16, 16);
    std::memcpy(&header.source.v6.sin6_port, addresses + 32, 2);
    std::memcpy(&header.destination.v6.sin6_port, addresses + 34, 2);
  }
  return header;
}

}  // namespace

ProxyHeader parse_proxy_header(std::string_view bytes, ProxyProtocol accepted) noexcept {
  Match v1 = match(bytes, kV1Signature);
  Match v2 = match(bytes, kV2Signature);
  if (v1 == Match::none && v2 == Match::none) return failure(ProxyError::not_proxy, 0);
  // The signatures differ in their first byte: past it, at most one still matches.
  if (v1 == Match::prefix && v2 == Match::prefix) return need_more(0);
  uint8_t version = v1 != Match::none ? 1 : 2;
  if ((version == 1 ? v1 : v2) == Match::prefix) return need_more(version);
  bool allowed = accepted == ProxyProtocol::any || accepted == (version == 1 ? ProxyProtocol::v1 : ProxyProtocol::v2);
  if (!allowed) return failure(ProxyError::wrong_version, version);
  return version == 1 ? parse_v1(bytes) : parse_v2(bytes);
}

}  // namespace evwheel
