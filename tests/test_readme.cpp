// The README's embedding example must be examples/embed.cpp verbatim, so the README cannot rot
// (the example is compiled by `make`; the README's copy is checked here).
//
// README.md carries the example as a fenced ```cpp block directly after a line
// `<!-- embed.cpp -->` (see doc_blocks.hpp).  A missing README, marker, fence or example fails
// the test — it is never skipped.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "doc_blocks.hpp"

using namespace doc_blocks;

namespace {
const char* const kMarker = "<!-- embed.cpp -->";
}  // namespace

TEST_CASE("the README's embedding example is examples/embed.cpp verbatim") {
  const std::string dir = source_dir();
  INFO("reading README.md and examples/embed.cpp from '", dir,
       "' (run from the repository root, or set EVWHEEL_SOURCE_DIR)");
  std::optional<std::string> readme = read_file(dir + "/README.md");
  if (!readme) FAIL("cannot read " << dir << "/README.md");
  std::optional<std::string> example = read_file(dir + "/examples/embed.cpp");
  if (!example) FAIL("cannot read " << dir << "/examples/embed.cpp");

  Extracted extracted = extract_block(*readme, kMarker);
  if (!extracted.block) FAIL(extracted.error);
  if (*extracted.block != *example) FAIL(first_difference(*extracted.block, *example));
  CHECK(*extracted.block == *example);
}

TEST_CASE("the README block extraction finds the fenced block after the marker and reports what is wrong") {
  // The checker itself: a correct README passes, each kind of breakage is named.
  Extracted ok = extract_block("# x\n\n<!-- embed.cpp -->\n```cpp\nint main() {}\n\n// end\n```\nafter\n", kMarker);
  REQUIRE(ok.block);
  CHECK(*ok.block == "int main() {}\n\n// end\n");

  Extracted empty = extract_block("<!-- embed.cpp -->\n```cpp\n```\n", kMarker);
  REQUIRE(empty.block);
  CHECK(empty.block->empty());

  CHECK_FALSE(extract_block("# x\n```cpp\nint main() {}\n```\n", kMarker).block);                        // no marker
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n\n```cpp\nint main() {}\n```\n", kMarker).block);       // not directly after
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```c\nint main() {}\n```\n", kMarker).block);          // wrong language
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```cpp\nint main() {}\n", kMarker).block);             // never closed
  CHECK_FALSE(extract_block("<!-- embed.cpp -->\n```cpp\n```\n<!-- embed.cpp -->\n", kMarker).block);  // ambiguous
  CHECK(extract_block("no marker", kMarker).error.find(kMarker) != std::string::npos);

  CHECK(first_difference("a\nb\n", "a\nc\n").find("line 2") != std::string::npos);
  CHECK(first_difference("a\n", "a\nb\n").find("(end of block)") != std::string::npos);
  CHECK(first_difference("a\n", "a").find("newline") != std::string::npos);
}
