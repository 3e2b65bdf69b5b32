// flags — the examples' command-line parsing: --name value pairs, typed, with one-line errors
// (exit status 2) that name the bad flag, and --help.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace examples {

class Flags {
 public:
  Flags(const char* program, const char* usage) : program_(program), usage_(usage) {}

  void text(const char* name, std::string* out) {
    add(name, [out](const std::string& value) { *out = value; return true; });
  }
  void number(const char* name, long* out, long min, long max) {
    add(name, [out, min, max](const std::string& value) {
      char* end = nullptr;
      long parsed = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end || parsed < min || parsed > max) return false;
      *out = parsed;
      return true;
    });
  }
  void choice(const char* name, std::string* out, std::vector<std::string> allowed) {
    add(name, [out, allowed](const std::string& value) {
      for (const auto& option : allowed)
        if (value == option) return *out = value, true;
      return false;
    });
  }
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      std::string name = argv[i];
      if (name == "--help" || name == "-h") {
        std::printf("%s", usage_);
        std::exit(0);
      }
      const Flag* flag = find(name);
      if (!flag) fail("unknown flag '" + name + "'");
      if (i + 1 >= argc) fail("missing value for " + name);
      if (!flag->set(argv[++i])) fail("bad value for " + name + ": '" + argv[i] + "'");
    }
  }
  [[noreturn]] void fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s (see --help)\n", program_, message.c_str());
    std::exit(2);
  }

 private:
  struct Flag {
    std::string name;
    std::function<bool(const std::string&)> set;
  };
  void add(const char* name, std::function<bool(const std::string&)> set) {
    flags_.push_back({name, std::move(set)});
  }
  const Flag* find(const std::string& name) const {
    for (const auto& flag : flags_)
      if (flag.name == name) return &flag;
    return nullptr;
  }

  const char* program_;
  const char* usage_;
  std::vector<Flag> flags_;
};

}  // namespace examples
