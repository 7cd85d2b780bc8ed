// The MoE layer tests' common pieces (moe_test_layer.h).
#include "moe_test_layer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "test_data.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::testing {

std::mt19937_64 fresh_rng() { return std::mt19937_64(std::random_device{}()); }

DeviceBuffer prepack_on_device(reference::QuantizedExperts const& experts, std::vector<uint16_t> const& bf16_scales) {
  DeviceBuffer weights(reference::pack_offset_binary(experts)), scales(bf16_scales), packed;
  Status const status = prepack_to_new_buffer(weights.get(), scales.get(), experts.shape, &packed);
  EXPECT_TRUE(status.ok()) << status.to_string();
  return packed;
}


// The exact-scale layout from the experts' own e4m3 group and fp32 channel scales.
DeviceBuffer prepack_exact_on_device(reference::QuantizedExperts const& experts) {
  DeviceBuffer weights(reference::pack_offset_binary(experts)), group(experts.group_scale),
      channel(experts.channel_scale), packed(packed_weights_bytes(experts.shape, PackedLayout::kExactScales));
  PrepackArgs args;
  args.shape = experts.shape;
  args.weights = weights.get();
  args.scale_format = ScaleFormat::kFP8WithChannelScale;
  args.group_scales = group.get();
  args.channel_scales = channel.as<float>();
  args.packed = packed.get();
  args.packed_bytes = packed.bytes();
  args.layout = PackedLayout::kExactScales;
  Status const status = prepack_weights(args);
  EXPECT_TRUE(status.ok()) << status.to_string();
  return packed;
}

std::unique_ptr<Layer> make_layer(MoeShape shape, std::mt19937_64& rng, PackedLayout layout) {
  auto layer = std::make_unique<Layer>();
  layer->shape = shape;
  layer->layout = layout;
  std::vector<uint16_t> scales1, scales2;
  layer->weights.gemm1 = testing::random_experts({shape.num_local_experts, 2 * shape.inter, shape.hidden, 128}, rng,
                                                 &scales1);
  layer->weights.gemm2 = testing::random_experts({shape.num_local_experts, shape.hidden, shape.inter, 128}, rng,
                                                 &scales2);
  if (layout == PackedLayout::kExactScales) {
    reference::hold_exact_scales(&layer->weights.gemm1);
    reference::hold_exact_scales(&layer->weights.gemm2);
    layer->gemm1 = prepack_exact_on_device(layer->weights.gemm1);
    layer->gemm2 = prepack_exact_on_device(layer->weights.gemm2);
  } else {
    layer->gemm1 = prepack_on_device(layer->weights.gemm1, scales1);
    layer->gemm2 = prepack_on_device(layer->weights.gemm2, scales2);
  }
  if (shape.num_local_experts < shape.num_experts) {  // this rank holds the first local experts
    layer->expert_map.assign(shape.num_experts, -1);
    std::iota(layer->expert_map.begin(), layer->expert_map.begin() + shape.num_local_experts, 0);
    layer->expert_map_device = DeviceBuffer(layer->expert_map);
  }
  return layer;
}


Inputs make_inputs(MoeShape const& shape, int64_t tokens, bool by_logits, bool fp16, std::mt19937_64& rng) {
  Inputs in;
  in.tokens = tokens;
  in.by_logits = by_logits;
  random_hidden_states(size_t(tokens) * shape.hidden, fp16, rng, &in.hidden_bits, &in.hidden);
  if (by_logits) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    in.logits.resize(size_t(tokens) * shape.num_experts);
    for (auto& x : in.logits) x = normal(rng);
    in.topk = reference::topk_softmax(in.logits, tokens, shape.num_experts, shape.top_k, true);
  } else {
    // Skewed precomputed routing: four hot experts, weights normalised.
    in.topk.ids.resize(size_t(tokens) * shape.top_k);
    in.topk.weights.resize(in.topk.ids.size());
    std::uniform_real_distribution<float> unit(0.05f, 1.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<double> weights(shape.num_experts, 1.0);
      for (int e = 0; e < std::min(4, shape.num_experts); ++e) weights[e] = 20.0;
      float sum = 0;
      for (int j = 0; j < shape.top_k; ++j) {
        std::discrete_distribution<int> pick(weights.begin(), weights.end());
        int const e = pick(rng);
        weights[e] = 0.0;
        in.topk.ids[t * shape.top_k + j] = e;
        sum += (in.topk.weights[t * shape.top_k + j] = unit(rng));
      }
      for (int j = 0; j < shape.top_k; ++j) in.topk.weights[t * shape.top_k + j] /= sum;
    }
  }
  return in;
}


DeviceInputs upload(Layer const& layer, Inputs const& in, int64_t max_tokens) {
  DeviceInputs d;
  d.hidden = DeviceBuffer(in.hidden_bits);
  if (in.by_logits) {
    d.logits = DeviceBuffer(in.logits);
  } else {
    d.topk_ids = DeviceBuffer(in.topk.ids);
    d.topk_weights = DeviceBuffer(in.topk.weights);
  }
  d.out = DeviceBuffer(size_t(std::max<int64_t>(max_tokens, 1)) * layer.shape.hidden * 2);
  d.workspace = DeviceBuffer(moe_workspace_bytes(layer.shape, max_tokens));
  return d;
}

MoeForwardArgs forward_args(Layer const& layer, Inputs const& in, DeviceInputs const& d, bool fp16,
                            bool weight_on_input) {
  MoeForwardArgs a;
  a.shape = layer.shape;
  a.gemm1_weights = layer.gemm1.get();
  a.gemm2_weights = layer.gemm2.get();
  a.weight_layout = layer.layout;
  a.num_tokens = in.tokens;
  a.hidden = d.hidden.get();
  a.act_type = fp16 ? ActivationType::kFP16 : ActivationType::kBF16;
  if (in.by_logits) {
    a.router_logits = d.logits.get();
  } else {
    a.topk_ids = d.topk_ids.as<int32_t>();
    a.topk_weights = d.topk_weights.as<float>();
  }
  a.expert_map = layer.expert_map.empty() ? nullptr : layer.expert_map_device.as<int32_t>();
  a.apply_router_weight_on_input = weight_on_input;
  a.out = d.out.get();
  a.workspace = d.workspace.get();
  a.workspace_bytes = d.workspace.bytes();
  return a;
}

std::vector<float> download_output(DeviceInputs const& d, int64_t tokens, int hidden, bool fp16) {
  auto const bits = d.out.to_host<uint16_t>();
  std::vector<float> out(size_t(tokens) * hidden);
  for (size_t i = 0; i < out.size(); ++i) out[i] = fp16 ? fp16_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

std::vector<int64_t> sample_tokens(int64_t tokens, std::mt19937_64& rng) {
  std::vector<int64_t> sample;
  if (tokens <= 8) {
    sample.resize(tokens);
    std::iota(sample.begin(), sample.end(), 0);
    return sample;
  }
  sample = {0, tokens - 1};
  std::uniform_int_distribution<int64_t> pick(1, tokens - 2);
  while (sample.size() < 8) sample.push_back(pick(rng));
  return sample;
}

// The reference for the sampled tokens, on the host's threads.
std::vector<float> reference_tokens(Layer const& layer, Inputs const& in, std::vector<int64_t> const& tokens, bool fp16,
                                    bool weight_on_input) {
  return reference::moe_layer(in.hidden, in.topk, layer.shape.top_k, layer.weights, layer.expert_map, weight_on_input,
                              fp16, tokens, host_threads());
}

void expect_tokens_match(std::vector<float> const& gpu, int64_t hidden_size, std::vector<int64_t> const& tokens,
                         std::vector<float> const& ref, double tolerance) {
  double worst = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    double err = 0, norm = 0, max_ref = 0, max_err = 0;
    for (int64_t c = 0; c < hidden_size; ++c) {
      double const g = gpu[tokens[i] * hidden_size + c], r = ref[i * hidden_size + c];
      ASSERT_TRUE(std::isfinite(g)) << "token " << tokens[i] << " channel " << c;
      err += (g - r) * (g - r);
      norm += r * r;
      max_ref = std::max(max_ref, std::fabs(r));
      max_err = std::max(max_err, std::fabs(g - r));
    }
    if (norm == 0) {  // no local expert: the output must be exactly zero
      EXPECT_EQ(max_err, 0.0) << "token " << tokens[i];
      continue;
    }
    worst = std::max(worst, std::sqrt(err / norm));
    EXPECT_LE(std::sqrt(err / norm), tolerance) << "token " << tokens[i];
    // One output element may carry a flipped e4m3 rounding of a large intermediate term (the GPU's SiLU runs on the
    // special function unit's approximations; an e4m3 step is up to 1/8 of the value): at small H and I that term
    // can be most of the element. Seen once in ~80 runs at H 208, I 144: 0.172 of max_ref under a 0.15 bound.
    EXPECT_LE(max_err, 4 * tolerance * max_ref) << "token " << tokens[i];
  }
  std::printf("  worst per-token relative error %.2e (limit %.0e)\n", worst, tolerance);
}

void run_and_check(Layer const& layer, int64_t tokens, bool by_logits, bool fp16, bool weight_on_input,
                   std::mt19937_64& rng, double tolerance) {
  Inputs const in = make_inputs(layer.shape, tokens, by_logits, fp16, rng);
  DeviceInputs d = upload(layer, in, tokens);
  ASSERT_CUDA(cudaMemset(d.out.get(), 0xFF, d.out.bytes()));  // poison: NaN in bf16 and fp16
  ASSERT_OK(moe_forward(forward_args(layer, in, d, fp16, weight_on_input)));
  ASSERT_CUDA(cudaDeviceSynchronize());
  auto const gpu = download_output(d, tokens, layer.shape.hidden, fp16);
  for (float v : gpu) ASSERT_TRUE(std::isfinite(v)) << "unwritten or non-finite output";
  auto const sample = sample_tokens(tokens, rng);
  expect_tokens_match(gpu, layer.shape.hidden, sample, reference_tokens(layer, in, sample, fp16, weight_on_input),
                      tolerance);
}

}  // namespace w4a8moe::testing
