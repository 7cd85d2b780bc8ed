// gpt-oss's MoE layer on the host, in float64 on its dequantised MXFP4 experts: the yardstick of an MXFP4 layer's
// error, and the definitions of its router, biases and clamped SwiGLU for the kernels to match.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/moe_reference.h"

namespace w4a8moe::reference {

// gpt-oss's routed experts dequantised to fp32, as its checkpoint lays them out (checkpoint.h, Mxfp4LayerExperts).
struct GptOssExperts {
  int num_experts = 0;        // E
  int hidden_size = 0;        // H
  int intermediate_size = 0;  // I
  std::vector<float> w1;      // [E, 2I, H]: row 2i gate channel i, row 2i + 1 up channel i
  std::vector<float> b1;      // [E, 2I]
  std::vector<float> w2;      // [E, H, I]
  std::vector<float> b2;      // [E, H]
};

// From the checkpoint's arrays: blocks and e8m0 scales as dequantize_mxfp4 takes them, biases as bf16 bits.
GptOssExperts dequantize_gpt_oss_experts(int num_experts, int hidden, int inter, uint8_t const* gemm1_blocks,
                                         uint8_t const* gemm1_scales, uint16_t const* gemm1_bias,
                                         uint8_t const* gemm2_blocks, uint8_t const* gemm2_scales,
                                         uint16_t const* gemm2_bias);

// gpt-oss's clamped SwiGLU of one channel: gate clamped to at most `limit`, up to [-limit, limit], then
// (up + 1) * gate * sigmoid(1.702 * gate).
double gpt_oss_swiglu(double gate, double up, double limit);

// gpt-oss's MoE layer in float64 on the dequantised weights, nothing else rounded: the yardstick of an MXFP4
// layer's error. Per token t (hidden [T, H], router logits [T, E] = hidden @ router^T + router bias): the k largest
// logits (ties to the lower id), their softmax as weights; per chosen expert h = w1 x + b1, a = gpt_oss_swiglu of
// each (gate, up) pair, y = w2 a + b2; out[t] = sum of weight * y. Returns [T, H].
std::vector<double> gpt_oss_moe_layer(std::vector<float> const& hidden, std::vector<float> const& logits,
                                      int64_t tokens, int k, GptOssExperts const& experts, double swiglu_limit);

// The same layer as the staged MXFP4 path computes it, for the listed tokens, mirroring its roundings: the hidden
// state quantised to e4m3 per token (moe_reference.h quantize_row), GEMM1 in float64 plus bias rounded to bf16 (fp16
// with half_output), the clamped SwiGLU in fp32, requantised per row, GEMM2 plus bias rounded likewise, the top-k
// weighted sum in fp32 rounded to the activation type. topk: the routing (renormalised top-k of the softmax, which
// is gpt-oss's softmax over the top-k logits), ids local. Returns [tokens.size(), H]; the tokens, each independent,
// spread over up to `threads` host threads as moe_layer's, with the same values on any count.
std::vector<float> gpt_oss_layer_as_staged(std::vector<float> const& hidden, TopK const& topk, int k,
                                           GptOssExperts const& experts, double swiglu_limit, bool half_output,
                                           std::vector<int64_t> const& tokens, int threads = 1);

}  // namespace w4a8moe::reference
