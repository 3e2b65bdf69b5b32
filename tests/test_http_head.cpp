// HTTP heads (src/http_head.hpp): finding the blank line as bytes arrive and the size limit,
// the request and status line grammar, field lines, token lists across repeated fields, and
// the field count limit.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "../src/http_head.hpp"

using namespace evwheel::http;
using Status = HeadScanner::Status;

namespace {

const std::string kHead = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n";

// `head` must outlive `out`, which points into it: tests pass literals or strings they keep.
HeadError parse_request(std::string_view head, RequestHead& out) { return parse_request_head(head, out); }

HeadError request_error(const std::string& head) {
  RequestHead out;
  return parse_request_head(head, out);
}

HeadError response_error(const std::string& head) {
  ResponseHead out;
  return parse_response_head(head, out);
}

std::vector<std::string> tokens(const Fields& fields, std::string_view name) {
  std::vector<std::string> out;
  TokenCursor cursor = fields.tokens(name);
  std::string_view token;
  while (cursor.next(&token)) out.emplace_back(token);
  return out;
}

}  // namespace

TEST_CASE("the scanner finds the end of a head, and what follows is not part of it") {
  HeadScanner scanner;
  CHECK(scanner.scan(kHead + "\x81\x85rest") == Status::complete);
  CHECK(scanner.length() == kHead.size());
}

TEST_CASE("the scanner fed a growing buffer byte by byte completes exactly at the blank line") {
  HeadScanner scanner;
  for (std::size_t n = 0; n < kHead.size(); ++n) REQUIRE(scanner.scan(std::string_view(kHead).substr(0, n)) == Status::need_more);
  CHECK(scanner.scan(kHead) == Status::complete);
  CHECK(scanner.length() == kHead.size());
  CHECK(scanner.scan(kHead + "more") == Status::complete);  // stays complete
}

TEST_CASE("the scanner resumes where it stopped: a blank line cut anywhere is found") {
  for (std::size_t cut = 0; cut <= kHead.size(); ++cut) {
    HeadScanner scanner;
    const Status first = scanner.scan(std::string_view(kHead).substr(0, cut));
    CHECK(first == (cut == kHead.size() ? Status::complete : Status::need_more));
    CHECK(scanner.scan(kHead) == Status::complete);
    CHECK(scanner.length() == kHead.size());
  }
}

TEST_CASE("the scanner does not search again bytes it has searched") {
  // The contract is that earlier bytes do not change; a blank line written into them later is
  // not looked for, which is what makes each call cost only the new bytes.
  std::string received = "GET / HTTP/1.1\r\nHost: a\r\nX: yyyyyy";
  HeadScanner scanner;
  CHECK(scanner.scan(received) == Status::need_more);
  received.replace(4, 4, "\r\n\r\n");
  CHECK(scanner.scan(received) == Status::need_more);
  CHECK(scanner.scan(received + "\r\n\r\n") == Status::complete);
  CHECK(scanner.length() == received.size() + 4);
}

TEST_CASE("a head of exactly the limit is complete; without a blank line within it, too_large") {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'y') + "\r\n\r\n";
  HeadScanner exact(head.size());
  CHECK(exact.scan(head) == Status::complete);
  HeadScanner short_by_one(head.size() - 1);
  CHECK(short_by_one.scan(head.substr(0, head.size() - 2)) == Status::need_more);
  CHECK(short_by_one.scan(head) == Status::too_large);
  CHECK(short_by_one.scan(head + "\r\n\r\n") == Status::too_large);  // stays too_large
}

TEST_CASE("the default limit is 8 KiB and is judged as soon as 8 KiB are in") {
  HeadScanner scanner;
  const std::string filler = "GET / HTTP/1.1\r\nX: " + std::string(kDefaultMaxHead, 'y');
  CHECK(scanner.scan(std::string_view(filler).substr(0, kDefaultMaxHead - 1)) == Status::need_more);
  CHECK(scanner.scan(std::string_view(filler).substr(0, kDefaultMaxHead)) == Status::too_large);
}

TEST_CASE("a request line: method, target and version") {
  RequestHead head;
  REQUIRE(parse_request(kHead, head) == HeadError::none);
  CHECK(head.method == "GET");
  CHECK(head.target == "/chat");
  CHECK(head.version.major == 1);
  CHECK(head.version.minor == 1);
  CHECK(head.version.at_least_1_1());
  REQUIRE(parse_request("OPTIONS * HTTP/1.0\r\n\r\n", head) == HeadError::none);
  CHECK(head.target == "*");
  CHECK_FALSE(head.version.at_least_1_1());
  REQUIRE(parse_request("GET http://example.com/a?b=c HTTP/2.0\r\nHost: x\r\n\r\n", head) == HeadError::none);
  CHECK(head.version.at_least_1_1());
}

TEST_CASE("request lines that break the grammar are start_line errors") {
  for (const char* line : {"GET /chat\r\n", "GET /chat HTTP/1.1 \r\n", "GET  /chat HTTP/1.1\r\n", "GET /chat http/1.1\r\n",
                           "GET /chat HTTP/1.10\r\n", "GET /chat HTTP/x.1\r\n", "G(T /chat HTTP/1.1\r\n",
                           " GET /chat HTTP/1.1\r\n", "GET /ch\x01t HTTP/1.1\r\n", "GET /ch\xc3\xa9t HTTP/1.1\r\n",
                           "GET /chat HTTP/1.1\n", "\r\n"})
    CHECK_MESSAGE(request_error(std::string(line) + "Host: a\r\n\r\n") == HeadError::start_line, line);
  CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\n") == HeadError::start_line);  // no blank line
  CHECK(request_error("") == HeadError::start_line);
}

TEST_CASE("field values are trimmed, names compare without case, fields keep their order") {
  RequestHead head;
  REQUIRE(parse_request("GET / HTTP/1.1\r\nHost:example.com \r\nX-Empty:\r\nx-two: \t a b \t\r\nX-Two: c\r\n\r\n", head) ==
          HeadError::none);
  REQUIRE(head.fields.size() == 4);
  CHECK(head.fields[0].name == "Host");
  CHECK(head.fields[0].value == "example.com");
  CHECK(head.fields[1].value.empty());
  CHECK(head.fields.find("X-TWO")->value == "a b");
  CHECK(head.fields.count("x-Two") == 2);
  CHECK(head.fields.find("Missing") == nullptr);
  CHECK(head.fields.count("Missing") == 0);
}

TEST_CASE("field lines that break the grammar are field errors") {
  for (const char* line : {"Host : a", "Host", ": a", " folded", "\tfolded", "Ho st: a", "Host: a\x01", "Host: a\x7f",
                           "Host: a\rb", "Host: a\nb"})
    CHECK_MESSAGE(request_error("GET / HTTP/1.1\r\nX: 1\r\n" + std::string(line) + "\r\n\r\n") == HeadError::field, line);
  // Tabs and bytes above 0x7F (obs-text) are allowed in values.
  CHECK(request_error("GET / HTTP/1.1\r\nX: a\tb \xc3\xa9\r\n\r\n") == HeadError::none);
}

TEST_CASE("token lists: elements of every field of the name, trimmed, empty ones skipped") {
  RequestHead head;
  REQUIRE(parse_request("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Protocol: chat, , "
                        "superchat ,\r\nHost: a\r\nsec-websocket-protocol: v2.chat\r\nX: ,\r\n\r\n",
                        head) == HeadError::none);
  CHECK(tokens(head.fields, "Sec-WebSocket-Protocol") == std::vector<std::string>{"chat", "superchat", "v2.chat"});
  CHECK(tokens(head.fields, "Connection") == std::vector<std::string>{"keep-alive", "Upgrade"});
  CHECK(tokens(head.fields, "X").empty());
  CHECK(tokens(head.fields, "Missing").empty());
  CHECK(head.fields.has_token("Connection", "upgrade"));
  CHECK(head.fields.has_token("connection", "KEEP-ALIVE"));
  CHECK_FALSE(head.fields.has_token("Connection", "close"));
  CHECK_FALSE(head.fields.has_token("Connection", "keep"));
}

TEST_CASE("64 fields are parsed; a 65th makes the head too_many_fields") {
  std::string head = "GET / HTTP/1.1\r\n";
  for (std::size_t i = 0; i < kMaxFields; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  RequestHead out;
  CHECK(parse_request(head + "\r\n", out) == HeadError::none);
  CHECK(out.fields.size() == kMaxFields);
  CHECK(request_error(head + "Host: a\r\n\r\n") == HeadError::too_many_fields);
}

TEST_CASE("a status line: version, status, and a reason that may be left out") {
  ResponseHead head;
  REQUIRE(parse_response_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", head) == HeadError::none);
  CHECK(head.status == 101);
  CHECK(head.reason == "Switching Protocols");
  CHECK(head.fields.find("upgrade")->value == "websocket");
  REQUIRE(parse_response_head("HTTP/1.1 403\r\n\r\n", head) == HeadError::none);
  CHECK(head.status == 403);
  CHECK(head.reason.empty());
  REQUIRE(parse_response_head("HTTP/1.1 200 \r\n\r\n", head) == HeadError::none);
  CHECK(head.reason.empty());
}

TEST_CASE("status lines that break the grammar are start_line errors") {
  for (const char* line : {"HTTP/1.1 10 OK", "HTTP/1.1 1O1 OK", "HTTP/1.1 101Switching", "HTTP/1.1  101 OK",
                           "HTTP/1.1", "ICY 200 OK", "HTTP/1.1 101 Swi\x01tching"})
    CHECK_MESSAGE(response_error(std::string(line) + "\r\n\r\n") == HeadError::start_line, line);
  CHECK(response_error("HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n") == HeadError::field);
}

TEST_CASE("is_token, is_visible_ascii and is_field_value") {
  CHECK(is_token("websocket"));
  CHECK(is_token("v2.chat+json!#$%&'*^_`|~"));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a b"));
  CHECK_FALSE(is_token("a,b"));
  CHECK_FALSE(is_token("\"quoted\""));
  CHECK(is_visible_ascii("[::1]:8080"));
  CHECK_FALSE(is_visible_ascii("a b"));
  CHECK_FALSE(is_visible_ascii(""));
  CHECK(is_field_value(""));
  CHECK(is_field_value("text/html; charset=utf-8"));
  CHECK_FALSE(is_field_value("a\r\nInjected: yes"));
}
