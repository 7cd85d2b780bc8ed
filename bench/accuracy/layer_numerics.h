// One MoE layer (routing, GEMM1, SiLU * up, GEMM2, weighted sum) computed on the CPU under different number
// formats, so that each format's error against the bf16 layer can be measured on the same weights, activations and
// routing.
//
// Every format runs the same pipeline, which mirrors the kernels' roundings (src/reference/moe_reference.h):
// activations quantised per the format, GEMM1 summed in float64, scaled and rounded to bf16, SiLU(gate) * up in
// fp32, quantised again, GEMM2 likewise, and the top-k weighted sum of the experts' outputs. The final sum is kept
// in float64 (the layer's bf16 output cast, the same for every format, is left out).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/moe_reference.h"

namespace w4a8moe::accuracy {

struct MoeModel {
  std::string name;
  int experts = 0;  // experts of the simulated layer (a few; the error does not depend on how many)
  int top_k = 0;
  int hidden = 0;   // H
  int inter = 0;    // I
};

// A layer's weights in every form the formats need, its hidden states and its routing.
struct LayerProblem {
  MoeModel model;
  int64_t tokens = 0;
  std::vector<uint16_t> gemm1_bf16;    // [E, 2I, H]: gate rows then up rows, bf16 bits (the unquantized layer)
  std::vector<uint16_t> gemm2_bf16;    // [E, H, I]: down
  std::vector<uint16_t> gemm1_scales;  // [E, 2I, H/128] bf16 RTN group scales (the W4A8 checkpoint's weight_scale)
  std::vector<uint16_t> gemm2_scales;  // [E, H, I/128]
  reference::MoeLayerWeights int4;     // RTN q and the lookup-table layout's split of the scales above
  std::vector<float> hidden;           // [T, H], bf16 values
  reference::TopK topk;                // softmax top-k of random logits, renormalised
};

// Draws the layer (realistic_data.h) and quantizes its experts with RoundToNearestQuantizer.
LayerProblem make_layer_problem(MoeModel const& model, int64_t tokens, uint64_t seed);

enum class WeightNumerics {
  kBF16,                     // the bf16 weights themselves
  kInt4BF16Scales,           // q * s, s the bf16 group scale (W4A16, or a kernel applying s in fp32)
  kInt4SplitScales,          // e4m3(q * s / sc) * sc: the lookup-table layout's tables, each entry rounded once
  kInt4SplitScalesExactQSg,  // q * sg * sc: the split with sg = e4m3(s / sc), product not rounded
  kInt4DoubleRoundingLut,    // e4m3(q * sg) * sc: the tables before bench/NOTES.md §51, q times the rounded sg
  kInt4SearchedChannelScale, // e4m3(q * s / sc') * sc', sc' = sc * 2^(j/16) with the j in [0, 16) that minimises the
                             // channel's squared weight error (a prepack option studied in §51, not built)
  kFP8PerChannel,            // e4m3(W / sc) * sc, sc = max_k |W[n, k]| / 448 (W8A8)
  kMxfp4,                    // e2m1 * 2^s, one e8m0 s per 32 inputs: the bf16 weights quantised the OCP MX way
                             // (reference::quantize_mxfp4); what the MXFP4 kernels multiply, unrounded
};

enum class ActivationNumerics {
  kBF16,         // bf16 values, no scale
  kFP8PerToken,  // e4m3(x / st), st = max|x| / 448 per row (dynamic per-token fp8)
  // GEMM1's input per token as kFP8PerToken; GEMM2's (SiLU(gate) * up) with one scale per row and 128 or 64 columns,
  // max / 448 over those: what GEMM1's epilogue can quantise tile by tile, without the whole row's maximum first
  kFP8Gemm2PerGroup128,
  kFP8Gemm2PerGroup64,
};

struct LayerNumerics {
  std::string name;
  WeightNumerics weights;
  ActivationNumerics activations;
  std::string description;
};

// The formats the report compares; the first is the bf16 layer every other is measured against.
std::vector<LayerNumerics> const& layer_numerics();

// The layer's output [T, H] under `numerics`, float64.
std::vector<double> layer_output(LayerProblem const& problem, LayerNumerics const& numerics);

// The project's own CPU reference of the W4A8 layer (reference::moe_layer, bf16 output) for the listed tokens,
// [tokens.size(), H]: the "w4a8" numerics above must reproduce it up to that final bf16 cast.
std::vector<float> project_reference_output(LayerProblem const& problem, std::vector<int64_t> const& tokens);

}  // namespace w4a8moe::accuracy
