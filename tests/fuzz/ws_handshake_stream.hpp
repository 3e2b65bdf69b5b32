// ws_handshake_stream — the properties the WebSocket handshake fuzz target checks, on bytes
// arriving in reads (chunked_input.hpp):
//   - http::HeadScanner, given each read's growing prefix as an exact-size heap copy (a read
//     past it is an AddressSanitizer report), answers what one scan of the whole stream does,
//     and that is what the definition says: the first "\r\n\r\n" within the limit;
//   - the head it delimits parses (as a request, and as a response) into views inside the
//     head only; kind and error agree; an upgrade obeys every rule of §4.2.1;
//   - a parsed request written out again from its parts parses to the same parts and class;
//   - list elements are trimmed, non-empty and comma-free; a field value that decodes as
//     base64 is the canonical encoding of what it decodes to;
//   - the server's 101 for an upgrade passes the client's checks for the same key.
// Input: [byte 0: the head size limit, 8 bytes per unit, 0 for 8 KiB] [stream and reads].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../src/base64.hpp"
#include "../../src/http_head.hpp"
#include "../../src/websocket_handshake.hpp"
#include "chunked_input.hpp"
#include "fuzz_check.hpp"

namespace fuzz {
namespace ws_handshake_stream {

namespace http = evwheel::http;
namespace ws = evwheel::websocket;

struct Scan {
  http::HeadScanner::Status status = http::HeadScanner::Status::need_more;
  std::size_t length = 0;
  bool operator==(const Scan& o) const { return status == o.status && length == o.length; }
};

inline Scan scan_in_reads(std::string_view stream, const std::vector<std::size_t>& reads, std::size_t max_head) {
  http::HeadScanner scanner(max_head);
  Scan out;
  deliver_in_reads(stream, reads, [&](std::string_view received) {
    const std::vector<char> exact(received.begin(), received.end());
    out.status = scanner.scan(std::string_view(exact.data(), exact.size()));
  });
  if (out.status == http::HeadScanner::Status::complete) out.length = scanner.length();
  return out;
}

inline Scan scan_by_definition(std::string_view stream, std::size_t max_head) {
  Scan out;
  const std::size_t at = stream.substr(0, max_head).find("\r\n\r\n");
  if (at != std::string_view::npos) {
    out.status = http::HeadScanner::Status::complete;
    out.length = at + 4;
  } else if (stream.size() >= max_head) {
    out.status = http::HeadScanner::Status::too_large;
  }
  return out;
}

inline void check_inside(std::string_view view, std::string_view head) {
  if (view.empty()) return;
  FUZZ_CHECK(view.data() >= head.data() && view.data() + view.size() <= head.data() + head.size());
}

inline void check_fields(const http::Fields& fields, std::string_view head) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    check_inside(fields[i].name, head);
    check_inside(fields[i].value, head);
    FUZZ_CHECK(http::is_token(fields[i].name) && http::is_field_value(fields[i].value));
    http::TokenCursor cursor = fields.tokens(fields[i].name);
    std::string_view element;
    while (cursor.next(&element)) {
      check_inside(element, head);
      FUZZ_CHECK(!element.empty() && element.find(',') == std::string_view::npos);
      FUZZ_CHECK(element.front() != ' ' && element.front() != '\t' && element.back() != ' ' && element.back() != '\t');
    }
    std::vector<uint8_t> decoded(fields[i].value.size());
    const std::ptrdiff_t n = evwheel::base64_decode(fields[i].value, decoded.data(), decoded.size());
    if (n >= 0) {
      std::string encoded(evwheel::base64_encoded_size(static_cast<std::size_t>(n)), '\0');
      evwheel::base64_encode(std::string_view(reinterpret_cast<const char*>(decoded.data()), static_cast<std::size_t>(n)),
                             encoded.data());
      FUZZ_CHECK(encoded == fields[i].value);
    }
  }
}

// The request's parts written out again.
inline std::string rewrite(const http::RequestHead& head) {
  std::string out = std::string(head.method) + " " + std::string(head.target) + " HTTP/" +
                    std::to_string(head.version.major) + "." + std::to_string(head.version.minor) + "\r\n";
  for (std::size_t i = 0; i < head.fields.size(); ++i)
    out += std::string(head.fields[i].name) + ": " + std::string(head.fields[i].value) + "\r\n";
  return out + "\r\n";
}

inline bool same_parts(const ws::UpgradeRequest& a, const ws::UpgradeRequest& b) {
  if (a.kind != b.kind || a.error != b.error || a.head.method != b.head.method || a.head.target != b.head.target ||
      a.head.version.major != b.head.version.major || a.head.version.minor != b.head.version.minor ||
      a.head.fields.size() != b.head.fields.size())
    return false;
  for (std::size_t i = 0; i < a.head.fields.size(); ++i) {
    if (a.head.fields[i].name != b.head.fields[i].name || a.head.fields[i].value != b.head.fields[i].value) return false;
  }
  return true;
}

// §4.2.1, and the client's view of the server's answer.
inline void check_upgrade(const ws::UpgradeRequest& request) {
  const http::Fields& fields = request.head.fields;
  FUZZ_CHECK(request.head.method == "GET" && request.head.version.at_least_1_1());
  FUZZ_CHECK(!request.head.target.empty() && request.head.target[0] == '/');
  FUZZ_CHECK(fields.count("Host") == 1 && fields.has_token("Upgrade", "websocket") &&
             fields.has_token("Connection", "Upgrade"));
  FUZZ_CHECK(fields.count("Sec-WebSocket-Version") == 1 && fields.find("Sec-WebSocket-Version")->value == "13");
  uint8_t nonce[16];
  FUZZ_CHECK(request.key.size() == 24 && evwheel::base64_decode(request.key, nonce, sizeof nonce) == 16);
  ws::ClientKey key;
  request.key.copy(key.data(), key.size());
  std::vector<std::string> offered;
  http::TokenCursor cursor = request.subprotocols();
  std::string_view name;
  while (cursor.next(&name)) offered.emplace_back(name);
  const std::string chosen = !offered.empty() && http::is_token(offered[0]) ? offered[0] : std::string();
  std::string answer;
  ws::write_accept(request.key, chosen, answer);
  ws::UpgradeResponse response;
  ws::check_upgrade_response(answer, key, offered, response);
  FUZZ_CHECK(response.error == ws::ResponseError::none && response.subprotocol == chosen);
}

inline void check_request(std::string_view head) {
  ws::UpgradeRequest request;
  ws::parse_upgrade_request(head, request);
  const bool accepted = request.kind == ws::RequestKind::upgrade || request.kind == ws::RequestKind::not_websocket;
  FUZZ_CHECK(accepted == (request.error == ws::RequestError::none));
  if (request.error == ws::RequestError::start_line || request.error == ws::RequestError::field ||
      request.error == ws::RequestError::too_many_fields)
    return;
  for (std::string_view view : {request.head.method, request.head.target, request.path, request.origin, request.key})
    check_inside(view, head);
  check_fields(request.head.fields, head);
  const std::string again = rewrite(request.head);
  ws::UpgradeRequest reparsed;
  ws::parse_upgrade_request(again, reparsed);
  FUZZ_CHECK(same_parts(request, reparsed));
  if (request.kind == ws::RequestKind::upgrade) check_upgrade(request);
}

inline void check_response(std::string_view head) {
  static const ws::ClientKey kKey = ws::client_key({'t', 'h', 'e', ' ', 's', 'a', 'm', 'p', 'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'});
  static const std::vector<std::string> kOffered = {"chat", "superchat"};
  ws::UpgradeResponse response;
  ws::check_upgrade_response(head, kKey, kOffered, response);
  check_inside(response.subprotocol, head);
  if (response.error == ws::ResponseError::status_line || response.error == ws::ResponseError::field ||
      response.error == ws::ResponseError::too_many_fields)
    return;
  check_inside(response.head.reason, head);
  check_fields(response.head.fields, head);
  if (response.error != ws::ResponseError::none) return;
  FUZZ_CHECK(response.head.status == 101);
  FUZZ_CHECK(response.head.fields.find("Sec-WebSocket-Accept")->value == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  FUZZ_CHECK(response.subprotocol.empty() || response.subprotocol == "chat" || response.subprotocol == "superchat");
}

inline void check(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::size_t max_head = data[0] == 0 ? http::kDefaultMaxHead : std::size_t{data[0]} * 8;
  ChunkedInput input;
  if (!read_chunked_input(data + 1, size - 1, &input)) return;
  const Scan whole = scan_in_reads(input.stream, {}, max_head);
  FUZZ_CHECK(whole == scan_by_definition(input.stream, max_head));
  FUZZ_CHECK(scan_in_reads(input.stream, input.reads, max_head) == whole);
  if (whole.status != http::HeadScanner::Status::complete) return;
  const std::vector<char> exact(input.stream.begin(), input.stream.begin() + static_cast<std::ptrdiff_t>(whole.length));
  const std::string_view head(exact.data(), exact.size());
  check_request(head);
  check_response(head);
}

}  // namespace ws_handshake_stream
}  // namespace fuzz
