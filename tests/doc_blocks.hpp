// doc_blocks — documents that show an example file verbatim: the copy in the document is a
// fenced ```cpp block directly after a marker line `<!-- NAME -->`, and a test compares it with
// the file, so the document cannot rot (the example itself is compiled by `make`).  A block in
// another language (```haproxy) is extracted the same way for a test that runs it.
//
// Files are read relative to the current directory (`make test` runs the tests from the
// repository root), or to $EVWHEEL_SOURCE_DIR when set.
#pragma once

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace doc_blocks {

inline std::string source_dir() {
  const char* dir = std::getenv("EVWHEEL_SOURCE_DIR");
  return dir && *dir ? std::string(dir) : std::string(".");
}

inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline std::vector<std::string> split_lines(const std::string& text) {
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

// The ```LANGUAGE block right after the one line `marker` in `document` (named `name` in errors).
inline Extracted extract_block(const std::string& document, const std::string& marker,
                               const std::string& name = "README.md", const std::string& language = "cpp") {
  const std::string fence = "```" + language;
  std::vector<std::string> lines = split_lines(document);
  std::size_t i = 0;
  std::size_t markers = 0;
  std::size_t marker_at = 0;
  for (; i < lines.size(); ++i)
    if (lines[i] == marker && markers++ == 0) marker_at = i;
  if (markers == 0) return {std::nullopt, name + " has no line '" + marker + "'"};
  if (markers > 1) return {std::nullopt, name + " has the line '" + marker + "' more than once"};
  i = marker_at + 1;
  if (i >= lines.size() || lines[i] != fence)
    return {std::nullopt, "the line after '" + marker + "' in " + name + " is not '" + fence + "' (line " +
                              std::to_string(marker_at + 2) + ")"};
  std::string block;
  for (++i; i < lines.size(); ++i) {
    if (lines[i] == "```") return {block, {}};
    block += lines[i];
    block += '\n';
  }
  return {std::nullopt, "the " + fence + " block after '" + marker + "' in " + name + " is never closed"};
}

// "line N: <document> has X, <file> has Y" for the first difference.
inline std::string first_difference(const std::string& block, const std::string& file,
                                    const std::string& document_name = "README",
                                    const std::string& file_name = "examples/embed.cpp") {
  std::vector<std::string> a = split_lines(block), b = split_lines(file);
  for (std::size_t i = 0; i < a.size() || i < b.size(); ++i) {
    std::string x = i < a.size() ? "'" + a[i] + "'" : "(end of block)";
    std::string y = i < b.size() ? "'" + b[i] + "'" : "(end of file)";
    if (x != y)
      return "first difference at line " + std::to_string(i + 1) + " of the example: " + document_name + " has " + x +
             ", " + file_name + " has " + y;
  }
  if (!file.empty() && file.back() != '\n') return file_name + " does not end with a newline";
  return "the texts differ only in line endings or trailing whitespace";
}

}  // namespace doc_blocks
