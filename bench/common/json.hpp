// json — the one JSON writer of the bench modes' --json files: objects and arrays nested to
// any depth, one member per line, and the file written whole with the reason when it cannot be.
//
// Invariant: text() is valid JSON once every open() and open_array() has been close()d —
// commas, quoting and indentation are the writer's business, never the caller's; a number
// that is not finite is written as null.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

class Json {
 public:
  // Opens an object or an array: the top-level value (no key), a member of the enclosing
  // object (with a key) or an element of the enclosing array (no key).
  Json& open(const char* key = nullptr);
  Json& open_array(const char* key = nullptr);
  Json& close();  // the innermost open object or array

  Json& number(const char* key, double value, int decimals = 3);
  Json& integer(const char* key, int64_t value);
  Json& text(const char* key, std::string_view value);
  Json& boolean(const char* key, bool value);
  Json& null(const char* key);

  // The document so far, ending in a newline once everything is closed.
  const std::string& str() const { return out_; }

  // `text` as a JSON string literal, quotes included.
  static std::string quote(std::string_view text);

 private:
  void member(const char* key);  // the comma, the indentation and the key of a new value
  Json& begin(const char* key, char bracket);

  struct Level {
    char closer;  // '}' or ']'
    bool empty;   // nothing written in it yet
  };
  std::string out_;
  std::vector<Level> levels_;
};

// Writes `text` to `path` (replacing it).  False with *error set ("PATH: reason") on failure.
bool write_file(const std::string& path, const std::string& text, std::string* error);

}  // namespace bench
