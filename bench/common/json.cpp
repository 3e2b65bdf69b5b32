// json — see json.hpp.
#include "json.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace bench {

std::string Json::quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void Json::member(const char* key) {
  if (levels_.empty()) return;  // the top-level value
  out_ += levels_.back().empty ? "\n" : ",\n";
  levels_.back().empty = false;
  out_.append(2 * levels_.size(), ' ');
  if (key) out_ += quote(key) + ": ";
}

Json& Json::begin(const char* key, char bracket) {
  member(key);
  out_ += bracket;
  levels_.push_back({bracket == '{' ? '}' : ']', true});
  return *this;
}

Json& Json::open(const char* key) { return begin(key, '{'); }
Json& Json::open_array(const char* key) { return begin(key, '['); }

Json& Json::close() {
  const Level level = levels_.back();
  levels_.pop_back();
  if (!level.empty) {
    out_ += '\n';
    out_.append(2 * levels_.size(), ' ');
  }
  out_ += level.closer;
  if (levels_.empty()) out_ += '\n';
  return *this;
}

Json& Json::number(const char* key, double value, int decimals) {
  if (!std::isfinite(value)) return null(key);
  member(key);
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  out_ += text;
  return *this;
}

Json& Json::integer(const char* key, int64_t value) {
  member(key);
  out_ += std::to_string(value);
  return *this;
}

Json& Json::text(const char* key, std::string_view value) {
  member(key);
  out_ += quote(value);
  return *this;
}

Json& Json::boolean(const char* key, bool value) {
  member(key);
  out_ += value ? "true" : "false";
  return *this;
}

Json& Json::null(const char* key) {
  member(key);
  out_ += "null";
  return *this;
}

bool write_file(const std::string& path, const std::string& text, std::string* error) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (!file) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  int write_errno = errno;
  if (std::fclose(file) != 0 && written) {
    written = false;
    write_errno = errno;
  }
  if (!written) *error = path + ": " + std::strerror(write_errno);
  return written;
}

}  // namespace bench
