// timers — make_plan() (see plan.hpp).
#include "plan.hpp"

#include <algorithm>

namespace bench {
namespace timers {

Plan make_plan(uint32_t n, uint32_t ops, unsigned reps, uint64_t seed, unsigned run) {
  Plan plan;
  plan.live = n;
  plan.batch = std::max<uint32_t>(1, n / 8);
  plan.total = n + plan.batch;
  plan.window = std::min(kWindow, plan.batch);
  const uint32_t batch = plan.batch;
  Rng rng(seed * 0x9E3779B97F4A7C15u ^ (uint64_t{n} << 8) ^ run);
  auto delay = [&rng] { return rng.below(kSpreadUs); };

  // a[0, batch) are the spare (unscheduled) timers, a[batch, total) the scheduled ones.
  std::vector<uint32_t> a(plan.total);
  for (uint32_t i = 0; i < plan.total; ++i) a[i] = i;
  rng.shuffle(a.data(), plan.total);

  plan.populate.reserve(n);
  for (uint32_t k = 0; k < n; ++k) plan.populate.push_back({a[batch + k], delay()});

  const uint32_t rounds = std::max<uint32_t>(1, ops / batch);
  plan.reps.resize(reps);
  for (Rep& rep : plan.reps) {
    rep.schedule.reserve(std::size_t{rounds} * batch);
    rep.cancel.reserve(std::size_t{rounds} * batch);
    for (uint32_t round = 0; round < rounds; ++round) {
      rng.shuffle(a.data(), batch);
      for (uint32_t j = 0; j < batch; ++j) rep.schedule.push_back({a[j], delay()});
      // All `total` are scheduled now: cancel `batch` random ones, which become the spares.
      for (uint32_t j = 0; j < batch; ++j) {
        std::swap(a[j], a[j + rng.below(plan.total - j)]);
        rep.cancel.push_back(a[j]);
      }
    }

    rep.refresh.reserve(ops);
    for (uint32_t k = 0; k < ops; ++k) rep.refresh.push_back(a[batch + rng.below(n)]);

    rng.shuffle(a.data(), batch);
    rep.pair.reserve(ops);
    for (uint32_t k = 0; k < ops; ++k) rep.pair.push_back({a[k % batch], delay()});
  }
  return plan;
}


}  // namespace timers
}  // namespace bench
