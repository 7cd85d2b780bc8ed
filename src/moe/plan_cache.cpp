#include "moe/plan_cache.h"

#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "common/device_info.h"

namespace w4a8moe::moe {
namespace {

// Every argument plan_moe reads (the options by MoePlanOptions::fields()), and the device's SM count.
struct PlanKey {
  MoeShape shape;
  int64_t tokens = 0, max_tokens = 0;
  MoePlanOptions options;
  int sm_count = 0;

  auto fields() const {
    return std::tuple_cat(std::tie(shape.num_experts, shape.num_local_experts, shape.top_k, shape.hidden,
                                   shape.inter, tokens, max_tokens, sm_count),
                          options.fields());
  }
  bool operator<(PlanKey const& other) const { return fields() < other.fields(); }
};

// A field added to MoeShape would change its size: name it in fields() above, or calls that differ in it would share
// a plan.
static_assert(sizeof(MoeShape) == 5 * sizeof(int), "MoeShape changed: PlanKey::fields() must name the new field");

// The remembered plans and the mutex that guards them.
struct RememberedPlans {
  std::mutex mutex;
  std::map<PlanKey, MoePlan> plans;
};

RememberedPlans& remembered() {
  static RememberedPlans instance;
  return instance;
}

}  // namespace

MoePlan remembered_plan_moe(MoeShape const& shape, int64_t tokens, int64_t max_tokens, MoePlanOptions const& options) {
  PlanKey key{shape, tokens, max_tokens, options, current_device_sm_count()};
  RememberedPlans& r = remembered();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto found = r.plans.find(key);
  if (found != r.plans.end()) return found->second;
  if (r.plans.size() >= kMaxRememberedPlans) r.plans.clear();
  MoePlan const plan = plan_moe(shape, tokens, max_tokens, options);
  r.plans.emplace(std::move(key), plan);
  return plan;
}

size_t remembered_plan_count() {
  RememberedPlans& r = remembered();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.plans.size();
}

}  // namespace w4a8moe::moe
