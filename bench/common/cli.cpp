// cli — see cli.hpp.
#include "cli.hpp"

#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace cli {
namespace {

// Only decimal digits, signs, a point and an exponent: strtod alone would also take hex,
// "inf" and "nan".
bool decimal_characters(const char* text) {
  if (*text == '\0') return false;
  for (const char* c = text; *c; ++c)
    if (!std::strchr("0123456789.eE+-", *c)) return false;
  return true;
}

bool parse_real(const char* text, double* out) {
  if (!decimal_characters(text)) return false;
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text, &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

// Digits go through strtoll (exact to the last unit); "1e6" and "2.5e5" through strtod, and
// must come out whole.
bool parse_integer(const char* text, int64_t* out) {
  const char* digits = *text == '-' ? text + 1 : text;
  if (*digits != '\0' && std::strspn(digits, "0123456789") == std::strlen(digits)) {
    errno = 0;
    long long value = std::strtoll(text, nullptr, 10);
    if (errno == ERANGE) return false;
    *out = value;
    return true;
  }
  double value = 0;
  if (!parse_real(text, &value) || value != std::floor(value) || std::fabs(value) > 9.2e18) return false;
  *out = static_cast<int64_t>(value);
  return true;
}

std::string range(const std::string& min, const std::string& max) { return "in " + min + "..=" + max; }

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

Parser::Parser(std::string program, std::string usage, std::FILE* out, std::FILE* err)
    : program_(std::move(program)), usage_(std::move(usage)), out_(out), err_(err) {}

void Parser::add(const char* name, bool takes_value, std::function<bool(const char*)> set, std::string want) {
  options_.push_back({std::string(name).substr(std::strncmp(name, "--", 2) == 0 ? 2 : 0), takes_value,
                      std::move(set), std::move(want)});
}

void Parser::text(const char* name, std::string* out) {
  add(name, true, [out](const char* value) { return *out = value, true; }, "text");
}

bool whole_number(const char* text, int64_t min, int64_t max, int64_t* out) {
  int64_t parsed = 0;
  if (!parse_integer(text, &parsed) || parsed < min || parsed > max) return false;
  *out = parsed;
  return true;
}

void Parser::add_integer(const char* name, int64_t min, int64_t max, std::function<void(int64_t)> store) {
  auto set = [min, max, store = std::move(store)](const char* value) {
    int64_t parsed = 0;
    if (!whole_number(value, min, max, &parsed)) return false;
    store(parsed);
    return true;
  };
  add(name, true, std::move(set), "a whole number " + range(std::to_string(min), std::to_string(max)));
}

void Parser::real(const char* name, double* out, double min, double max) {
  auto set = [out, min, max](const char* value) {
    double parsed = 0;
    if (!parse_real(value, &parsed) || parsed < min || parsed > max) return false;
    *out = parsed;
    return true;
  };
  add(name, true, std::move(set), "a number " + range(number_text(min), number_text(max)));
}

void Parser::duration_ms(const char* name, std::chrono::milliseconds* out, int64_t min_ms, int64_t max_ms) {
  add_integer(name, min_ms, max_ms, [out](int64_t value) { *out = std::chrono::milliseconds(value); });
  options_.back().want = "milliseconds " + range(std::to_string(min_ms), std::to_string(max_ms));
}

void Parser::choice(const char* name, std::string* out, std::vector<std::string> allowed) {
  std::string want = "one of";
  for (const std::string& one : allowed) want += (&one == &allowed.front() ? " " : ", ") + one;
  auto set = [out, allowed = std::move(allowed)](const char* value) {
    for (const std::string& one : allowed)
      if (one == value) return *out = value, true;
    return false;
  };
  add(name, true, std::move(set), std::move(want));
}

void Parser::flag(const char* name, bool* out) {
  add(name, false, [out](const char*) { return *out = true, true; }, "");
}

void Parser::custom(const char* name, std::function<bool(const char*)> set, std::string want) {
  add(name, true, std::move(set), std::move(want));
}

int Parser::fail(std::string_view message) const {
  std::fprintf(err_, "%s: %.*s\n", program_.c_str(), static_cast<int>(message.size()), message.data());
  return kUsageError;
}

int Parser::bad_value(const Option& option, const char* value) const {
  return fail("bad --" + option.name + " '" + value + "' (want " + option.want + ")");
}

std::optional<int> Parser::parse(int argc, char** argv) {
  constexpr int kHelp = 'h';
  constexpr int kFirstOption = 256;  // getopt_long's value for options_[i] is kFirstOption + i
  std::vector<option> table;
  for (std::size_t i = 0; i < options_.size(); ++i)
    table.push_back({options_[i].name.c_str(), options_[i].takes_value ? required_argument : no_argument, nullptr,
                     kFirstOption + static_cast<int>(i)});
  table.push_back({"help", no_argument, nullptr, kHelp});
  table.push_back({nullptr, 0, nullptr, 0});

  // "+": stop at the first non-option instead of reordering argv; ":": report a missing value
  // apart from an unknown option.  optind = 0 makes glibc start afresh (a process may parse
  // more than one command line, as `evwheel-bench default` does).
  opterr = 0;
  optind = 0;
  for (;;) {
    const int element = optind == 0 ? 1 : optind;  // the argv element getopt_long reads next
    const int code = getopt_long(argc, argv, "+:h", table.data(), nullptr);
    if (code == -1) break;
    const std::string given = element < argc ? argv[element] : "";
    if (code == kHelp) {
      std::fputs(usage_.c_str(), out_);
      return 0;
    }
    if (code == ':') return fail(given.substr(0, given.find('=')) + " needs a value");
    if (code == '?') {
      for (const Option& known : options_)
        if (!known.takes_value && given.rfind("--" + known.name + "=", 0) == 0)
          return fail("--" + known.name + " takes no value");
      return fail("unknown option '" + given + "' (see --help)");
    }
    const Option& matched = options_[static_cast<std::size_t>(code - kFirstOption)];
    // getopt_long also takes a unique abbreviation ("--conn" for "--conns"): a typo could then
    // set another option than the one meant, so only the whole name counts.
    const std::string full = "--" + matched.name;
    if (given != full && given.rfind(full + "=", 0) != 0)
      return fail("unknown option '" + given.substr(0, given.find('=')) + "' (see --help)");
    const char* value = optarg ? optarg : "";
    if (!matched.set(value)) return bad_value(matched, value);
  }
  if (optind < argc) return fail(std::string("unexpected argument '") + argv[optind] + "' (see --help)");
  return std::nullopt;
}

std::string_view without_library_prefix(std::string_view what) {
  constexpr std::string_view kPrefix = "evwheel: ";
  if (what.substr(0, kPrefix.size()) == kPrefix) what.remove_prefix(kPrefix.size());
  return what;
}

}  // namespace cli
