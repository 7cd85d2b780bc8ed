// Synthetic weights and activations with the statistics that make LLM quantization hard: heavy-tailed weights with
// per-output-channel spread and a few outlier input channels, hidden states with a few large fixed channels. Every
// value is drawn from a counter-based generator keyed by (seed, stream, row), so results do not depend on the
// number of threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace w4a8moe::accuracy {

// The distribution parameters, for the report.
std::string weight_statistics_description();
std::string hidden_state_statistics_description();
std::string intermediate_statistics_description();

// One weight matrix [rows, cols] as bf16 bits: W[r, c] = base * row_scale[r] * col_scale[c] * t, with t Student-t
// (8 degrees of freedom), row_scale lognormal and col_scale 1 except four input channels of 5-20x.
std::vector<uint16_t> realistic_weights(int64_t rows, int64_t cols, uint64_t seed, uint64_t stream);

// Hidden states [tokens, width], values representable in bf16: per-channel lognormal spread, a per-token
// lognormal scale, and six channels of 10-30x magnitude with a fixed sign per channel (the outlier channels of LLM
// hidden states).
std::vector<float> realistic_hidden_states(int64_t tokens, int width, uint64_t seed);

// Down-projection inputs [rows, width], representable in bf16: SiLU(g) * u of Gaussian gate and up
// pre-activations with per-channel spread and a few channels of 10-20x.
std::vector<float> realistic_intermediate_states(int64_t rows, int width, uint64_t seed);

// Router logits [tokens, experts], standard normal.
std::vector<float> router_logits(int64_t tokens, int experts, uint64_t seed);

}  // namespace w4a8moe::accuracy
