// proxy_protocol — a parser for the PROXY protocol header (HAProxy's proxy-protocol.txt, v1 and
// v2) that a proxy sends before any application byte to say who the real client is.
//
// parse_proxy_header() is a pure function of the bytes received so far: it allocates nothing,
// keeps no state, and answers need_more / done / error for any prefix.  A caller peeks at the
// socket, calls it again with everything seen so far each time more arrives, and consumes
// exactly `length` bytes once it says done, so application bytes that came in the same
// segment stay in the socket.  Every prefix of a valid header answers need_more.  An invalid
// one answers error without waiting for bytes that cannot help: a wrong signature at its first
// differing byte (a plain client at its first byte), a v1 line at its CRLF or at 107 bytes, a
// v2 version, command, family or length as soon as its 16 fixed bytes are in.
//
// What is accepted:
//   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", TCP6 likewise, or "PROXY UNKNOWN...\r\n";
//       at most 107 bytes with the CRLF (the spec's limit); single spaces; ports 0..65535 in
//       decimal without leading zeros; addresses as inet_pton reads them.
//   v2  the 12-byte signature, version 2, command LOCAL or PROXY; for PROXY the families
//       AF_INET and AF_INET6 over STREAM, and AF_UNSPEC (read as LOCAL); the length must
//       cover the address block, and whatever follows it must be well-formed TLVs, which are
//       skipped.  The whole header is capped at kProxyV2MaxHeader bytes.
// Refused as unsupported: v2 versions other than 2, other commands, AF_UNIX, DGRAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "evwheel/address.hpp"

namespace evwheel {

// Which headers a listener expects; `any` takes either version, told apart by the first byte.
enum class ProxyProtocol : uint8_t { off, v1, v2, any };

// Why a PROXY handshake failed.  The parser gives the first five; a Listener adds the others.
enum class ProxyError : uint8_t {
  none,
  not_proxy,          // the first bytes match no PROXY signature (a client talking directly?)
  wrong_version,      // a valid signature of the version this listener does not take
  malformed,          // bad syntax, address, port, length or TLV
  unsupported,        // well-formed but not carried: v2 version/command, AF_UNIX, DGRAM
  too_long,           // v1 without CRLF within 107 bytes; v2 beyond kProxyV2MaxHeader
  timeout,            // the header did not arrive within ListenerOptions::proxy_timeout
  closed,             // the peer closed or reset before the header was complete
};
inline constexpr std::size_t kProxyErrors = 8;
const char* to_string(ProxyError error) noexcept;

inline constexpr std::size_t kProxyV1MaxHeader = 107;
// 16 bytes of fixed header, 36 of IPv6 addresses, and room for the TLVs proxies commonly add
// (TLS details, a unique id); a longer header is refused instead of being waited for.
inline constexpr std::size_t kProxyV2MaxHeader = 1024;
inline constexpr std::size_t kProxyMaxHeader = kProxyV2MaxHeader;  // a peek buffer for either

struct ProxyHeader {
  enum class Status : uint8_t { need_more, done, error };
  Status status = Status::need_more;
  ProxyError error = ProxyError::none;  // when status == error
  uint8_t version = 0;                  // 1 or 2 once known
  // done: `local` means the header names no client (v1 UNKNOWN, v2 LOCAL or AF_UNSPEC), so the
  // connection's own addresses stand; otherwise source is the client and destination the
  // address it connected to, both AF_INET or AF_INET6.
  bool local = false;
  std::size_t length = 0;  // done: the header's size in bytes; what follows is application data
  SocketAddress source{};
  SocketAddress destination{};
};

// Parses the start of `bytes` as a header of a version `accepted` allows (`off` allows none:
// every input is wrong_version once a signature is recognised, or not_proxy).
ProxyHeader parse_proxy_header(std::string_view bytes, ProxyProtocol accepted) noexcept;

}  // namespace evwheel
