// histogram — see include/evwheel/histogram.hpp.
#include "evwheel/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace evwheel {

// Values below 8 µs get a bucket each; above, an octave [2^k, 2^(k+1)) is split in 8.
unsigned Histogram::bucket_of(uint64_t micros) noexcept {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (micros < kSub) return static_cast<unsigned>(micros);
  unsigned octave = 63u - static_cast<unsigned>(__builtin_clzll(micros));  // >= kSubBits
  unsigned sub = static_cast<unsigned>(micros >> (octave - kSubBits)) & (kSub - 1);
  unsigned bucket = ((octave - kSubBits + 1) << kSubBits) + sub;
  return std::min(bucket, kBuckets - 1);
}

uint64_t Histogram::upper_bound_of(unsigned bucket) noexcept {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (bucket < kSub) return bucket;
  unsigned octave = (bucket >> kSubBits) + kSubBits - 1;
  uint64_t sub = bucket & (kSub - 1);
  return ((kSub + sub + 1) << (octave - kSubBits)) - 1;
}

namespace {
// A sum that stops at the largest value instead of overflowing (a sample of Duration::max()).
int64_t saturating_add(int64_t a, int64_t b) noexcept {
  return b > std::numeric_limits<int64_t>::max() - a ? std::numeric_limits<int64_t>::max() : a + b;
}
}  // namespace

void Histogram::record(Duration value) noexcept {
  int64_t ns = std::max<int64_t>(value.count(), 0);
  ++buckets_[bucket_of(static_cast<uint64_t>(ns) / 1000)];
  ++count_;
  max_ = std::max(max_, ns);
  sum_ = saturating_add(sum_, ns);
}

Duration Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return Duration::zero();
  // The ceil(q * n)-th value; the epsilon keeps 0.07 * 100 (7.000000000000001 in binary) at 7.
  auto rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_) - 1e-9));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      // A bucket's upper bound, but never above the largest value actually seen.
      auto bound = Duration(static_cast<int64_t>(upper_bound_of(b)) * 1000 + 999);
      return std::min(bound, Duration(max_));
    }
  }
  return Duration(max_);
}

void Histogram::merge(const Histogram& other) noexcept {
  for (unsigned b = 0; b < kBuckets; ++b) buckets_[b] += other.buckets_[b];
  count_ += other.count_;
  sum_ = saturating_add(sum_, other.sum_);
  max_ = std::max(max_, other.max_);
}

Histogram Histogram::since(const Histogram& earlier) const noexcept {
  Histogram delta;
  for (unsigned b = 0; b < kBuckets; ++b) {
    // A histogram that is not a later state of `earlier` yields no negative counts.
    delta.buckets_[b] = buckets_[b] >= earlier.buckets_[b] ? buckets_[b] - earlier.buckets_[b] : 0;
    delta.count_ += delta.buckets_[b];
    if (delta.buckets_[b] != 0)
      delta.max_ = std::min(static_cast<int64_t>(upper_bound_of(b)) * 1000 + 999, max_);
  }
  // Exact unless the sum saturated.
  delta.sum_ = sum_ >= earlier.sum_ ? sum_ - earlier.sum_ : 0;
  return delta;
}

}  // namespace evwheel
