// bench::write_svg (bench/common/svg.hpp): what the file holds — escaped text, one line per
// unbroken run of a series, a dashed line per marker, tick labels on nice steps — and the error for
// a file that cannot be written.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "../bench/common/svg.hpp"
#include "fd_count.hpp"

namespace {

std::string temp_path() { return "/tmp/evwheel-test-svg-" + std::to_string(getpid()) + ".svg"; }

// Writes the chart and returns the file's text ("" when write_svg failed).
std::string chart(const bench::SvgSeries& left, const bench::SvgSeries& right,
                  const std::vector<bench::SvgMarker>& markers, const std::string& title = "t") {
  const std::string path = temp_path();
  std::string error;
  if (!bench::write_svg(path, title, left, right, markers, &error)) return "";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path.c_str());
  return text.str();
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

}  // namespace

TEST_CASE("write_svg escapes every text it is given") {
  const std::size_t fds = open_fd_count();
  bench::SvgSeries left{"a<b", "x&y", {{0, 1}, {1, 2}}};
  bench::SvgSeries right{"\"q\"", "'s'", {{0, 1}, {1, 2}}};
  std::string svg = chart(left, right, {{0.5, "<mark>"}}, "t <&> \"x\"");
  REQUIRE(!svg.empty());
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("t &lt;&amp;&gt; &quot;x&quot;") != std::string::npos);
  CHECK(svg.find("a&lt;b (x&amp;y)") != std::string::npos);
  CHECK(svg.find("&quot;q&quot; (&apos;s&apos;)") != std::string::npos);
  CHECK(svg.find("&lt;mark&gt;") != std::string::npos);
  CHECK(svg.find("<mark>") == std::string::npos);
  CHECK(svg.find("a<b") == std::string::npos);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("write_svg draws one line per unbroken run of a series and a dashed line per marker") {
  const std::size_t fds = open_fd_count();
  const double gap = std::numeric_limits<double>::quiet_NaN();
  bench::SvgSeries left{"left", "", {{0, 1}, {1, 2}, {2, gap}, {3, 2}, {4, 1}}};
  bench::SvgSeries right{"right", "", {{0, 5}, {4, 6}}};
  std::string svg = chart(left, right, {{1, "one"}, {2, "two"}, {3, "three"}});
  REQUIRE(!svg.empty());
  CHECK(occurrences(svg, "<polyline") == 3);
  CHECK(occurrences(svg, "stroke-dasharray") == 3);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("write_svg labels ticks on nice steps from zero, large values with a suffix") {
  const std::size_t fds = open_fd_count();
  bench::SvgSeries left{"big", "", {{0, 200'000}, {10, 1'480'000}}};
  bench::SvgSeries right{"small", "", {{0, 0.004}, {10, 0.029}}};
  std::string svg = chart(left, right, {});
  REQUIRE(!svg.empty());
  // Left: 0 to 1.6e6 in steps of 2e5; right: 0 to 0.03 in steps of 0.005; time: 0 to 10 by 2.
  for (std::string label : {">0<", ">0.2M<", ">1.0M<", ">1.6M<", ">0.005<", ">0.030<", ">2<", ">10<"})
    CHECK_MESSAGE(svg.find(label) != std::string::npos, label);
  CHECK(svg.find(">1.8M<") == std::string::npos);
  CHECK(svg.find(">0.035<") == std::string::npos);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("write_svg leaves a step of room above a series that reaches the top tick") {
  const std::size_t fds = open_fd_count();
  bench::SvgSeries plateau{"connections", "", {{0, 0}, {5, 100'000}, {10, 100'000}}};
  std::string svg = chart(plateau, {"other", "", {{0, 1}}}, {});
  REQUIRE(!svg.empty());
  CHECK(svg.find(">100k<") != std::string::npos);
  CHECK(svg.find(">120k<") != std::string::npos);
  CHECK(open_fd_count() == fds);
}

namespace {

// The y coordinate of the <text> element holding `content`, or -1.
double text_y(const std::string& svg, const std::string& content) {
  std::size_t end = svg.find(">" + content + "</text>");
  std::size_t start = svg.rfind("<text ", end);
  if (end == std::string::npos || start == std::string::npos) return -1;
  std::size_t y = svg.find(" y=\"", start);
  return y < end ? std::stod(svg.substr(y + 4)) : -1;
}

}  // namespace

TEST_CASE("write_svg starts the label of a marker too close to the previous one further down") {
  const std::size_t fds = open_fd_count();
  bench::SvgSeries series{"s", "", {{0, 1}, {100, 2}}};
  std::string svg = chart(series, series, {{50.5, "second"}, {50, "first"}, {80, "apart"}});
  REQUIRE(!svg.empty());
  const double first = text_y(svg, "first"), second = text_y(svg, "second");
  REQUIRE(first > 0);
  CHECK(second > first + 8);  // below where "first" ends, not beside it
  CHECK(text_y(svg, "apart") == doctest::Approx(first));
  CHECK(open_fd_count() == fds);
}

TEST_CASE("write_svg draws empty or flat series without dividing by zero") {
  const std::size_t fds = open_fd_count();
  std::string svg = chart({"none", "", {}}, {"flat", "", {{5, 3}, {5, 3}}}, {});
  REQUIRE(!svg.empty());
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
  CHECK(occurrences(svg, "<polyline") == 1);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("write_svg reports a file it cannot write") {
  const std::size_t fds = open_fd_count();
  std::string error;
  CHECK_FALSE(bench::write_svg("/nonexistent-dir/chart.svg", "t", {}, {}, {}, &error));
  CHECK(error.find("/nonexistent-dir/chart.svg") != std::string::npos);
  CHECK(error.find("No such file") != std::string::npos);
  CHECK(open_fd_count() == fds);
}
