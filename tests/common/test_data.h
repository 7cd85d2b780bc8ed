// Random problems for the tests: realistic quantized experts, fp8 activations, routing offsets.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "reference/mxfp4_experts.h"
#include "reference/quantized_experts.h"
#include "reference/routing.h"

namespace w4a8moe::testing {

using reference::uniform_routing_counts;

// Experts quantized the way a checkpoint is: q uniform in [-8, 7], bf16 group scales spread over two orders of
// magnitude (some channels much larger than others), then split into fp8 group scales and fp32 channel scales.
// With bf16_scales, which receives the checkpoint's scales [E, N, K/128], the experts are what prepacking those packs
// (the tables rounded once from the bf16 scales: table_step set); without, what prepacking the e4m3 group and fp32
// channel scales packs (tables e4m3(q * sg)).
reference::QuantizedExperts random_experts(ExpertWeightShape const& shape, std::mt19937_64& rng,
                                           std::vector<uint16_t>* bf16_scales = nullptr);

// MXFP4 experts as a checkpoint holds them (K a multiple of 32): weights N(0, 1) times a per-channel spread and a
// per-block factor of 2^-3..2^3 (so the four e8m0 scales of a 128-K group differ), quantised by
// reference::quantize_mxfp4; one block in 16 all zero (scale 2^-127, zero codes).
reference::Mxfp4Experts random_mxfp4_experts(ExpertWeightShape const& shape, std::mt19937_64& rng);

// Activations quantized per token: x ~ N(0, 1) with a few outlier columns, st = max|x| / 448, a = e4m3(x / st).
struct QuantizedActivations {
  std::vector<uint8_t> act;    // e4m3 bits [rows, padded_k(K)], zeros past K
  std::vector<float> scales;   // [rows]
};
QuantizedActivations random_activations(int64_t rows, int k, std::mt19937_64& rng);

// A layer's hidden states as the layer tests draw them: x ~ N(0, 1), every 61st value times 6 (a few outlier
// channels), rounded to fp16 or bf16; *bits receives the 16-bit values, *values the floats they hold.
void random_hidden_states(size_t count, bool fp16, std::mt19937_64& rng, std::vector<uint16_t>* bits,
                          std::vector<float>* values);

// Offsets [E + 1] from per-expert row counts, starting at `first_row`.
std::vector<int64_t> offsets_from_counts(std::vector<int64_t> const& counts, int64_t first_row = 0);

}  // namespace w4a8moe::testing
