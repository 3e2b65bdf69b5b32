// http_head — the head of an HTTP/1.1 request or response (RFC 9112): found as its bytes
// arrive, then parsed into views of those bytes, as much as a WebSocket handshake needs.
//
// HeadScanner finds the blank line ("\r\n\r\n") that ends a head, resuming where it stopped, and
// says too_large when none is within the limit.  parse_request_head() / parse_response_head()
// then split a whole head into its start line and header fields: every string_view points into
// the head's bytes (valid while they are), and the fields live in a fixed array of kMaxFields,
// so nothing allocates.  A head with more fields is too_many_fields, not truncated.
//
// The grammar is the RFC's, strictly: lines end in CRLF; a field name is a token followed at
// once by ':'; values are trimmed of spaces and tabs and may hold no control character but tab;
// obsolete line folding is refused.  Names compare case-insensitively (ASCII), and a field
// that is a comma-separated list may be repeated: tokens() walks the elements of all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evwheel {
namespace http {

inline constexpr std::size_t kDefaultMaxHead = 8192;
// Browsers send 10-20 fields with a WebSocket handshake, proxies add a few; 64 leave room.
inline constexpr std::size_t kMaxFields = 64;

class HeadScanner {
 public:
  enum class Status : uint8_t { need_more, complete, too_large };

  // A head longer than `max_size` bytes (its blank line included) is too_large.
  explicit HeadScanner(std::size_t max_size = kDefaultMaxHead) noexcept : max_size_(max_size) {}

  // `received` is everything received so far, from the first byte: the same bytes as at the
  // last call and perhaps more.  Only bytes not looked at before are searched (and the three
  // before them, where a blank line could have started).  Once complete or too_large, stays so.
  Status scan(std::string_view received) noexcept;
  // complete: the head's length, through the blank line; what follows belongs to the next protocol.
  std::size_t length() const noexcept { return length_; }

 private:
  std::size_t max_size_;
  std::size_t scanned_ = 0;  // bytes already searched
  std::size_t length_ = 0;
  Status status_ = Status::need_more;
};

struct Field {
  std::string_view name;
  std::string_view value;  // without leading and trailing spaces and tabs
};

// ASCII case-insensitive equality, as HTTP compares field names and most tokens.
bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept;
// Whether `text` is a non-empty RFC 9110 token (letters, digits and !#$%&'*+-.^_`|~).
bool is_token(std::string_view text) noexcept;
// Whether `text` is non-empty visible ASCII (no space): a request target, a Host value.
bool is_visible_ascii(std::string_view text) noexcept;
// Whether `text` may be a field value: no control character but tab (so no CR or LF).
bool is_field_value(std::string_view text) noexcept;

// The elements of a comma-separated list field, across every field of that name in order,
// trimmed, empty elements skipped (RFC 9110 §5.6.1).
class TokenCursor {
 public:
  // The next element into `*element`; false when there are no more.
  bool next(std::string_view* element) noexcept;

 private:
  friend class Fields;
  TokenCursor(const Field* field, const Field* end, std::string_view name) noexcept;
  const Field* field_;
  const Field* end_;
  std::string_view name_;
  std::string_view rest_;  // what is left of *field_'s value
};

class Fields {
 public:
  std::size_t size() const noexcept { return size_; }
  const Field& operator[](std::size_t i) const noexcept { return fields_[i]; }
  // The first field named `name`, or null.
  const Field* find(std::string_view name) const noexcept;
  // How many fields are named `name`.
  std::size_t count(std::string_view name) const noexcept;
  TokenCursor tokens(std::string_view name) const noexcept { return TokenCursor(fields_, fields_ + size_, name); }
  // Whether the list fields named `name` have an element equal to `token`, ignoring case.
  bool has_token(std::string_view name, std::string_view token) const noexcept;

  // Adds a field; false (and nothing added) when kMaxFields are there.
  bool add(Field field) noexcept;
  void clear() noexcept { size_ = 0; }

 private:
  Field fields_[kMaxFields];
  std::size_t size_ = 0;
};

struct Version {
  unsigned major = 0;
  unsigned minor = 0;
  // HTTP/1.1 or later.
  bool at_least_1_1() const noexcept { return major > 1 || (major == 1 && minor >= 1); }
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent: "/chat?room=1", "*", "http://host/path", ...
  Version version;
  Fields fields;
};

struct ResponseHead {
  Version version;
  unsigned status = 0;     // three digits
  std::string_view reason;  // may be empty
  Fields fields;
};

enum class HeadError : uint8_t {
  none,
  start_line,       // the request line or status line does not follow the grammar
  field,            // a field line does not (or the head does not end in a blank line)
  too_many_fields,  // more than kMaxFields
};
const char* to_string(HeadError error) noexcept;

// Parses `head` (bytes through the blank line, as HeadScanner delimits them) into `out`.
HeadError parse_request_head(std::string_view head, RequestHead& out) noexcept;
HeadError parse_response_head(std::string_view head, ResponseHead& out) noexcept;

}  // namespace http
}  // namespace evwheel
