// The documentation shows what the code is, checked so that it cannot rot: docs/api.md shows
// examples/minimal_server.cpp and examples/minimal_client.cpp verbatim (both compiled by
// `make`), and docs/architecture.md's layer diagram names every public header in a row above
// every header it includes.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

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

// The layer diagram: a row is "<number>  name  name ...", then three or more spaces and what
// the row is for; a word that is not a plain header name ("(detail::Engine)") is a comment.
// Lines that do not start with a number are comments too.  Returns each name's row, or an
// error naming the line.
struct Layers {
  std::map<std::string, int> row_of;
  std::string error;
};

Layers parse_layers(const std::string& diagram) {
  static const std::regex row_line(R"(^\s*(\d+)\s+(.*?)(\s{3,}.*)?$)");
  static const std::regex header_name("^[a-z_]+$");
  Layers layers;
  for (const std::string& line : split_lines(diagram)) {
    std::smatch match;
    if (!std::regex_match(line, match, row_line)) continue;
    int row = std::stoi(match[1].str());
    std::istringstream words(match[2].str());
    for (std::string word; words >> word;) {
      if (!std::regex_match(word, header_name)) continue;
      if (!layers.row_of.emplace(word, row).second) layers.error = "'" + word + "' is in more than one row";
    }
  }
  return layers;
}

// The evwheel headers `header_text` includes ("evwheel/NAME.hpp" -> NAME).
std::vector<std::string> evwheel_includes(const std::string& header_text) {
  static const std::regex include_line(R"(^#include "evwheel/([a-z_]+)\.hpp")");
  std::vector<std::string> names;
  for (const std::string& line : split_lines(header_text)) {
    std::smatch match;
    if (std::regex_search(line, match, include_line)) names.push_back(match[1].str());
  }
  return names;
}

}  // namespace

TEST_CASE("docs/api.md's complete server is examples/minimal_server.cpp verbatim") {
  check_example("minimal_server.cpp");
}

TEST_CASE("docs/api.md's complete client is examples/minimal_client.cpp verbatim") {
  check_example("minimal_client.cpp");
}

TEST_CASE("docs/architecture.md's layers name every public header once, each above the headers it includes") {
  const std::string dir = source_dir();
  INFO("reading docs/architecture.md and include/evwheel/ from '", dir,
       "' (run from the repository root, or set EVWHEEL_SOURCE_DIR)");
  std::optional<std::string> doc = read_file(dir + "/docs/architecture.md");
  if (!doc) FAIL("cannot read " << dir << "/docs/architecture.md");
  Extracted diagram = extract_block(*doc, "<!-- layers -->", "docs/architecture.md", "text");
  if (!diagram.block) FAIL(diagram.error);
  Layers layers = parse_layers(*diagram.block);
  if (!layers.error.empty()) FAIL("docs/architecture.md's layers: " << layers.error);

  std::size_t headers = 0, includes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/include/evwheel")) {
    if (entry.path().extension() != ".hpp") continue;
    ++headers;
    const std::string name = entry.path().stem().string();
    auto row = layers.row_of.find(name);
    if (row == layers.row_of.end()) FAIL("docs/architecture.md's layers do not name " << name << ".hpp");
    std::optional<std::string> text = read_file(entry.path().string());
    if (!text) FAIL("cannot read " << entry.path().string());
    for (const std::string& included : evwheel_includes(*text)) {
      ++includes;
      auto below = layers.row_of.find(included);
      if (below == layers.row_of.end()) FAIL("docs/architecture.md's layers do not name " << included << ".hpp");
      if (below->second >= row->second)
        FAIL(name << ".hpp (row " << row->second << ") includes " << included << ".hpp (row " << below->second
                  << "): docs/architecture.md's layers say it may not");
    }
  }
  CHECK(headers >= 20);  // the directory was really read
  CHECK(includes >= 20);
  // Every name in the diagram is a header: a removed header leaves no stale row entry.
  for (const auto& named : layers.row_of) {
    INFO(named.first, " (row ", named.second, ")");
    CHECK(std::filesystem::exists(dir + "/include/evwheel/" + named.first + ".hpp"));
  }
}

TEST_CASE("the layer diagram parser reads rows, skips comments and names a header listed twice") {
  Layers ok = parse_layers(" 1  reactor  heartbeat        epoll and rules\n"
                           " 0  timer_wheel  engine (detail::Engine)\n"
                           "    (src/ only: sha1 base64)\n");
  CHECK(ok.error.empty());
  CHECK(ok.row_of == std::map<std::string, int>{{"engine", 0}, {"heartbeat", 1}, {"reactor", 1}, {"timer_wheel", 0}});
  CHECK(parse_layers(" 1  reactor\n 0  reactor\n").error.find("'reactor'") != std::string::npos);
  CHECK(evwheel_includes("#include <vector>\n#include \"evwheel/reactor.hpp\"\n// #include \"evwheel/x.hpp\"\n") ==
        std::vector<std::string>{"reactor"});
}
