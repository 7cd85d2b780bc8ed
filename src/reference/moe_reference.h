// Plain C++ reference of the MoE layer, step by step as the kernels do it, so tests can check every
// stage and the whole layer. No CUDA.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/quantized_experts.h"

namespace w4a8moe::reference {

struct TopK {
  std::vector<int32_t> ids;     // [T, k] global expert ids
  std::vector<float> weights;   // [T, k]
};

// Softmax over each token's logits [T, E] (fp32), then the k largest probabilities in descending order; ties go to
// the lower expert id. With renormalize the k weights are divided by their sum.
TopK topk_softmax(std::vector<float> const& logits, int64_t tokens, int experts, int k, bool renormalize);

// Rows of the local experts, grouped by expert, each expert's rows in (token, slot) order.
struct RoutingData {
  std::vector<int64_t> offsets;    // [E_local + 1]
  std::vector<int32_t> dest_row;   // [T * k]: the row of slot t * k + j, or -1 if its expert is not local
  std::vector<int32_t> row_slot;   // [rows]: the slot t * k + j each row came from (inverse of dest_row)
};

// expert_map: global id -> local id or -1; empty means the identity (all experts local). Ids outside
// [0, experts) are dropped like non-local ones.
RoutingData routing_data(std::vector<int32_t> const& topk_ids, int64_t tokens, int k, int experts, int local_experts,
                         std::vector<int32_t> const& expert_map);

// Per-row dynamic fp8 quantisation: scale = max|x| / 448 and q = e4m3(x * (448 / max|x|)); an all-zero row gets
// scale 0 and q = 0. The kernels compute exactly these fp32 operations.
void quantize_row(float const* x, int n, uint8_t* q, float* scale);

// x rounded to bf16, or fp16 with half (the GEMMs' outputs and the layer's output).
float round_activation(float x, bool half);

// One row through expert e of w: out[n] = round(st * sc[e, n] * sum_k a[k] * e4m3(q * step)) (q * sg unrounded with
// w.exact_group_scale), summed in float64 and rounded to bf16 (fp16 with half_output). act: e4m3 bits [K]; out:
// [N]. out_abs, if given, receives |st * sc| * sum_k |a w|, the magnitude that bounds the kernel's accumulation
// error.
void expert_gemm_row(QuantizedExperts const& w, int e, uint8_t const* act, float token_scale, bool half_output,
                     float* out, float* out_abs = nullptr);

// SiLU(gate) * up in fp32 of one GEMM1 output row: gate = row[0, I), up = row[I, 2I).
void silu_mul(float const* gemm1_row, int inter, float* out);

struct MoeLayerWeights {
  QuantizedExperts gemm1;  // {E_local, 2I, H}: gate rows then up rows
  QuantizedExperts gemm2;  // {E_local, H, I}
};

// The layer for the listed tokens, mirroring the pipeline's roundings: activations quantised to e4m3 per row,
// GEMM outputs rounded to bf16 (or fp16 with half_output), SiLU(gate) * up in fp32, output rounded to the
// activation type. hidden: [T, H] values already representable in the activation type; expert_map as in
// routing_data (its size is the number of global experts). Returns [tokens.size(), H]; the tokens, each
// independent, spread over up to `threads` host threads (common/parallel_for.h), with the same values on any count.
std::vector<float> moe_layer(std::vector<float> const& hidden, TopK const& topk, int k, MoeLayerWeights const& weights,
                             std::vector<int32_t> const& expert_map, bool apply_router_weight_on_input,
                             bool half_output, std::vector<int64_t> const& tokens, int threads = 1);

}  // namespace w4a8moe::reference
