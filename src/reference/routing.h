// Synthetic routings for tests and benchmarks: rows per expert when each token picks top_k distinct experts.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace w4a8moe::reference {

// Each token picks top_k distinct experts uniformly at random.
std::vector<int64_t> uniform_routing_counts(int num_experts, int64_t tokens, int top_k, std::mt19937_64& rng);

// A few hot experts: experts 0 .. hot_experts-1 are `hot_weight` times as likely to be picked as the others
// (weighted sampling without replacement per token).
std::vector<int64_t> skewed_routing_counts(int num_experts, int64_t tokens, int top_k, int hot_experts,
                                           double hot_weight, std::mt19937_64& rng);

}  // namespace w4a8moe::reference
