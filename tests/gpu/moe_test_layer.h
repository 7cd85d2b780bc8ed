// The MoE layer tests' common pieces (moe_gpu_test.cu, moe_one_launch_gpu_test.cu): a layer's experts on the host
// (for the CPU reference) and packed on the device, fresh inputs, the layer's arguments, and the comparison with
// the reference. The tolerance is justified in moe_gpu_test.cu.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "reference/moe_reference.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::testing {

std::mt19937_64 fresh_rng();

// Experts packed on the device by prepack_to_new_buffer.
DeviceBuffer prepack_on_device(reference::QuantizedExperts const& experts, std::vector<uint16_t> const& bf16_scales);

// A layer's local experts, on the host (reference) and packed on the device.
struct Layer {
  MoeShape shape;
  PackedLayout layout = PackedLayout::kLookupTable;
  std::vector<int32_t> expert_map;  // empty: all experts local
  reference::MoeLayerWeights weights;
  DeviceBuffer gemm1, gemm2, expert_map_device;
};

// Random experts; a rank with fewer local than global experts holds the first ones. kExactScales packs the
// experts' e4m3 group and fp32 channel scales as they are, so the reference multiplies q * sg * sc unrounded.
std::unique_ptr<Layer> make_layer(MoeShape shape, std::mt19937_64& rng,
                                  PackedLayout layout = PackedLayout::kLookupTable);

// Hidden states, routing and the layer's output buffers for one call.
struct Inputs {
  int64_t tokens = 0;
  std::vector<float> hidden;  // values representable in the activation type
  std::vector<uint16_t> hidden_bits;
  std::vector<float> logits;  // [T, E] when routing by logits
  reference::TopK topk;       // the routing the reference uses
  bool by_logits = true;
};

// Normal hidden states with outlier channels; router logits, or skewed precomputed routing (four hot experts).
Inputs make_inputs(MoeShape const& shape, int64_t tokens, bool by_logits, bool fp16, std::mt19937_64& rng);

struct DeviceInputs {
  DeviceBuffer hidden, logits, topk_ids, topk_weights, out, workspace;
};

DeviceInputs upload(Layer const& layer, Inputs const& in, int64_t max_tokens);
MoeForwardArgs forward_args(Layer const& layer, Inputs const& in, DeviceInputs const& d, bool fp16,
                            bool weight_on_input = false);
std::vector<float> download_output(DeviceInputs const& d, int64_t tokens, int hidden, bool fp16);
// All tokens up to 8, else the first, the last and 6 random ones.
std::vector<int64_t> sample_tokens(int64_t tokens, std::mt19937_64& rng);
// The CPU reference for the sampled tokens.
std::vector<float> reference_tokens(Layer const& layer, Inputs const& in, std::vector<int64_t> const& tokens, bool fp16,
                                    bool weight_on_input);
// Per-token relative L2 error <= tolerance and every element within 4 tolerance of the token's largest output;
// tokens with no local expert exactly zero.
void expect_tokens_match(std::vector<float> const& gpu, int64_t hidden_size, std::vector<int64_t> const& tokens,
                         std::vector<float> const& ref, double tolerance = 6e-2);
// One call over a poisoned output, checked against the reference on sampled tokens.
void run_and_check(Layer const& layer, int64_t tokens, bool by_logits, bool fp16, bool weight_on_input,
                   std::mt19937_64& rng, double tolerance = 6e-2);

}  // namespace w4a8moe::testing
