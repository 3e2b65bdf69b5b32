// histogram — a fixed-size log-linear histogram of durations (RTTs, lateness) that records in
// O(1) without allocating.  Percentiles are reported as the upper bound of their bucket: at
// most 12.5 % high from 8 µs up (8 linear sub-buckets per octave), at most 1 µs high below.
#pragma once

#include <array>
#include <cstdint>

#include "evwheel/timer_wheel.hpp"

namespace evwheel {

class Histogram {
 public:
  // 8 sub-buckets per power of two of microseconds, up to 2^40 µs: 41 octaves.
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kBuckets = (41u << kSubBits) + 1;

  void record(Duration value) noexcept;
  // The value at quantile q (0 ..= 1), reported as its bucket's upper bound; 0 when empty.
  Duration percentile(double q) const noexcept;
  Duration max() const noexcept { return Duration(max_); }
  Duration sum() const noexcept { return Duration(sum_); }
  uint64_t count() const noexcept { return count_; }
  void merge(const Histogram& other) noexcept;
  // The samples recorded after `earlier` (a copy of this histogram taken before) — for
  // per-interval percentiles.  Its max is the largest bucket bound among those samples,
  // capped by this histogram's max.
  Histogram since(const Histogram& earlier) const noexcept;
  void clear() noexcept { *this = Histogram(); }

  // The raw buckets, for exporters: bucket b counts the values of whole microseconds
  // upper_bound_of(b - 1) + 1 ..= upper_bound_of(b) (bucket 0 holds values below 1 µs, the
  // last one everything from 2^40 µs up).  Every power of two of microseconds starts a bucket.
  uint64_t bucket(unsigned b) const noexcept { return buckets_[b]; }
  static uint64_t upper_bound_of(unsigned bucket) noexcept;

 private:
  static unsigned bucket_of(uint64_t micros) noexcept;

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  int64_t max_ = 0;  // nanoseconds
  int64_t sum_ = 0;  // nanoseconds, saturating (292 years of samples)
};

}  // namespace evwheel
