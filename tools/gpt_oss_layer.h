// gpt-oss's layer for the command-line program: random MXFP4 experts made the way a checkpoint holds them (or a
// checkpoint's, gather_mxfp4_layer_experts), packed for moe_forward, and the CPU reference of sampled tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "common/device_buffer.h"
#include "reference/moe_reference.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

// Random experts in gpt-oss's checkpoint order (GEMM1 rows interleaved gate/up): weights N(0, 1/sqrt(in)) quantised
// to MXFP4 (reference::quantize_mxfp4), biases N(0, 0.1) in bf16. Uses `threads` host threads.
void make_random_gpt_oss_layer(MoeShape const& shape, uint64_t seed, int threads, Mxfp4LayerExperts* experts);

// The listed experts of a layer, in that order (an expert-parallel rank's, or those a few tokens reach); the
// router's tensors are left out.
Mxfp4LayerExperts select_experts(Mxfp4LayerExperts const& experts, std::vector<int> const& ids);

// The layer on the device as moe_forward takes it: GEMM1 in the layer's row order (gate_up_in_layer_order), both
// GEMMs in the MXFP4 layout, biases in fp32.
struct PackedGptOssLayer {
  DeviceBuffer gemm1, gemm2, gemm1_bias, gemm2_bias;
};
Status pack_gpt_oss_layer(Mxfp4LayerExperts const& experts, PackedGptOssLayer* packed);

// reference::gpt_oss_layer_as_staged for `tokens` on the host's threads, dequantising only the experts they reach:
// [tokens.size(), H]. `experts` are this rank's; expert_map (global id -> local id or -1, empty: all experts local)
// leaves other ranks' slots out, as the layer does under expert parallelism.
std::vector<float> gpt_oss_reference_tokens(Mxfp4LayerExperts const& experts, std::vector<float> const& hidden,
                                            reference::TopK const& topk, int top_k, double swiglu_limit,
                                            bool half_output, std::vector<int64_t> const& tokens,
                                            std::vector<int32_t> const& expert_map = {});

}  // namespace w4a8moe::tools
