// svg — a line chart of two series over time as one self-contained SVG file (no scripts, no
// external fonts or styles), for bench modes that want to show how a run went: `conns` plots
// e.g. memory and CPU against time, with markers where its phases begin.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bench {

struct SvgSeries {
  std::string name;
  std::string unit;
  std::vector<std::pair<double, double>> points;  // (seconds, value); non-finite ones are gaps
};

struct SvgMarker {
  double seconds;
  std::string label;
};

// A self-contained SVG line chart of two series over time: `left` on the left y axis, `right`
// on the right y axis (own scales, nice ticks, legend), vertical dashed lines with labels for
// markers.  A y axis starts at 0 unless its series goes below it; the time axis spans the
// points and the markers.  False (with *error set) if the file cannot be written.
bool write_svg(const std::string& path, const std::string& title, const SvgSeries& left,
               const SvgSeries& right, const std::vector<SvgMarker>& markers,
               std::string* error);

}  // namespace bench
