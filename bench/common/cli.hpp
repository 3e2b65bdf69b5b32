// cli — the command-line parser of evwheel-bench and the examples: a thin typed layer over
// libc's getopt_long.  Options are long only (`--name value` or `--name=value`), each with a
// type that checks its value; `--help` (or `-h`) prints the usage.  Any bad command line —
// an unknown or abbreviated option, a missing or bad value, a stray argument — is one line on
// stderr naming the option, "<program>: ...", and exit status 2.
//
// Invariant: parse() either sets every option it saw to a checked value and returns nothing,
// or returns the exit status and leaves the caller nothing to do but return it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cli {

// The exit status for a bad command line.
constexpr int kUsageError = 2;

class Parser {
 public:
  // `program` starts every error line ("hb_server", "evwheel-bench: conns"); `usage` is what
  // --help prints.  Output goes to `out` (--help) and `err` (errors).
  Parser(std::string program, std::string usage, std::FILE* out = stdout, std::FILE* err = stderr);

  // Each option is registered by its long name, "--" included.  A value that does not fit
  // leaves *out as it was and fails the parse.
  void text(const char* name, std::string* out);
  // A whole number in min..=max, in digits or as "1e6" / "2.5e5".
  template <class Integer>
  void integer(const char* name, Integer* out, Integer min, Integer max) {
    add_integer(name, static_cast<int64_t>(min), static_cast<int64_t>(max),
                [out](int64_t value) { *out = static_cast<Integer>(value); });
  }
  void real(const char* name, double* out, double min, double max);
  void duration_ms(const char* name, std::chrono::milliseconds* out, int64_t min_ms, int64_t max_ms);
  void choice(const char* name, std::string* out, std::vector<std::string> allowed);
  void flag(const char* name, bool* out);  // takes no value: present means true
  // Anything else: `set` returns false for a bad value; `want` completes "(want ...)".
  void custom(const char* name, std::function<bool(const char* value)> set, std::string want);

  // Parses argv[1..argc).  Nothing when the command line was good; otherwise the status to
  // exit with: 0 after --help, kUsageError after a bad command line (its line printed).
  std::optional<int> parse(int argc, char** argv);

  // Prints "<program>: <message>" as one line on `err`; returns kUsageError.
  int fail(std::string_view message) const;

 private:
  struct Option {
    std::string name;  // without the leading "--"
    bool takes_value;
    std::function<bool(const char*)> set;
    std::string want;
  };
  void add(const char* name, bool takes_value, std::function<bool(const char*)> set, std::string want);
  void add_integer(const char* name, int64_t min, int64_t max, std::function<void(int64_t)> store);
  int bad_value(const Option& option, const char* value) const;

  std::string program_;
  std::string usage_;
  std::FILE* out_;
  std::FILE* err_;
  std::vector<Option> options_;
};

// The check behind Parser::integer, for values a custom option takes apart (lists, CPUs):
// true with *out set when `text` is a whole number in min..=max.
bool whole_number(const char* text, int64_t min, int64_t max, int64_t* out);

// Library exceptions say where they come from ("evwheel: bind ..."); a program printing one
// under its own name drops that prefix, so each line carries one.
std::string_view without_library_prefix(std::string_view what);

}  // namespace cli
