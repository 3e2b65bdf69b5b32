// The README's embedding example must be examples/embed.cpp verbatim, so the README cannot rot
// (the example is compiled by `make`; the README's copy is checked here).
//
// README.md carries the example as a fenced ```cpp block directly after a line
// `<!-- embed.cpp -->`.  Both files are read relative to the current directory (`make test`
// runs the tests from the repository root), or relative to $EVWHEEL_SOURCE_DIR when set.
// A missing README, marker, fence or example fails the test — it is never skipped.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char* const kMarker = "<!-- embed.cpp -->";

std::string source_dir() {
  const char* dir = std::getenv("EVWHEEL_SOURCE_DIR");
  return dir && *dir ? std::string(dir) : std::string(".");
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// The block's text (each line followed by '\n'), or an error message.
struct Extracted {
  std::optional<std::string> block;
  std::string error;
};

Extracted extract_block(const std::string& readme) {
  std::vector<std::string> lines = split_lines(readme);
  std::size_t i = 0;
  std::size_t markers = 0;
  std::size_t marker_at = 0;
  for (; i < lines.size(); ++i)
    if (lines[i] == kMarker && markers++ == 0) marker_at = i;
  if (markers == 0) return {std::nullopt, std::string("README.md has no line '") + kMarker + "'"};
  if (markers > 1) return {std::nullopt, std::string("README.md has the line '") + kMarker + "' more than once"};
  i = marker_at + 1;
  if (i >= lines.size() || lines[i] != "```cpp")
    return {std::nullopt, std::string("the line after '") + kMarker + "' in README.md is not '```cpp' (line " +
                              std::to_string(marker_at + 2) + ")"};
  std::string block;
  for (++i; i < lines.size(); ++i) {
    if (lines[i] == "```") return {block, {}};
    block += lines[i];
    block += '\n';
  }
  return {std::nullopt, "the ```cpp block after '" + std::string(kMarker) + "' in README.md is never closed"};
}

// "line N: README has X, embed.cpp has Y" for the first difference.
std::string first_difference(const std::string& block, const std::string& file) {
  std::vector<std::string> a = split_lines(block), b = split_lines(file);
  for (std::size_t i = 0; i < a.size() || i < b.size(); ++i) {
    std::string x = i < a.size() ? "'" + a[i] + "'" : "(end of block)";
    std::string y = i < b.size() ? "'" + b[i] + "'" : "(end of file)";
    if (x != y) return "first difference at line " + std::to_string(i + 1) + " of the example: README has " + x +
                       ", examples/embed.cpp has " + y;
  }
  if (!file.empty() && file.back() != '\n') return "examples/embed.cpp does not end with a newline";
  return "the texts differ only in line endings or trailing whitespace";
}

}  // namespace

TEST_CASE("the README's embedding example is examples/embed.cpp verbatim") {
  const std::string dir = source_dir();
  INFO("reading README.md and examples/embed.cpp from '", dir,
       "' (run from the repository root, or set EVWHEEL_SOURCE_DIR)");
  std::optional<std::string> readme = read_file(dir + "/README.md");
  if (!readme) FAIL("cannot read " << dir << "/README.md");
  std::optional<std::string> example = read_file(dir + "/examples/embed.cpp");
  if (!example) FAIL("cannot read " << dir << "/examples/embed.cpp");

  Extracted extracted = extract_block(*readme);
  if (!extracted.block) FAIL(extracted.error);
  if (*extracted.block != *example) FAIL(first_difference(*extracted.block, *example));
  CHECK(*extracted.block == *example);
}

TEST_CASE("the README block extraction finds the fenced block after the marker and reports what is wrong") {
  // The checker itself: a correct README passes, each kind of breakage is named.
  Extracted ok = extract_block("# x\n\n<!-- embed.cpp -->\n```cpp\nint main() {}\n\n// end\n```\nafter\n");
  REQUIRE(ok.block);
  CHECK(*ok.block == "int main() {}\n\n// end\n");

  Extracted empty = extract_block("<!-- embed.cpp -->\n```cpp\n```\n");
  REQUIRE(empty.block);
  CHECK(empty.block->empty());

  CHECK_FALSE(extract_block("# x\n```cpp\nint main() {}\n```\n").block);                        // no marker
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n\n```cpp\nint main() {}\n```\n").block);       // not directly after
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```c\nint main() {}\n```\n").block);          // wrong language
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```cpp\nint main() {}\n").block);             // never closed
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```cpp\n```\n<!-- embed.cpp -->\n").block);  // ambiguous
  CHECK(extract_block("no marker").error.find(kMarker) != std::string::npos);

  CHECK(first_difference("a\nb\n", "a\nc\n").find("line 2") != std::string::npos);
  CHECK(first_difference("a\n", "a\nb\n").find("(end of block)") != std::string::npos);
  CHECK(first_difference("a\n", "a").find("newline") != std::string::npos);
}
