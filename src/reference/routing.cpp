#include "reference/routing.h"

#include <numeric>

namespace w4a8moe::reference {

std::vector<int64_t> uniform_routing_counts(int num_experts, int64_t tokens, int top_k, std::mt19937_64& rng) {
  std::vector<int64_t> counts(num_experts, 0);
  std::vector<int> experts(num_experts);
  std::iota(experts.begin(), experts.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int j = 0; j < top_k; ++j) {  // partial Fisher-Yates: the first top_k entries are a uniform draw
      std::uniform_int_distribution<int> pick(j, num_experts - 1);
      std::swap(experts[j], experts[pick(rng)]);
      ++counts[experts[j]];
    }
  }
  return counts;
}

std::vector<int64_t> skewed_routing_counts(int num_experts, int64_t tokens, int top_k, int hot_experts,
                                           double hot_weight, std::mt19937_64& rng) {
  std::vector<int64_t> counts(num_experts, 0);
  std::vector<double> weights(num_experts);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int e = 0; e < num_experts; ++e) weights[e] = e < hot_experts ? hot_weight : 1.0;
    for (int j = 0; j < top_k; ++j) {
      std::discrete_distribution<int> pick(weights.begin(), weights.end());
      int const e = pick(rng);
      ++counts[e];
      weights[e] = 0.0;  // without replacement
    }
  }
  return counts;
}

}  // namespace w4a8moe::reference
