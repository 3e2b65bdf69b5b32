// http_head — see http_head.hpp.
#include "http_head.hpp"

namespace evwheel {
namespace http {

namespace {

constexpr std::string_view kBlankLine = "\r\n\r\n";
constexpr std::string_view kCrlf = "\r\n";

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_token_char(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string_view trim(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// "HTTP/" DIGIT "." DIGIT
bool parse_version(std::string_view text, Version* out) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (text.size() != 8 || text.substr(0, 5) != "HTTP/" || !digit(text[5]) || text[6] != '.' || !digit(text[7]))
    return false;
  out->major = static_cast<unsigned>(text[5] - '0');
  out->minor = static_cast<unsigned>(text[7] - '0');
  return true;
}

// Cuts the next CRLF-terminated line off `*rest` (which ends in CRLF).
std::string_view next_line(std::string_view* rest) {
  const std::size_t end = rest->find(kCrlf);
  const std::string_view line = rest->substr(0, end);
  rest->remove_prefix(end + kCrlf.size());
  return line;
}

// The start line of `head`, leaving the field lines in `*fields` (each ending in CRLF, the
// blank line removed); false when `head` does not end in a blank line.
bool split_head(std::string_view head, std::string_view* start_line, std::string_view* fields) {
  if (head.size() < kBlankLine.size() || head.substr(head.size() - kBlankLine.size()) != kBlankLine) return false;
  *fields = head.substr(0, head.size() - kCrlf.size());
  *start_line = next_line(fields);
  return true;
}

HeadError parse_fields(std::string_view lines, Fields& out) {
  out.clear();
  while (!lines.empty()) {
    const std::string_view line = next_line(&lines);
    const std::size_t colon = line.find(':');
    // The name is a token right up to the colon: no space before it, no folded continuation.
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) return HeadError::field;
    const std::string_view value = trim(line.substr(colon + 1));
    if (!is_field_value(value)) return HeadError::field;
    if (!out.add(Field{line.substr(0, colon), value})) return HeadError::too_many_fields;
  }
  return HeadError::none;
}

}  // namespace

HeadScanner::Status HeadScanner::scan(std::string_view received) noexcept {
  if (status_ != Status::need_more) return status_;
  const std::string_view window = received.substr(0, max_size_);
  const std::size_t from = scanned_ >= kBlankLine.size() - 1 ? scanned_ - (kBlankLine.size() - 1) : 0;
  const std::size_t at = window.find(kBlankLine, from);
  if (at != std::string_view::npos) {
    length_ = at + kBlankLine.size();
    return status_ = Status::complete;
  }
  scanned_ = window.size();
  if (received.size() >= max_size_) status_ = Status::too_large;
  return status_;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_token(std::string_view text) noexcept {
  for (char c : text) {
    if (!is_token_char(static_cast<unsigned char>(c))) return false;
  }
  return !text.empty();
}

bool is_visible_ascii(std::string_view text) noexcept {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return !text.empty();
}

// Field values and reason phrases: tab, space, visible ASCII, and bytes >= 0x80 (obs-text).
bool is_field_value(std::string_view text) noexcept {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
  }
  return true;
}

TokenCursor::TokenCursor(const Field* field, const Field* end, std::string_view name) noexcept
    : field_(field), end_(end), name_(name) {}

bool TokenCursor::next(std::string_view* element) noexcept {
  for (;;) {
    while (rest_.empty()) {
      while (field_ < end_ && !equal_ignoring_case(field_->name, name_)) ++field_;
      if (field_ == end_) return false;
      rest_ = field_->value;
      ++field_;
    }
    const std::size_t comma = rest_.find(',');
    *element = trim(rest_.substr(0, comma));
    rest_ = comma == std::string_view::npos ? std::string_view() : rest_.substr(comma + 1);
    if (!element->empty()) return true;
  }
}

const Field* Fields::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < size_; ++i) {
    if (equal_ignoring_case(fields_[i].name, name)) return &fields_[i];
  }
  return nullptr;
}

std::size_t Fields::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < size_; ++i) n += equal_ignoring_case(fields_[i].name, name);
  return n;
}

bool Fields::has_token(std::string_view name, std::string_view token) const noexcept {
  TokenCursor cursor = tokens(name);
  std::string_view element;
  while (cursor.next(&element)) {
    if (equal_ignoring_case(element, token)) return true;
  }
  return false;
}

bool Fields::add(Field field) noexcept {
  if (size_ == kMaxFields) return false;
  fields_[size_++] = field;
  return true;
}

const char* to_string(HeadError error) noexcept {
  switch (error) {
    case HeadError::none: return "none";
    case HeadError::start_line: return "malformed start line";
    case HeadError::field: return "malformed header field";
    case HeadError::too_many_fields: return "too many header fields";
  }
  return "?";
}

HeadError parse_request_head(std::string_view head, RequestHead& out) noexcept {
  out.fields.clear();
  std::string_view line, fields;
  if (!split_head(head, &line, &fields)) return HeadError::start_line;
  // method SP request-target SP HTTP-version
  const std::size_t first_space = line.find(' ');
  const std::size_t second_space = line.find(' ', first_space == std::string_view::npos ? line.size() : first_space + 1);
  if (second_space == std::string_view::npos) return HeadError::start_line;
  out.method = line.substr(0, first_space);
  out.target = line.substr(first_space + 1, second_space - first_space - 1);
  if (!is_token(out.method) || !is_visible_ascii(out.target) || !parse_version(line.substr(second_space + 1), &out.version))
    return HeadError::start_line;
  return parse_fields(fields, out.fields);
}

HeadError parse_response_head(std::string_view head, ResponseHead& out) noexcept {
  out.fields.clear();
  std::string_view line, fields;
  if (!split_head(head, &line, &fields)) return HeadError::start_line;
  // HTTP-version SP status-code [SP reason-phrase]: the reason's space is often left out when
  // the reason is, so it is optional here.
  if (line.size() < 12 || line[8] != ' ' || !parse_version(line.substr(0, 8), &out.version))
    return HeadError::start_line;
  out.status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return HeadError::start_line;
    out.status = out.status * 10 + static_cast<unsigned>(line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return HeadError::start_line;
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();
  if (!is_field_value(out.reason)) return HeadError::start_line;
  return parse_fields(fields, out.fields);
}

}  // namespace http
}  // namespace evwheel
