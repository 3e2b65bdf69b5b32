// docs/api.md shows examples/minimal_server.cpp and examples/minimal_client.cpp verbatim (both
// compiled by `make`), so the guide's programs are ones that build.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "doc_blocks.hpp"

using namespace doc_blocks;

namespace {

// Fails the current test with what differs between the block after `<!-- NAME -->` in
// docs/api.md and examples/NAME.
void check_example(const std::string& name) {
  const std::string dir = source_dir();
  INFO("reading docs/api.md and examples/", name, " from '", dir,
       "' (run from the repository root, or set EVWHEEL_SOURCE_DIR)");
  std::optional<std::string> doc = read_file(dir + "/docs/api.md");
  if (!doc) FAIL("cannot read " << dir << "/docs/api.md");
  std::optional<std::string> example = read_file(dir + "/examples/" + name);
  if (!example) FAIL("cannot read " << dir << "/examples/" << name);
  Extracted extracted = extract_block(*doc, "<!-- " + name + " -->", "docs/api.md");
  if (!extracted.block) FAIL(extracted.error);
  if (*extracted.block != *example)
    FAIL(first_difference(*extracted.block, *example, "docs/api.md", "examples/" + name));
  CHECK(*extracted.block == *example);
}

}  // namespace

TEST_CASE("docs/api.md's complete server is examples/minimal_server.cpp verbatim") {
  check_example("minimal_server.cpp");
}

TEST_CASE("docs/api.md's complete client is examples/minimal_client.cpp verbatim") {
  check_example("minimal_client.cpp");
}
