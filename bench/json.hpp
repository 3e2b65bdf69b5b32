// json — the little the bench modes need to write their --json files: quoting a string and
// writing a whole file, with the reason when it cannot be written.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace bench {

// `text` as a JSON string literal, quotes included.
inline std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", c);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Writes `text` to `path` (replacing it).  False with *error set ("PATH: reason") on failure.
inline bool write_file(const std::string& path, const std::string& text, std::string* error) {
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
