// Gathering one MoE layer of a gpt-oss MXFP4 checkpoint (checkpoint.h, Mxfp4LayerExperts): its tensors are already
// stacked over the experts, so each is checked and copied whole; the e8m0 scales are also read for NaN (255).
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>

#include "checkpoint/json_util.h"
#include "checkpoint/tensor_checks.h"
#include "reference/mxfp4.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace {

using reference::kMxfp4BlockBytes;
using reference::kMxfp4BlockSize;

// One tensor of the layer: its name after "model.layers.{L}.mlp.", dtype, shape, and where it goes.
struct LayerTensor {
  char const* suffix;
  DType dtype;
  std::vector<int64_t> shape;
  bool e8m0_scales;  // read for NaN (255)
  std::function<void(Tensor const&)> copy;
};

// A copy of a tensor's bytes into `destination`, sized to them.
template <class T>
std::function<void(Tensor const&)> copy_into(std::vector<T>* destination) {
  return [destination](Tensor const& tensor) {
    destination->resize(tensor.num_bytes / sizeof(T));
    std::memcpy(destination->data(), tensor.data, tensor.num_bytes);
  };
}

Status gather(Checkpoint const& checkpoint, ModelConfig const& config, int layer, Mxfp4LayerExperts* experts) {
  MoeConfig const& moe = config.moe;
  std::string const& source = checkpoint.path();
  if (!config.mxfp4 || moe.model_type != "gpt_oss") {
    return not_supported(source, ": the model config is not gpt-oss with its MXFP4 quantization_config (model_type ",
                         "\"", moe.model_type, "\"", config.mxfp4 ? "" : ", no quant_method \"mxfp4\"",
                         "); gather_mxfp4_layer_experts reads only those");
  }
  W4A8_RETURN_IF_ERROR(checkpoint::check_moe_layer(source, moe, layer));
  int64_t const e = moe.num_experts, h = moe.hidden_size, i = moe.intermediate_size;
  if (e < 1 || h < 1 || i < 1 || h % kMxfp4BlockSize != 0 || i % kMxfp4BlockSize != 0 ||
      2 * i > std::numeric_limits<int>::max()) {
    return not_supported(source, ": experts=", e, ", hidden_size=", h, ", intermediate_size=", i,
                         ": needs at least one expert and both sizes positive multiples of ", kMxfp4BlockSize,
                         " (the MXFP4 block), 2 * intermediate_size within int");
  }

  Mxfp4LayerExperts out;
  out.layer = layer;
  out.num_experts = int(e);
  out.hidden_size = int(h);
  out.intermediate_size = int(i);
  int64_t const h_blocks = h / kMxfp4BlockSize, i_blocks = i / kMxfp4BlockSize;
  LayerTensor const tensors[] = {
      {"experts.gate_up_proj_blocks", DType::kU8, {e, 2 * i, h_blocks, kMxfp4BlockBytes}, false,
       copy_into(&out.gemm1_blocks)},
      {"experts.gate_up_proj_scales", DType::kU8, {e, 2 * i, h_blocks}, true, copy_into(&out.gemm1_scales)},
      {"experts.gate_up_proj_bias", DType::kBF16, {e, 2 * i}, false, copy_into(&out.gemm1_bias)},
      {"experts.down_proj_blocks", DType::kU8, {e, h, i_blocks, kMxfp4BlockBytes}, false,
       copy_into(&out.gemm2_blocks)},
      {"experts.down_proj_scales", DType::kU8, {e, h, i_blocks}, true, copy_into(&out.gemm2_scales)},
      {"experts.down_proj_bias", DType::kBF16, {e, h}, false, copy_into(&out.gemm2_bias)},
      {"router.weight", DType::kBF16, {e, h}, false, copy_into(&out.router_weight)},
      {"router.bias", DType::kBF16, {e}, false, copy_into(&out.router_bias)},
  };
  checkpoint::TensorChecks const checks(checkpoint);
  std::string const prefix = concat("model.layers.", layer, ".mlp.");
  std::string const owner = concat("layer ", layer, " of gpt-oss");
  // Every tensor is found and checked before anything is allocated: each array is then a copy of a tensor the
  // files hold, whatever sizes config.json claims.
  Tensor const* found[std::size(tensors)] = {};
  for (size_t n = 0; n < std::size(tensors); ++n) {
    LayerTensor const& wanted = tensors[n];
    W4A8_RETURN_IF_ERROR(checks.find(prefix + wanted.suffix, owner, &found[n]));
    W4A8_RETURN_IF_ERROR(checks.expect(*found[n], {wanted.dtype}, wanted.shape));
    if (wanted.e8m0_scales) {
      auto const* scales = static_cast<uint8_t const*>(found[n]->data);
      for (size_t index = 0; index < found[n]->num_bytes; ++index) {
        if (scales[index] == reference::kE8m0Nan) {
          return checks.error(*found[n], concat("e8m0 scale ", index, " (flat index) is 255, which is NaN"));
        }
      }
    }
  }
  for (size_t n = 0; n < std::size(tensors); ++n) tensors[n].copy(*found[n]);
  *experts = std::move(out);
  return Status::Ok();
}

// Rows [E, 2I, row_elements] of T: row 2i -> i, 2i + 1 -> I + i within each expert.
template <class T>
void split_interleaved_rows(std::vector<T>* rows, int experts, int inter, size_t row_elements) {
  std::vector<T> const in = *rows;
  for (int e = 0; e < experts; ++e) {
    for (int i = 0; i < 2 * inter; ++i) {
      size_t const from = (size_t(e) * 2 * inter + i) * row_elements;
      size_t const to = (size_t(e) * 2 * inter + (i % 2) * inter + i / 2) * row_elements;
      std::memcpy(rows->data() + to, in.data() + from, row_elements * sizeof(T));
    }
  }
}

}  // namespace

void gate_up_in_layer_order(Mxfp4LayerExperts* experts) {
  int const e = experts->num_experts, inter = experts->intermediate_size;
  size_t const blocks = size_t(experts->hidden_size) / kMxfp4BlockSize;
  split_interleaved_rows(&experts->gemm1_blocks, e, inter, blocks * kMxfp4BlockBytes);
  split_interleaved_rows(&experts->gemm1_scales, e, inter, blocks);
  split_interleaved_rows(&experts->gemm1_bias, e, inter, 1);
}

Status gather_mxfp4_layer_experts(Checkpoint const& checkpoint, ModelConfig const& config, int layer,
                                  Mxfp4LayerExperts* experts) {
  if (experts == nullptr) return invalid_argument("gather_mxfp4_layer_experts: experts is null");
  return checkpoint::guard_exceptions(checkpoint.path(), [&] { return gather(checkpoint, config, layer, experts); });
}

}  // namespace w4a8moe
