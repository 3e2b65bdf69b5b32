// cli::Parser (bench/common/cli.hpp), the option parser of evwheel-bench and the examples:
// both spellings of a value, each type's checks, and one line naming the option for every
// kind of bad command line.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "../bench/common/cli.hpp"

namespace {

// A command line as parse() wants it: argv[0] first, writable strings, null-terminated.
class Args {
 public:
  Args(std::initializer_list<const char*> words) {
    strings_.emplace_back("program");
    for (const char* word : words) strings_.emplace_back(word);
    for (std::string& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(strings_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

// What the parser wrote to its two streams.
class Capture {
 public:
  Capture() : out_(open_memstream(&out_text_, &out_size_)), err_(open_memstream(&err_text_, &err_size_)) {}
  ~Capture() {
    close();
    std::free(out_text_);
    std::free(err_text_);
  }
  std::FILE* out() const { return out_; }
  std::FILE* err() const { return err_; }
  std::string out_text() { return flushed(out_, out_text_, out_size_); }
  std::string err_text() { return flushed(err_, err_text_, err_size_); }

 private:
  // open_memstream publishes its buffer and size on fflush, so read them only after it.
  static std::string flushed(std::FILE* file, char* const& text, const std::size_t& size) {
    std::fflush(file);
    return std::string(text, size);
  }
  void close() {
    if (out_) std::fclose(out_);
    if (err_) std::fclose(err_);
  }
  char* out_text_ = nullptr;
  char* err_text_ = nullptr;
  std::size_t out_size_ = 0, err_size_ = 0;
  std::FILE* out_;
  std::FILE* err_;
};

// Every option type, registered on one parser.
struct Everything {
  explicit Everything(Capture& capture) : parser("prog", "usage: prog [options]\n", capture.out(), capture.err()) {
    parser.text("--name", &name);
    parser.integer("--count", &count, int64_t{1}, int64_t{1'000'000});
    parser.integer("--cpu", &cpu, 0, 63);
    parser.real("--fraction", &fraction, 0.0, 1.0);
    parser.duration_ms("--interval-ms", &interval, 1, 60'000);
    parser.choice("--codec", &codec, {"framed", "seed"});
    parser.flag("--full", &full);
    parser.custom("--even", [this](const char* value) {
      int parsed = std::atoi(value);
      if (parsed % 2 != 0) return false;
      even = parsed;
      return true;
    }, "an even number");
  }
  std::optional<int> parse(Args& args) { return parser.parse(args.argc(), args.argv()); }

  cli::Parser parser;
  std::string name = "none";
  int64_t count = 7;
  int cpu = 0;
  double fraction = 0.5;
  std::chrono::milliseconds interval{1000};
  std::string codec = "framed";
  bool full = false;
  int even = 0;
};

// Parses `words`; the error line it printed (and checks it was one line starting "prog: ").
std::string rejected(std::initializer_list<const char*> words) {
  Capture capture;
  Everything options(capture);
  Args args(words);
  std::optional<int> status = options.parse(args);
  std::string err = capture.err_text();
  CAPTURE(err);
  CHECK(status == cli::kUsageError);
  CHECK(err.rfind("prog: ", 0) == 0);
  CHECK(err.find('\n') == err.size() - 1);
  CHECK(capture.out_text().empty());
  return err;
}

}  // namespace

TEST_CASE("cli: a value is taken as --name value and as --name=value") {
  Capture capture;
  Everything options(capture);
  Args args({"--name", "alpha", "--count=1e3", "--cpu", "3", "--fraction=0.25", "--interval-ms", "250",
             "--codec=seed", "--full", "--even=4"});
  CHECK_FALSE(options.parse(args).has_value());
  CHECK(options.name == "alpha");
  CHECK(options.count == 1000);
  CHECK(options.cpu == 3);
  CHECK(options.fraction == 0.25);
  CHECK(options.interval == std::chrono::milliseconds(250));
  CHECK(options.codec == "seed");
  CHECK(options.full);
  CHECK(options.even == 4);
  CHECK(capture.err_text().empty());
}

TEST_CASE("cli: options not given keep their defaults, and a later value wins") {
  Capture capture;
  Everything options(capture);
  Args args({"--count", "5", "--count=6"});
  CHECK_FALSE(options.parse(args).has_value());
  CHECK(options.count == 6);
  CHECK(options.name == "none");
  CHECK_FALSE(options.full);
}

TEST_CASE("cli: a parser can parse more than once (getopt's state starts afresh)") {
  for (const char* value : {"11", "12"}) {
    Capture capture;
    Everything options(capture);
    Args args({"--count", value});
    CHECK_FALSE(options.parse(args).has_value());
    CHECK(options.count == std::atoi(value));
  }
}

TEST_CASE("cli: --help and -h print the usage and ask for exit status 0") {
  for (const char* help : {"--help", "-h"}) {
    Capture capture;
    Everything options(capture);
    Args args({"--count", "3", help, "--bogus"});
    CHECK(options.parse(args) == 0);
    CHECK(capture.out_text() == "usage: prog [options]\n");
    CHECK(capture.err_text().empty());
  }
}

TEST_CASE("cli: values out of range or of the wrong type are one line naming the option and what it wants") {
  CHECK(rejected({"--count", "0"}) == "prog: bad --count '0' (want a whole number in 1..=1000000)\n");
  CHECK(rejected({"--count=-5"}).find("bad --count '-5'") != std::string::npos);
  CHECK(rejected({"--count", "2.5"}).find("bad --count") != std::string::npos);
  CHECK(rejected({"--count", "0x10"}).find("bad --count") != std::string::npos);
  CHECK(rejected({"--count", "12abc"}).find("bad --count") != std::string::npos);
  CHECK(rejected({"--count", "99999999999999999999999"}).find("bad --count") != std::string::npos);
  CHECK(rejected({"--cpu", "64"}).find("bad --cpu '64' (want a whole number in 0..=63)") != std::string::npos);
  CHECK(rejected({"--fraction", "1.5"}).find("bad --fraction '1.5' (want a number in 0..=1)") != std::string::npos);
  CHECK(rejected({"--fraction", "nan"}).find("bad --fraction") != std::string::npos);
  CHECK(rejected({"--interval-ms", "0"}).find("bad --interval-ms '0' (want milliseconds in 1..=60000)") !=
        std::string::npos);
  CHECK(rejected({"--codec", "xml"}).find("bad --codec 'xml' (want one of framed, seed)") != std::string::npos);
  CHECK(rejected({"--even", "3"}).find("bad --even '3' (want an even number)") != std::string::npos);
  CHECK(rejected({"--count="}).find("bad --count ''") != std::string::npos);
}

TEST_CASE("cli: an unknown, abbreviated or valueless option, a value on a flag and a stray argument are rejected") {
  CHECK(rejected({"--frobnicate", "1"}) == "prog: unknown option '--frobnicate' (see --help)\n");
  CHECK(rejected({"--coun", "5"}) == "prog: unknown option '--coun' (see --help)\n");
  CHECK(rejected({"--coun=5"}) == "prog: unknown option '--coun' (see --help)\n");
  CHECK(rejected({"-x"}).find("unknown option '-x'") != std::string::npos);
  CHECK(rejected({"--count"}) == "prog: --count needs a value\n");
  CHECK(rejected({"--full=1"}) == "prog: --full takes no value\n");
  CHECK(rejected({"--count", "5", "extra"}) == "prog: unexpected argument 'extra' (see --help)\n");
}

TEST_CASE("cli: a rejected value leaves the option as it was") {
  Capture capture;
  Everything options(capture);
  Args args({"--count", "3", "--cpu", "99"});
  CHECK(options.parse(args) == cli::kUsageError);
  CHECK(options.cpu == 0);
}

TEST_CASE("cli: fail() prints one line under the program's name; library messages lose their prefix") {
  Capture capture;
  cli::Parser parser("hb_server", "", capture.out(), capture.err());
  CHECK(parser.fail(cli::without_library_prefix("evwheel: bad port in address 'x:y'")) == cli::kUsageError);
  CHECK(capture.err_text() == "hb_server: bad port in address 'x:y'\n");
  CHECK(cli::without_library_prefix("bind: Address already in use") == "bind: Address already in use");
}
