// svg — write_svg() (see svg.hpp).  The chart is built as text: a fixed 960 x 540 canvas, the
// plot area inside margins that hold the axes, and every coordinate computed here, so the file
// looks the same in any viewer.
#include "svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "json.hpp"

namespace bench {
namespace {

constexpr double kWidth = 960;
constexpr double kHeight = 540;
constexpr double kLeft = 84;    // room for the left tick labels and axis title
constexpr double kRight = 876;  // the same on the right
constexpr double kTop = 84;     // title and legend above the plot
constexpr double kBottom = 480;
constexpr int kTargetTicks = 6;
const char kLeftColour[] = "#1f6fb4";
const char kRightColour[] = "#d9531e";
const char kFont[] = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

// An axis: the range [low, high] cut by ticks every `step`, both ends on a tick.
struct Axis {
  double low = 0;
  double high = 1;
  double step = 0.2;
};

// 1, 2, 5 or 10 times a power of ten, the one nearest `raw`: steps people read easily.
double nice_step(double raw) {
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  if (fraction < 1.5) return power;
  if (fraction < 3) return 2 * power;
  if (fraction < 7) return 5 * power;
  return 10 * power;
}

Axis make_axis(double low, double high) {
  if (!(low <= high)) low = 0, high = 1;  // no data
  if (high - low < 1e-12 * std::max(1.0, std::fabs(high))) {
    // A flat line gets a range around it, not a zero-height axis.
    double pad = low == 0 ? 1 : std::fabs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  Axis axis;
  axis.step = nice_step((high - low) / (kTargetTicks - 1));
  axis.low = std::floor(low / axis.step) * axis.step;
  axis.high = std::ceil(high / axis.step) * axis.step;
  return axis;
}

// Tick labels: large values as k / M / G, with as many decimals as the step needs.
std::string tick_label(double value, const Axis& axis) {
  const double largest = std::max(std::fabs(axis.low), std::fabs(axis.high));
  double scale = 1;
  const char* suffix = "";
  if (largest >= 1e9) {
    scale = 1e9, suffix = "G";
  } else if (largest >= 1e6) {
    scale = 1e6, suffix = "M";
  } else if (largest >= 1e4) {
    scale = 1e3, suffix = "k";
  }
  // Ticks are multiples of the step, so a value within a step's millionth of 0 is 0.
  if (std::fabs(value) < axis.step * 1e-6) return "0";
  const int decimals =
      std::clamp(static_cast<int>(std::ceil(-std::log10(axis.step / scale) - 1e-9)), 0, 6);
  char text[48];
  std::snprintf(text, sizeof text, "%.*f%s", decimals, value / scale, suffix);
  return text;
}

struct Range {
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  void include(double value) {
    if (!std::isfinite(value)) return;
    low = std::min(low, value);
    high = std::max(high, value);
  }
};

Axis time_axis(const SvgSeries& left, const SvgSeries& right, const std::vector<SvgMarker>& markers) {
  Range range;
  for (const SvgSeries* series : {&left, &right})
    for (const auto& point : series->points)
      if (std::isfinite(point.second)) range.include(point.first);
  for (const SvgMarker& marker : markers) range.include(marker.seconds);
  return make_axis(range.low, range.high);
}

Axis value_axis(const SvgSeries& series) {
  Range range;
  range.include(0);  // from zero: a chart of a cost should not magnify small changes
  bool any = false;
  for (const auto& point : series.points) {
    if (!std::isfinite(point.first) || !std::isfinite(point.second)) continue;
    range.include(point.second);
    any = true;
  }
  if (!any) return Axis{};
  Axis axis = make_axis(range.low, range.high);
  // A series that reaches the top or bottom tick would run along the plot's frame and vanish
  // (a connection count that plateaus at 10000, say): give it a step of room.
  const double touch = axis.step * 1e-9;
  if (range.high > 0 && range.high >= axis.high - touch) axis.high += axis.step;
  if (range.low < 0 && range.low <= axis.low + touch) axis.low -= axis.step;
  return axis;
}

// Where a value lands in pixels: [axis.low, axis.high] onto [from, to].
double place(double value, const Axis& axis, double from, double to) {
  return from + (value - axis.low) / (axis.high - axis.low) * (to - from);
}

std::vector<double> ticks(const Axis& axis) {
  std::vector<double> out;
  const int count = static_cast<int>(std::lround((axis.high - axis.low) / axis.step));
  for (int i = 0; i <= count; ++i) out.push_back(axis.low + i * axis.step);
  return out;
}

std::string text(double x, double y, const std::string& content, const char* anchor,
                 const std::string& extra = "") {
  return "<text x=\"" + number(x) + "\" y=\"" + number(y) + "\" text-anchor=\"" + anchor + "\"" +
         extra + ">" + escape(content) + "</text>\n";
}

std::string axis_title(const SvgSeries& series) {
  return series.unit.empty() ? series.name : series.name + " (" + series.unit + ")";
}

std::string grid_and_time_axis(const Axis& time, const Axis& left) {
  std::string out = "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double tick : ticks(left)) {
    const std::string y = number(place(tick, left, kBottom, kTop));
    out += "<line x1=\"" + number(kLeft) + "\" y1=\"" + y + "\" x2=\"" + number(kRight) +
           "\" y2=\"" + y + "\"/>\n";
  }
  for (double tick : ticks(time)) {
    const std::string x = number(place(tick, time, kLeft, kRight));
    out += "<line x1=\"" + x + "\" y1=\"" + number(kTop) + "\" x2=\"" + x + "\" y2=\"" +
           number(kBottom) + "\"/>\n";
  }
  out += "</g>\n<g font-size=\"12\" fill=\"#333\">\n";
  for (double tick : ticks(time))
    out += text(place(tick, time, kLeft, kRight), kBottom + 18, tick_label(tick, time), "middle");
  out += text((kLeft + kRight) / 2, kBottom + 44, "time (s)", "middle", " font-size=\"13\"");
  return out + "</g>\n";
}

// One y axis: its tick labels and rotated title on the left or right side, in the series colour.
std::string value_axis_labels(const Axis& axis, const SvgSeries& series, bool on_left) {
  const char* colour = on_left ? kLeftColour : kRightColour;
  const double edge = on_left ? kLeft : kRight;
  std::string out = "<g font-size=\"12\" fill=\"" + std::string(colour) + "\">\n";
  for (double tick : ticks(axis)) {
    out += text(on_left ? edge - 8 : edge + 8, place(tick, axis, kBottom, kTop) + 4,
                tick_label(tick, axis), on_left ? "end" : "start");
  }
  const double x = on_left ? 22 : kWidth - 16;
  const double y = (kTop + kBottom) / 2;
  out += text(x, y, axis_title(series), "middle",
              " font-size=\"13\" transform=\"rotate(-90 " + number(x) + " " + number(y) + ")\"");
  return out + "</g>\n";
}

// The series as polylines; a non-finite value ends one and the next finite point starts another.
std::string series_lines(const SvgSeries& series, const Axis& time, const Axis& axis,
                         const char* colour) {
  std::string out;
  std::string points;
  auto flush = [&] {
    if (!points.empty())
      out += "<polyline fill=\"none\" stroke=\"" + std::string(colour) +
             "\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"" + points + "\"/>\n";
    points.clear();
  };
  for (const auto& point : series.points) {
    if (!std::isfinite(point.first) || !std::isfinite(point.second)) {
      flush();
      continue;
    }
    if (!points.empty()) points += ' ';
    points += number(place(point.first, time, kLeft, kRight)) + "," +
              number(place(point.second, axis, kBottom, kTop));
  }
  flush();
  return out;
}

// Dashed verticals; labels run down along their line from the top edge, haloed in white so
// they stay readable where they cross a series.  A label whose line is too close to the
// previous one to sit beside it starts below where that label ends.
std::string marker_lines(const std::vector<SvgMarker>& markers, const Axis& time) {
  constexpr double kClearance = 14;   // px between lines that lets labels stand side by side
  constexpr double kGlyphWidth = 6.5;  // px per character at 11 px, about
  std::vector<const SvgMarker*> ordered;
  for (const SvgMarker& marker : markers)
    if (std::isfinite(marker.seconds)) ordered.push_back(&marker);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const SvgMarker* a, const SvgMarker* b) { return a->seconds < b->seconds; });
  std::string out = "<g font-size=\"11\" fill=\"#444\">\n";
  double previous_x = -std::numeric_limits<double>::infinity();
  double previous_end = kTop;
  for (const SvgMarker* marker : ordered) {
    const double x = place(marker->seconds, time, kLeft, kRight);
    out += "<line x1=\"" + number(x) + "\" y1=\"" + number(kTop) + "\" x2=\"" + number(x) +
           "\" y2=\"" + number(kBottom) +
           "\" stroke=\"#555\" stroke-width=\"1\" stroke-dasharray=\"5,4\"/>\n";
    // Rotated a quarter turn back, the glyphs stand left of their baseline: 13 px clears them
    // of the line.
    const double label_x = x + 13;
    const double label_y = x - previous_x < kClearance ? previous_end + 8 : kTop + 6;
    out += text(label_x, label_y, marker->label, "end",
                " stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\" "
                "transform=\"rotate(-90 " + number(label_x) + " " + number(label_y) + ")\"");
    previous_x = x;
    previous_end = label_y + kGlyphWidth * static_cast<double>(marker->label.size());
  }
  return out + "</g>\n";
}

std::string legend(const SvgSeries& left, const SvgSeries& right) {
  std::string out = "<g font-size=\"13\" fill=\"#222\">\n";
  double x = kLeft;
  for (int side = 0; side < 2; ++side) {
    const SvgSeries& series = side == 0 ? left : right;
    const char* colour = side == 0 ? kLeftColour : kRightColour;
    const std::string y = number(kTop - 22);
    out += "<line x1=\"" + number(x) + "\" y1=\"" + y + "\" x2=\"" + number(x + 24) + "\" y2=\"" +
           y + "\" stroke=\"" + colour + "\" stroke-width=\"3\"/>\n";
    const std::string label = axis_title(series) + (side == 0 ? ", left axis" : ", right axis");
    out += text(x + 30, kTop - 18, label, "start");
    x += 30 + 7.5 * static_cast<double>(label.size()) + 30;  // 7.5 px: a 13 px glyph, about
  }
  return out + "</g>\n";
}

std::string chart(const std::string& title, const SvgSeries& left, const SvgSeries& right,
                  const std::vector<SvgMarker>& markers) {
  const Axis time = time_axis(left, right, markers);
  const Axis left_axis = value_axis(left);
  const Axis right_axis = value_axis(right);
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(kWidth) + "\" height=\"" +
      number(kHeight) + "\" viewBox=\"0 0 " + number(kWidth) + " " + number(kHeight) + "\" " +
      kFont + ">\n"
      "<title>" + escape(title) + "</title>\n"
      "<defs><clipPath id=\"plot\"><rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) +
      "\" width=\"" + number(kRight - kLeft) + "\" height=\"" + number(kBottom - kTop) +
      "\"/></clipPath></defs>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  out += text(kWidth / 2, 30, title, "middle", " font-size=\"17\" font-weight=\"bold\" fill=\"#111\"");
  out += legend(left, right);
  out += grid_and_time_axis(time, left_axis);
  out += value_axis_labels(left_axis, left, true);
  out += value_axis_labels(right_axis, right, false);
  out += "<g clip-path=\"url(#plot)\">\n";
  out += series_lines(left, time, left_axis, kLeftColour);
  out += series_lines(right, time, right_axis, kRightColour);
  out += "</g>\n";
  out += marker_lines(markers, time);
  out += "<rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" +
         number(kRight - kLeft) + "\" height=\"" + number(kBottom - kTop) +
         "\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>\n";
  return out + "</svg>\n";
}

}  // namespace

bool write_svg(const std::string& path, const std::string& title, const SvgSeries& left,
               const SvgSeries& right, const std::vector<SvgMarker>& markers,
               std::string* error) {
  return write_file(path, chart(title, left, right, markers), error);
}

}  // namespace bench
