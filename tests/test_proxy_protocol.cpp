// PROXY protocol parser: valid v1/v2 headers, every split point, data after the header, and
// each kind of bad input with the reason it is refused.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/proxy_protocol.hpp"

using namespace evwheel;
using Status = ProxyHeader::Status;

namespace {

const std::string kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: signature, version/command byte, family/transport byte, 16-bit length of the rest.
std::string v2(unsigned char version_command, unsigned char family_transport, const std::string& rest) {
  std::string out = kV2Signature;
  out += static_cast<char>(version_command);
  out += static_cast<char>(family_transport);
  out += static_cast<char>(rest.size() >> 8);
  out += static_cast<char>(rest.size() & 0xff);
  return out + rest;
}

// The IPv4 address block: 192.0.2.1:56324 -> 198.51.100.7:443.
std::string inet_block() {
  return std::string{'\xc0', '\x00', '\x02', '\x01', '\xc6', '\x33', '\x64', '\x07', '\xdc', '\x04', '\x01', '\xbb'};
}

// The IPv6 address block: [2001:db8::1]:56324 -> [2001:db8::2]:443.
std::string inet6_block() {
  std::string source(16, '\0'), destination(16, '\0');
  source[0] = destination[0] = '\x20';
  source[1] = destination[1] = '\x01';
  source[2] = destination[2] = '\x0d';
  source[3] = destination[3] = '\xb8';
  source[15] = '\x01';
  destination[15] = '\x02';
  return source + destination + std::string{'\xdc', '\x04', '\x01', '\xbb'};
}

std::string tlv(unsigned char type, const std::string& value) {
  std::string out{static_cast<char>(type), static_cast<char>(value.size() >> 8), static_cast<char>(value.size() & 0xff)};
  return out + value;
}

ProxyHeader parse(const std::string& bytes, ProxyProtocol accepted = ProxyProtocol::any) {
  return parse_proxy_header(bytes, accepted);
}

ProxyError error_of(const std::string& bytes, ProxyProtocol accepted = ProxyProtocol::any) {
  ProxyHeader header = parse(bytes, accepted);
  return header.status == Status::error ? header.error : ProxyError::none;
}

// Valid headers of every kind the parser takes.
std::vector<std::string> valid_headers() {
  return {
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
      "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n",
      "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
      "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
      "PROXY UNKNOWN\r\n",
      "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
      v2(0x21, 0x11, inet_block()),
      v2(0x21, 0x21, inet6_block()),
      v2(0x20, 0x00, ""),
      v2(0x20, 0x11, inet_block()),
      v2(0x21, 0x00, ""),
      v2(0x21, 0x11, inet_block() + tlv(0x01, "h2") + tlv(0x04, std::string(3, '\0')) + tlv(0x05, "")),
      v2(0x21, 0x11, inet_block() + tlv(0x20, std::string(900, 'x'))),
  };
}

}  // namespace

TEST_CASE("v1 TCP4 gives the source and destination and the header's exact length") {
  std::string header = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
  ProxyHeader h = parse(header);
  REQUIRE(h.status == Status::done);
  CHECK(h.version == 1);
  CHECK_FALSE(h.local);
  CHECK(h.length == header.size());
  CHECK(to_string(h.source) == "192.0.2.1:56324");
  CHECK(to_string(h.destination) == "198.51.100.7:443");
  CHECK(h.source.any.sa_family == AF_INET);
}

TEST_CASE("v1 TCP6 gives IPv6 addresses") {
  ProxyHeader h = parse("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n");
  REQUIRE(h.status == Status::done);
  CHECK(h.source.any.sa_family == AF_INET6);
  CHECK(to_string(h.source) == "[2001:db8::1]:56324");
  CHECK(to_string(h.destination) == "[2001:db8::2]:443");
}

TEST_CASE("v1 UNKNOWN is local, whatever follows it on the line") {
  for (std::string header : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 garbage here\r\n"}) {
    CAPTURE(header);
    ProxyHeader h = parse(header);
    REQUIRE(h.status == Status::done);
    CHECK(h.local);
    CHECK(h.length == header.size());
    CHECK(h.source.any.sa_family == AF_UNSPEC);
  }
  CHECK(error_of("PROXY UNKNOWNX\r\n") == ProxyError::malformed);
}

TEST_CASE("v2 PROXY over IPv4 and IPv6") {
  ProxyHeader h = parse(v2(0x21, 0x11, inet_block()));
  REQUIRE(h.status == Status::done);
  CHECK(h.version == 2);
  CHECK_FALSE(h.local);
  CHECK(h.length == 16 + 12);
  CHECK(to_string(h.source) == "192.0.2.1:56324");
  CHECK(to_string(h.destination) == "198.51.100.7:443");

  h = parse(v2(0x21, 0x21, inet6_block()));
  REQUIRE(h.status == Status::done);
  CHECK(h.length == 16 + 36);
  CHECK(to_string(h.source) == "[2001:db8::1]:56324");
  CHECK(to_string(h.destination) == "[2001:db8::2]:443");
}

TEST_CASE("v2 LOCAL and PROXY with AF_UNSPEC are local; LOCAL ignores its address block") {
  for (const std::string& header : {v2(0x20, 0x00, ""), v2(0x20, 0x11, inet_block()), v2(0x21, 0x00, "abc"),
                                    v2(0x20, 0x31, std::string(216, 'u'))}) {
    ProxyHeader h = parse(header);
    REQUIRE(h.status == Status::done);
    CHECK(h.local);
    CHECK(h.length == header.size());
  }
}

TEST_CASE("v2 TLVs after the addresses are skipped and counted in the length") {
  std::string header = v2(0x21, 0x11, inet_block() + tlv(0x01, "h2") + tlv(0x05, "unique-id") + tlv(0x04, ""));
  ProxyHeader h = parse(header + "after");
  REQUIRE(h.status == Status::done);
  CHECK(h.length == header.size());
  CHECK(to_string(h.source) == "192.0.2.1:56324");
}

TEST_CASE("application data after the header is not part of it, whatever it looks like") {
  for (const std::string& header : valid_headers()) {
    for (std::string data : {std::string("x"), std::string("\r\n"), kV2Signature, std::string("PROXY TCP4 \r\n")}) {
      ProxyHeader h = parse(header + data);
      REQUIRE(h.status == Status::done);
      CHECK(h.length == header.size());
    }
  }
}

TEST_CASE("every proper prefix of a valid header needs more, and the whole one is done") {
  for (const std::string& header : valid_headers()) {
    CAPTURE(header);
    ProxyHeader whole = parse(header);
    REQUIRE(whole.status == Status::done);
    for (std::size_t split = 0; split < header.size(); ++split) {
      ProxyHeader h = parse(header.substr(0, split));
      CHECK_MESSAGE(h.status == Status::need_more, "split at " << split << " gave " << to_string(h.error));
    }
    CHECK(to_string(whole.source) == to_string(parse(header + "tail").source));
  }
}

TEST_CASE("a listener for one version refuses the other with wrong_version, off refuses both") {
  std::string one = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
  std::string two = v2(0x21, 0x11, inet_block());
  CHECK(parse(one, ProxyProtocol::v1).status == Status::done);
  CHECK(parse(two, ProxyProtocol::v2).status == Status::done);
  CHECK(error_of(one, ProxyProtocol::v2) == ProxyError::wrong_version);
  CHECK(error_of(two, ProxyProtocol::v1) == ProxyError::wrong_version);
  CHECK(error_of(one, ProxyProtocol::off) == ProxyError::wrong_version);
  // Known as soon as the signature is complete, not before.
  CHECK(parse("PROXY", ProxyProtocol::v2).status == Status::need_more);
  CHECK(error_of("PROXY ", ProxyProtocol::v2) == ProxyError::wrong_version);
}

TEST_CASE("bytes that are no PROXY signature are refused at the first byte that shows it") {
  CHECK(error_of("G") == ProxyError::not_proxy);
  CHECK(error_of("GET / HTTP/1.1\r\n") == ProxyError::not_proxy);
  CHECK(error_of(std::string("\0\0\0\x05\x01", 5)) == ProxyError::not_proxy);  // a framed ping
  CHECK(error_of("PROXZ") == ProxyError::not_proxy);
  CHECK(error_of("proxy ") == ProxyError::not_proxy);
  CHECK(error_of("PROXY") == ProxyError::none);  // still a prefix
  std::string bad_signature = kV2Signature;
  bad_signature[11] = 'x';
  CHECK(error_of(bad_signature) == ProxyError::not_proxy);
  CHECK(error_of(kV2Signature.substr(0, 11)) == ProxyError::none);
}

TEST_CASE("malformed v1 lines are refused at their CRLF") {
  const char* bad[] = {
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\n",          // LF without CR
      "PROXY TCP4  192.0.2.1 198.51.100.7 56324 443\r\n",       // double space
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n",            // a field missing
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 \r\n",       // trailing space
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443 80\r\n",     // a field too many
      "PROXY TCP5 192.0.2.1 198.51.100.7 56324 443\r\n",        // unknown protocol
      "PROXY tcp4 192.0.2.1 198.51.100.7 56324 443\r\n",        // protocol is upper case
      "PROXY TCP4 256.0.2.1 198.51.100.7 56324 443\r\n",        // octet out of range
      "PROXY TCP4 192.0.2 198.51.100.7 56324 443\r\n",          // three octets
      "PROXY TCP4 2001:db8::1 198.51.100.7 56324 443\r\n",      // IPv6 in TCP4
      "PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n",         // IPv4 in TCP6
      "PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n",        // port out of range
      "PROXY TCP4 192.0.2.1 198.51.100.7 056324 443\r\n",       // leading zero
      "PROXY TCP4 192.0.2.1 198.51.100.7 +5632 443\r\n",        // sign
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 44x\r\n",        // not a number
      "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\r\n",      // stray CR
      "PROXY \r\n",                                             // nothing at all
  };
  for (const char* line : bad) {
    CAPTURE(line);
    CHECK(error_of(line) == ProxyError::malformed);
  }
}

TEST_CASE("a v1 line without CRLF is too long at 107 bytes, not before") {
  std::string line = "PROXY UNKNOWN " + std::string(kProxyV1MaxHeader - 14, 'x');
  REQUIRE(line.size() == kProxyV1MaxHeader);
  CHECK(parse(line.substr(0, kProxyV1MaxHeader - 1)).status == Status::need_more);
  CHECK(error_of(line) == ProxyError::too_long);
  // 107 bytes with the CRLF is the largest allowed.
  std::string longest = "PROXY UNKNOWN " + std::string(kProxyV1MaxHeader - 16, 'x') + "\r\n";
  REQUIRE(longest.size() == kProxyV1MaxHeader);
  CHECK(parse(longest).status == Status::done);
  CHECK(error_of("PROXY UNKNOWN " + std::string(kProxyV1MaxHeader - 15, 'x') + "\r\n") == ProxyError::too_long);
}

TEST_CASE("unsupported v2 versions, commands, families and transports are refused from the fixed part") {
  CHECK(error_of(v2(0x11, 0x11, inet_block())) == ProxyError::unsupported);  // version 1
  CHECK(error_of(v2(0x31, 0x11, inet_block())) == ProxyError::unsupported);  // version 3
  CHECK(error_of(v2(0x22, 0x11, inet_block())) == ProxyError::unsupported);  // command 2
  CHECK(error_of(v2(0x21, 0x31, std::string(216, 'u'))) == ProxyError::unsupported);  // AF_UNIX
  CHECK(error_of(v2(0x21, 0x41, inet_block())) == ProxyError::unsupported);  // family 4
  CHECK(error_of(v2(0x21, 0x12, inet_block())) == ProxyError::unsupported);  // DGRAM
  CHECK(error_of(v2(0x21, 0x10, inet_block())) == ProxyError::unsupported);  // transport UNSPEC
  // Known from the first 16 bytes: the address block need not have arrived.
  CHECK(error_of(v2(0x22, 0x11, inet_block()).substr(0, 16)) == ProxyError::unsupported);
}

TEST_CASE("a v2 length short of the address block or with broken TLVs is malformed") {
  CHECK(error_of(v2(0x21, 0x11, inet_block().substr(0, 11))) == ProxyError::malformed);
  CHECK(error_of(v2(0x21, 0x21, inet6_block().substr(0, 35))) == ProxyError::malformed);
  CHECK(error_of(v2(0x21, 0x21, inet_block())) == ProxyError::malformed);  // IPv6 family, IPv4 block
  CHECK(error_of(v2(0x21, 0x11, inet_block() + "\x01\x00")) == ProxyError::malformed);  // TLV cut in its head
  CHECK(error_of(v2(0x21, 0x11, inet_block() + tlv(0x01, "abc").substr(0, 5))) == ProxyError::malformed);
}

TEST_CASE("a v2 header above kProxyV2MaxHeader is too long as soon as its length is read") {
  std::string rest = inet_block() + tlv(0x20, std::string(kProxyV2MaxHeader - 16 - 12 - 3, 'x'));
  REQUIRE(16 + rest.size() == kProxyV2MaxHeader);
  CHECK(parse(v2(0x21, 0x11, rest)).status == Status::done);
  std::string over = inet_block() + tlv(0x20, std::string(kProxyV2MaxHeader - 16 - 12 - 2, 'x'));
  CHECK(error_of(v2(0x21, 0x11, over)) == ProxyError::too_long);
  CHECK(error_of(v2(0x21, 0x11, over).substr(0, 16)) == ProxyError::too_long);
}

TEST_CASE("mutated headers: longer input never changes a verdict, done never exceeds the input") {
  // A property check over seeded random corruptions of the valid headers: once a prefix is an
  // error or done, every longer prefix gives the same answer (so a caller may stop reading),
  // and a done length is within the bytes given.
  std::mt19937 random(20261125);
  std::vector<std::string> headers = valid_headers();
  int refused = 0, accepted = 0;  // rounds that reached a verdict: the property was judged
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = headers[random() % headers.size()] + "data";
    for (int flips = 1 + static_cast<int>(random() % 3); flips > 0; --flips)
      bytes[random() % bytes.size()] = static_cast<char>(random() % 256);
    ProxyHeader first;
    std::size_t first_at = 0;
    for (std::size_t size = 0; size <= bytes.size(); ++size) {
      ProxyHeader h = parse(bytes.substr(0, size));
      if (h.status == Status::done) REQUIRE(h.length <= size);
      if (first.status == Status::need_more) {
        first = h;
        first_at = size;
        continue;
      }
      CAPTURE(first_at);
      REQUIRE(h.status == first.status);
      REQUIRE(h.error == first.error);
      REQUIRE(h.length == first.length);
    }
    refused += first.status == Status::error;
    accepted += first.status == Status::done;
  }
  INFO(refused << " corrupted headers refused, " << accepted << " still accepted");
  CHECK(refused > 100);
  CHECK(accepted > 100);
}

TEST_CASE("every ProxyError has its own name") {
  const char* names[kProxyErrors] = {"none", "not_proxy", "wrong_version", "malformed", "unsupported", "too_long",
                                     "timeout", "closed"};
  for (std::size_t i = 0; i < kProxyErrors; ++i) CHECK(std::string(to_string(static_cast<ProxyError>(i))) == names[i]);
}
