#include "gpt_oss_layer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "common/status_message.h"
#include "reference/gpt_oss.h"
#include "reference/mxfp4.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::tools {
namespace {

// Expert by expert over `threads` threads: rows x cols weights N(0, 1/sqrt(cols)) to MXFP4 blocks and scales.
void random_mxfp4(int experts, int rows, int cols, uint64_t seed, int threads, std::vector<uint8_t>* blocks,
                  std::vector<uint8_t>* scales) {
  size_t const per_expert = size_t(rows) * cols;
  blocks->assign(size_t(experts) * per_expert / 2, 0);
  scales->assign(size_t(experts) * per_expert / reference::kMxfp4BlockSize, 0);
  parallel_for(experts, 1, threads, [&](int64_t first, int64_t end) {
    std::vector<float> w(per_expert);
    for (int64_t e = first; e < end; ++e) {
      std::mt19937_64 rng(seed * 1000003 + uint64_t(e) * 7919 + uint64_t(rows));
      std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(float(cols)));
      for (float& x : w) x = normal(rng);
      reference::quantize_mxfp4(w.data(), rows, cols, blocks->data() + size_t(e) * per_expert / 2,
                                scales->data() + size_t(e) * per_expert / reference::kMxfp4BlockSize);
    }
  });
}

Status prepack_mxfp4(std::vector<uint8_t> const& blocks, std::vector<uint8_t> const& scales,
                     ExpertWeightShape const& shape, DeviceBuffer* packed) {
  DeviceBuffer blocks_device(blocks), scales_device(scales);
  if (!blocks_device.ok() || !scales_device.ok()) {
    return Status(StatusCode::kCudaError, "out of device memory for the MXFP4 experts");
  }
  return prepack_to_new_buffer(blocks_device.get(), scales_device.get(), shape, packed, PackedLayout::kMxfp4);
}

std::vector<float> bf16_values(std::vector<uint16_t> const& bits) {
  std::vector<float> values(bits.size());
  std::transform(bits.begin(), bits.end(), values.begin(), bf16_to_float);
  return values;
}

}  // namespace

void make_random_gpt_oss_layer(MoeShape const& shape, uint64_t seed, int threads, Mxfp4LayerExperts* experts) {
  int const e = shape.num_local_experts, h = shape.hidden, inter = shape.inter;
  experts->num_experts = e;
  experts->hidden_size = h;
  experts->intermediate_size = inter;
  random_mxfp4(e, 2 * inter, h, seed, threads, &experts->gemm1_blocks, &experts->gemm1_scales);
  random_mxfp4(e, h, inter, seed + 1, threads, &experts->gemm2_blocks, &experts->gemm2_scales);
  std::mt19937_64 rng(seed + 2);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  experts->gemm1_bias.resize(size_t(e) * 2 * inter);
  experts->gemm2_bias.resize(size_t(e) * h);
  for (auto* bias : {&experts->gemm1_bias, &experts->gemm2_bias}) {
    for (uint16_t& b : *bias) b = float_to_bf16(normal(rng));
  }
}

Status pack_gpt_oss_layer(Mxfp4LayerExperts const& experts, PackedGptOssLayer* packed) {
  Mxfp4LayerExperts ordered = experts;
  gate_up_in_layer_order(&ordered);
  int const e = experts.num_experts, h = experts.hidden_size, inter = experts.intermediate_size;
  W4A8_RETURN_IF_ERROR(prepack_mxfp4(ordered.gemm1_blocks, ordered.gemm1_scales, {e, 2 * inter, h, kGroupSize},
                                     &packed->gemm1));
  W4A8_RETURN_IF_ERROR(prepack_mxfp4(ordered.gemm2_blocks, ordered.gemm2_scales, {e, h, inter, kGroupSize},
                                     &packed->gemm2));
  packed->gemm1_bias = DeviceBuffer(bf16_values(ordered.gemm1_bias));
  packed->gemm2_bias = DeviceBuffer(bf16_values(ordered.gemm2_bias));
  if (!packed->gemm1_bias.ok() || !packed->gemm2_bias.ok()) {
    return Status(StatusCode::kCudaError, "out of device memory for the expert biases");
  }
  return Status::Ok();
}

Mxfp4LayerExperts select_experts(Mxfp4LayerExperts const& experts, std::vector<int> const& ids) {
  int const h = experts.hidden_size, inter = experts.intermediate_size;
  Mxfp4LayerExperts out;
  out.layer = experts.layer;
  out.num_experts = int(ids.size());
  out.hidden_size = h;
  out.intermediate_size = inter;
  // Expert e's rows of `from` (`rows` of `row_elements` each) appended to `to`.
  auto append = [](auto const& from, int e, size_t rows, size_t row_elements, auto* to) {
    auto const first = from.begin() + size_t(e) * rows * row_elements;
    to->insert(to->end(), first, first + rows * row_elements);
  };
  for (int e : ids) {
    append(experts.gemm1_blocks, e, 2 * size_t(inter), size_t(h) / 2, &out.gemm1_blocks);
    append(experts.gemm1_scales, e, 2 * size_t(inter), size_t(h) / 32, &out.gemm1_scales);
    append(experts.gemm1_bias, e, 2 * size_t(inter), 1, &out.gemm1_bias);
    append(experts.gemm2_blocks, e, size_t(h), size_t(inter) / 2, &out.gemm2_blocks);
    append(experts.gemm2_scales, e, size_t(h), size_t(inter) / 32, &out.gemm2_scales);
    append(experts.gemm2_bias, e, size_t(h), 1, &out.gemm2_bias);
  }
  return out;
}

std::vector<float> gpt_oss_reference_tokens(Mxfp4LayerExperts const& experts, std::vector<float> const& hidden,
                                            reference::TopK const& topk, int top_k, double swiglu_limit,
                                            bool half_output, std::vector<int64_t> const& tokens,
                                            std::vector<int32_t> const& expert_map) {
  // The local experts the tokens reach, renumbered 0.. in a copy of the routing. A slot of another rank's expert
  // gets weight 0 (its output, bias included, then adds nothing) on the first expert reached.
  std::map<int, int> used;
  auto local_of = [&](int id) { return expert_map.empty() ? id : expert_map[size_t(id)]; };
  bool remote_slots = false;
  for (int64_t t : tokens) {
    for (int j = 0; j < top_k; ++j) {
      int const local = local_of(topk.ids[size_t(t) * top_k + j]);
      if (local >= 0) used.emplace(local, 0);
      remote_slots = remote_slots || local < 0;
    }
  }
  if (remote_slots && used.empty()) used.emplace(0, 0);
  std::vector<int> ids;
  for (auto& [id, index] : used) {
    index = int(ids.size());
    ids.push_back(id);
  }
  Mxfp4LayerExperts const r = select_experts(experts, ids);
  reference::GptOssExperts const reached = reference::dequantize_gpt_oss_experts(
      r.num_experts, r.hidden_size, r.intermediate_size, r.gemm1_blocks.data(), r.gemm1_scales.data(),
      r.gemm1_bias.data(), r.gemm2_blocks.data(), r.gemm2_scales.data(), r.gemm2_bias.data());
  reference::TopK local = topk;
  for (int64_t t : tokens) {
    for (int j = 0; j < top_k; ++j) {
      size_t const slot = size_t(t) * top_k + j;
      int const expert = local_of(topk.ids[slot]);
      local.ids[slot] = expert >= 0 ? used[expert] : 0;
      if (expert < 0) local.weights[slot] = 0.0f;
    }
  }
  return reference::gpt_oss_layer_as_staged(hidden, local, top_k, reached, swiglu_limit, half_output, tokens,
                                            host_threads());
}

}  // namespace w4a8moe::tools
