// Unit tests for evwheel::Histogram (include/evwheel/histogram.hpp).
//
// The histogram keeps 8 linear sub-buckets per power of two of microseconds and reports a
// percentile as its bucket's upper bound (never above the largest value recorded).  So for a
// nearest-rank percentile whose exact value is v:
//   * v < 8 µs (one bucket per µs):  v <= reported < v + 1 µs;
//   * v >= 8 µs:                     v <= reported < v * 9/8 + 1 µs  (1/8 of an octave, ~13 %).
// check_bound() below encodes exactly that.
#include <doctest/doctest.h>

#include "evwheel/histogram.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using evwheel::Duration;
using evwheel::Histogram;
using namespace std::chrono_literals;

constexpr int64_t kUs = 1000;

// The reported value must be an upper bound of `exact` within the histogram's resolution.
void check_bound(Duration reported, Duration exact) {
  CAPTURE(reported.count());
  CAPTURE(exact.count());
  CHECK(reported >= exact);
  int64_t micros = exact.count() / kUs;
  if (micros < 8) {
    CHECK(reported.count() < (micros + 1) * kUs);
  } else {
    // Within 1/8 of the value (one sub-bucket) plus the sub-µs part of the bucket.
    CHECK(static_cast<double>(reported.count()) < static_cast<double>(exact.count()) * 1.125 + kUs);
  }
}

// The nearest-rank percentile of sorted values: the ceil(q * n)-th smallest (at least the 1st).
Duration exact_percentile(const std::vector<Duration>& sorted, std::size_t rank) {
  return sorted[std::max<std::size_t>(rank, 1) - 1];
}

}  // namespace

TEST_CASE("an empty histogram reports 0 for every percentile, max and count") {
  Histogram h;
  CHECK(h.count() == 0);
  CHECK(h.max() == Duration::zero());
  for (double q : {0.0, 0.5, 0.99, 1.0}) CHECK(h.percentile(q) == Duration::zero());
}

TEST_CASE("a single value is reported exactly by every percentile and by max") {
  for (Duration value : {Duration(1us), Duration(7us), Duration(250us), Duration(1ms), Duration(1234567ns),
                         Duration(3s)}) {
    CAPTURE(value.count());
    Histogram h;
    h.record(value);
    CHECK(h.count() == 1);
    CHECK(h.max() == value);
    // The bucket's upper bound is capped by the largest value seen: here the value itself.
    for (double q : {0.0, 0.01, 0.5, 0.99, 1.0}) CHECK(h.percentile(q) == value);
  }
}

TEST_CASE("percentiles of 1..1000 µs are within 1/8 of an octave above the exact value") {
  Histogram h;
  std::vector<Duration> sorted;
  for (int64_t i = 1; i <= 1000; ++i) {
    h.record(Duration(i * kUs));
    sorted.push_back(Duration(i * kUs));
  }
  CHECK(h.count() == 1000);
  CHECK(h.max() == 1000us);
  // Every rank: q = k / 1000 names exactly the k-th value.
  for (std::size_t k = 0; k <= 1000; ++k) {
    CAPTURE(k);
    check_bound(h.percentile(static_cast<double>(k) / 1000.0), exact_percentile(sorted, k));
  }
  // The usual ones, spelled as callers spell them.
  check_bound(h.percentile(0.5), 500us);
  check_bound(h.percentile(0.9), 900us);
  check_bound(h.percentile(0.99), 990us);
  check_bound(h.percentile(0.999), 999us);
  CHECK(h.percentile(1.0) == 1000us);
  CHECK(h.percentile(0.0) == h.percentile(0.001));  // q = 0 is the smallest value
  // q outside 0..1 is clamped.
  CHECK(h.percentile(-1.0) == h.percentile(0.0));
  CHECK(h.percentile(2.0) == 1000us);
  // Percentiles never decrease with q.
  Duration last = Duration::zero();
  for (int k = 0; k <= 1000; ++k) {
    Duration p = h.percentile(k / 1000.0);
    CHECK(p >= last);
    last = p;
  }
}

TEST_CASE("percentile(q) names the ceil(q * n)-th value even where q * n is inexact in binary") {
  // 0.07 * 100 == 7.000000000000001 in double; the 7th of 1..100 µs is 7 µs, whose bucket's
  // upper bound is 7.999 µs — not the 8th value's bucket (8.999 µs).
  Histogram h;
  std::vector<Duration> sorted;
  for (int64_t i = 1; i <= 100; ++i) {
    h.record(Duration(i * kUs));
    sorted.push_back(Duration(i * kUs));
  }
  for (std::size_t k = 0; k <= 100; ++k) {
    CAPTURE(k);
    check_bound(h.percentile(static_cast<double>(k) / 100.0), exact_percentile(sorted, k));
    // (k - 0.5) / 100 names the k-th value without any rounding doubt.
    if (k > 0)
      CHECK(h.percentile(static_cast<double>(k) / 100.0).count() ==
            h.percentile((static_cast<double>(k) - 0.5) / 100.0).count());
  }
  CHECK(h.percentile(0.07).count() == 7999);
}

TEST_CASE("random durations from 8 µs to hours: percentiles stay within 1/8 of an octave") {
  std::mt19937_64 rng(77);
  std::uniform_real_distribution<double> log_us(std::log(8.0), std::log(4.0 * 3600e6));
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    Histogram h;
    std::vector<Duration> values;
    std::size_t n = 1 + static_cast<std::size_t>(rng() % 5000);
    for (std::size_t i = 0; i < n; ++i) {
      auto ns = static_cast<int64_t>(std::exp(log_us(rng)) * 1000.0) + static_cast<int64_t>(rng() % 1000);
      values.push_back(Duration(ns));
      h.record(Duration(ns));
    }
    std::sort(values.begin(), values.end());
    CHECK(h.count() == n);
    CHECK(h.max() == values.back());
    for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
      CAPTURE(q);
      auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
      check_bound(h.percentile(q), exact_percentile(values, rank));
    }
    CHECK(h.percentile(1.0) == values.back());
  }
}

TEST_CASE("max() is the largest value recorded, exact to the nanosecond") {
  Histogram h;
  h.record(5ms);
  h.record(Duration(12345678));
  h.record(1ms);
  CHECK(h.max() == Duration(12345678));
  CHECK(h.count() == 3);
}

TEST_CASE("merge adds the other histogram's counts and keeps the larger max") {
  Histogram a, b, all;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; ++i) {
    Duration v(static_cast<int64_t>(rng() % 50'000'000));  // 0 .. 50 ms
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  b.record(2s);
  all.record(2s);
  Histogram merged = a;
  merged.merge(b);
  CHECK(merged.count() == all.count());
  CHECK(merged.count() == a.count() + b.count());
  CHECK(merged.max() == 2s);
  for (double q : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0}) {
    CAPTURE(q);
    CHECK(merged.percentile(q) == all.percentile(q));
  }
  // The source is unchanged; merging an empty histogram changes nothing.
  CHECK(b.max() == 2s);
  Histogram before = merged;
  merged.merge(Histogram());
  CHECK(merged.count() == before.count());
  CHECK(merged.percentile(0.5) == before.percentile(0.5));
  // Merging into an empty one copies.
  Histogram empty;
  empty.merge(a);
  CHECK(empty.count() == a.count());
  CHECK(empty.max() == a.max());
  CHECK(empty.percentile(0.5) == a.percentile(0.5));
}

TEST_CASE("since() holds exactly the samples recorded after the earlier copy") {
  Histogram h, later_only;
  std::mt19937_64 rng(9);
  for (int i = 0; i < 2000; ++i) h.record(Duration(static_cast<int64_t>(rng() % 9'000'000)));
  const Histogram earlier = h;
  for (int i = 0; i < 1000; ++i) {
    Duration v(static_cast<int64_t>(rng() % 40'000'000));
    h.record(v);
    later_only.record(v);
  }
  Histogram delta = h.since(earlier);
  CHECK(delta.count() == 1000);
  CHECK(delta.sum() == later_only.sum());
  for (double q : {0.0, 0.5, 0.9, 0.99}) {
    CAPTURE(q);
    CHECK(delta.percentile(q) == later_only.percentile(q));
  }
  // Its max is a bound on the later samples: never below the true one, never above h's.
  CHECK(delta.max() >= later_only.max());
  CHECK(delta.max() <= h.max());
  CHECK(h.since(h).count() == 0);
  CHECK(h.since(h).max() == Duration::zero());
  // Not a later state: counts that would go negative are dropped, not wrapped.
  CHECK(earlier.since(h).count() == 0);
}

TEST_CASE("zero and negative durations are recorded as 0") {
  Histogram h;
  h.record(Duration::zero());
  CHECK(h.count() == 1);
  CHECK(h.max() == Duration::zero());
  CHECK(h.percentile(0.5) == Duration::zero());
  h.record(-5ms);  // a clock step backwards must not corrupt the histogram
  CHECK(h.count() == 2);
  CHECK(h.max() == Duration::zero());
  CHECK(h.percentile(1.0) == Duration::zero());
  h.record(Duration::min());
  CHECK(h.count() == 3);
  CHECK(h.percentile(1.0) == Duration::zero());

  h.record(1ms);
  CHECK(h.percentile(0.5) < 1us);  // the zeros' bucket: below 1 µs
  CHECK(h.percentile(1.0) == 1ms);
}

TEST_CASE("durations of hours and days are reported within the resolution; far beyond, no crash") {
  Histogram h;
  h.record(1h);
  h.record(2h);
  h.record(3h);
  CHECK(h.max() == 3h);
  check_bound(h.percentile(0.0), 1h);
  check_bound(h.percentile(0.5), 2h);
  CHECK(h.percentile(1.0) == 3h);

  // 2^40 µs (~12.7 days): the top of the documented range.
  Histogram top;
  Duration edge((int64_t{1} << 40) * kUs);
  top.record(1ms);
  top.record(edge);
  CHECK(top.max() == edge);
  CHECK(top.percentile(1.0) == edge);
  check_bound(top.percentile(0.5), 1ms);

  // Far beyond the range: recorded in the last bucket, max() still exact, nothing overflows.
  Histogram huge;
  huge.record(Duration::max());
  huge.record(Duration::max());
  CHECK(huge.count() == 2);
  CHECK(huge.max() == Duration::max());
  Duration p = huge.percentile(1.0);
  CHECK(p > edge);
  CHECK(p <= Duration::max());
}

TEST_CASE("clear() empties the histogram, which then records afresh") {
  Histogram h;
  for (int i = 1; i <= 100; ++i) h.record(Duration(i * kUs));
  h.clear();
  CHECK(h.count() == 0);
  CHECK(h.max() == Duration::zero());
  CHECK(h.percentile(0.5) == Duration::zero());
  CHECK(h.percentile(1.0) == Duration::zero());
  h.record(40us);
  CHECK(h.count() == 1);
  CHECK(h.percentile(0.0) == 40us);
  CHECK(h.max() == 40us);
}
