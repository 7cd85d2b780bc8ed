// PyTorch custom ops over the w4a8moe C++ API (include/w4a8moe/*.h), registered as torch.ops.w4a8moe.*.
//
// Every op checks its tensors (device, dtype, shape, contiguity, alignment) before the library sees a pointer,
// runs on the current CUDA stream of its tensors' device, and allocates outputs and workspaces through PyTorch's
// allocator, so the ops work under CUDA graph capture and inside torch.compile graphs (the fake implementations
// that let torch.compile trace them are in w4a8moe/_fake.py). A library Status error becomes a Python exception
// carrying the library's message: ValueError for an invalid argument, NotImplementedError for a request this
// build or device cannot serve, RuntimeError otherwise (the checks: tensor_checks.h).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <Python.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "tensor_checks.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

// `import w4a8moe._C` loads this library, which registers the ops; the module itself holds nothing.
PyMODINIT_FUNC PyInit__C() {  // extern "C", default visibility: the one symbol Python looks up
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

namespace w4a8moe_torch {
namespace {

cudaStream_t current_stream(c10::Device device) { return at::cuda::getCurrentCUDAStream(device.index()).stream(); }

at::Tensor workspace(size_t bytes, c10::Device device) {
  return at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(device));
}

// channel_scales as the library reads them, float32 [E, N], or nullptr. Which scale formats take them is the
// library's rule (prepack_weights), so they are passed on with any group scales for it to judge.
float const* channel_scales_pointer(TensorChecks const& c, std::optional<at::Tensor> const& channel_scales,
                                    w4a8moe::ExpertWeightShape const& s) {
  if (!channel_scales.has_value()) return nullptr;
  c.check(*channel_scales, "channel_scales", {at::kFloat}, {s.num_experts, s.n}, "[E, N]", 4);
  return channel_scales->data_ptr<float>();
}

// MXFP4 weights (layout "mxfp4"): gpt-oss's blocks uint8 [E, N, K/32, 16], or the same bytes as [E, N, K/2], with
// e8m0 block scales [E, N, K/32] (uint8 or float8_e8m0fnu).
void read_mxfp4_inputs(TensorChecks const& c, at::Tensor const& weights, at::Tensor const& group_scales,
                       std::optional<at::Tensor> const& channel_scales, w4a8moe::PrepackArgs* args) {
  char const* const layout = "uint8 [E, N, K/2] or gpt-oss's blocks [E, N, K/32, 16]";
  TORCH_CHECK_VALUE(weights.dim() == 3 || weights.dim() == 4, c.op(), ": weights must be 3-D or 4-D (", layout,
                    ") with layout \"mxfp4\", got shape ", weights.sizes());
  TORCH_CHECK_TYPE(weights.scalar_type() == at::kByte, c.op(), ": weights must be uint8 (", layout,
                   ", two e2m1 codes a byte) with layout \"mxfp4\", got ", weights.scalar_type());
  int64_t k = weights.size(2) * 2;
  if (weights.dim() == 4) {
    TORCH_CHECK_VALUE(weights.size(3) == 16, c.op(), ": weights as blocks must be [E, N, K/32, 16], got shape ",
                      weights.sizes());
    k = weights.size(2) * 32;
  }
  args->weight_format = w4a8moe::WeightFormat::kMxfp4;
  args->scale_format = w4a8moe::ScaleFormat::kE8m0;
  args->shape = {c.to_int(weights.size(0), "E"), c.to_int(weights.size(1), "N"), c.to_int(k, "K"),
                 w4a8moe::kGroupSize};
  throw_on_error(w4a8moe::validate_weight_shape(args->shape, args->layout, "weights"), c.op());
  c.check(weights, "weights", {at::kByte}, weights.sizes().vec(), layout, 4);
  auto const& s = args->shape;
  c.check(group_scales, "group_scales", {at::kByte, at::kFloat8_e8m0fnu}, {s.num_experts, s.n, s.k / 32},
          "[E, N, K/32], e8m0", 1);
  args->channel_scales = channel_scales_pointer(c, channel_scales, s);
}

// int4 weights (layouts "lookup" and "exact"): the checkpoint's int32 [E, N, K/8] or signed uint8 [E, N, K/2], with
// bf16 group scales, or e4m3 group scales (with fp32 channel scales: the library's rule).
void read_int4_inputs(TensorChecks const& c, at::Tensor const& weights, at::Tensor const& group_scales,
                      std::optional<at::Tensor> const& channel_scales, w4a8moe::PrepackArgs* args) {
  c.rank(weights, "weights", 3, "int32 [E, N, K/8] or uint8 [E, N, K/2]");
  int64_t k = 0;
  if (weights.scalar_type() == at::kInt) {
    args->weight_format = w4a8moe::WeightFormat::kOffsetBinaryInt32;
    k = weights.size(2) * 8;
  } else {
    TORCH_CHECK_TYPE(weights.scalar_type() == at::kByte, c.op(),
                     ": weights must be int32 [E, N, K/8] (offset-binary nibbles, the checkpoint layout) or uint8 "
                     "[E, N, K/2] (two's-complement int4, low nibble = even k), got ",
                     weights.scalar_type());
    args->weight_format = w4a8moe::WeightFormat::kSignedInt4;
    k = weights.size(2) * 2;
  }
  args->shape = {c.to_int(weights.size(0), "E"), c.to_int(weights.size(1), "N"), c.to_int(k, "K"),
                 w4a8moe::kGroupSize};
  throw_on_error(w4a8moe::validate_weight_shape(args->shape, args->layout, "weights"), c.op());
  auto const& s = args->shape;
  // dtype and sizes were read from weights above; this checks its device, contiguity and alignment.
  c.check(weights, "weights", {weights.scalar_type()}, weights.sizes().vec(), "[E, N, K/8] or [E, N, K/2]", 4);

  std::vector<int64_t> const scale_sizes{s.num_experts, s.n, w4a8moe::group_count(s.k)};
  c.check(group_scales, "group_scales", {at::kBFloat16, at::kFloat8_e4m3fn}, scale_sizes,
          "[E, N, ceil(K/128)]", group_scales.element_size());
  args->scale_format = group_scales.scalar_type() == at::kBFloat16 ? w4a8moe::ScaleFormat::kBF16
                                                                   : w4a8moe::ScaleFormat::kFP8WithChannelScale;
  args->channel_scales = channel_scales_pointer(c, channel_scales, s);
}

at::Tensor prepack_weights(at::Tensor const& weights, at::Tensor const& group_scales,
                           std::optional<at::Tensor> const& channel_scales, std::string const& layout) {
  TensorChecks const c("w4a8moe.prepack_weights", weights, "weights");
  w4a8moe::PrepackArgs args;
  args.layout = parse_layout(layout, c.op());
  if (args.layout == w4a8moe::PackedLayout::kMxfp4) {
    read_mxfp4_inputs(c, weights, group_scales, channel_scales, &args);
  } else {
    read_int4_inputs(c, weights, group_scales, channel_scales, &args);
  }
  auto const& s = args.shape;

  c10::cuda::CUDAGuard const guard(c.device());
  // Zeroed so that the padding between sections is deterministic (a packed buffer may be saved and compared).
  at::Tensor packed = at::zeros({static_cast<int64_t>(w4a8moe::packed_weights_bytes(s, args.layout))},
                                weights.options().dtype(at::kByte));
  args.weights = weights.data_ptr();
  args.group_scales = group_scales.data_ptr();
  args.packed = packed.data_ptr();
  args.packed_bytes = static_cast<size_t>(packed.numel());
  args.stream = current_stream(c.device());
  throw_on_error(w4a8moe::prepack_weights(args), c.op());
  return packed;
}

at::Tensor grouped_gemm(at::Tensor const& act, at::Tensor const& token_scales, at::Tensor const& expert_offsets,
                        at::Tensor const& packed_weights, int64_t n, std::optional<at::ScalarType> out_dtype,
                        std::optional<std::string> const& config, std::optional<at::Tensor> const& bias,
                        std::optional<std::string> const& layout) {
  TensorChecks const c("w4a8moe.grouped_gemm", act, "act");
  c.rank(act, "act", 2, "float8_e4m3fn [rows, padded_k(K)]");
  c.rank(expert_offsets, "expert_offsets", 1, "int64 [E + 1]");
  int64_t const rows = act.size(0);
  // E + 1 offsets: at least one to read E from; E >= 1 is the library's rule (an error naming num_experts).
  TORCH_CHECK_VALUE(expert_offsets.size(0) >= 1, c.op(), ": expert_offsets must hold E + 1 offsets, got none");
  w4a8moe::GroupedGemmArgs args;
  args.shape = {c.to_int(expert_offsets.size(0) - 1, "E"), c.to_int(n, "n"), c.to_int(act.size(1), "K"),
                w4a8moe::kGroupSize};
  // The kernels read whole 128-column groups: a K that is not a multiple of 128 comes padded with zeros.
  TORCH_CHECK_VALUE(act.size(1) % w4a8moe::kGroupSize == 0, c.op(), ": act has ", act.size(1), " columns; it must ",
                    "hold padded_k(K), a multiple of ", w4a8moe::kGroupSize, ", with zeros past K");
  c.check(act, "act", {at::kFloat8_e4m3fn}, {rows, act.size(1)}, "[rows, padded_k(K)]", 16);
  c.check(token_scales, "token_scales", {at::kFloat}, {rows}, "[rows]", 4);
  c.check(expert_offsets, "expert_offsets", {at::kLong}, {expert_offsets.size(0)}, "[E + 1]", 8);
  args.layout = c.check_packed(packed_weights, "packed_weights", args.shape, layout);
  args.bias = c.bias(bias, "bias", args.shape.num_experts, n, "[E, n]");  // the library: MXFP4 layout only
  at::ScalarType const dtype = out_dtype.value_or(at::kBFloat16);
  TORCH_CHECK_TYPE(dtype == at::kBFloat16 || dtype == at::kHalf, c.op(), ": out_dtype must be ",
                   dtype_list({at::kBFloat16, at::kHalf}), ", got ", dtype);

  c10::cuda::CUDAGuard const guard(c.device());
  at::Tensor out = at::empty({rows, n}, act.options().dtype(dtype));
  at::Tensor ws = workspace(w4a8moe::grouped_gemm_workspace_bytes(args.shape.num_experts), c.device());
  args.packed_weights = packed_weights.data_ptr();
  args.total_rows = rows;
  args.act = act.data_ptr();
  args.token_scales = token_scales.data_ptr<float>();
  args.expert_offsets = expert_offsets.data_ptr<int64_t>();
  args.out = out.data_ptr();
  args.out_type = dtype == at::kBFloat16 ? w4a8moe::OutputType::kBF16 : w4a8moe::OutputType::kFP16;
  args.workspace = ws.data_ptr();
  args.workspace_bytes = static_cast<size_t>(ws.numel());
  args.config = config.value_or("");
  args.stream = current_stream(c.device());
  at::Tensor group_sums;  // the exact-scale layout's GEMMs take the activations' sums per 128-K group
  if (args.layout == w4a8moe::PackedLayout::kExactScales) {
    int64_t const bytes = static_cast<int64_t>(w4a8moe::activation_group_sums_bytes(rows, args.shape.k));
    group_sums = at::empty({(bytes + 3) / 4}, act.options().dtype(at::kFloat));
    throw_on_error(w4a8moe::compute_activation_group_sums(act.data_ptr(), rows, args.shape.k,
                                                          group_sums.data_ptr<float>(), args.stream),
                   c.op());
    args.act_group_sums = group_sums.data_ptr<float>();
  }
  throw_on_error(w4a8moe::grouped_gemm(args), c.op());
  return out;
}

// The tensor itself; when it is required (fewer local than global experts) is the library's rule (moe_forward and
// moe_routing return it as an error naming the argument).
void check_expert_map(TensorChecks const& c, std::optional<at::Tensor> const& expert_map, int64_t num_experts) {
  if (expert_map.has_value()) {
    c.check(*expert_map, "expert_map", {at::kInt}, {num_experts}, "[num_experts]: local id or -1", 4);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> moe_routing(at::Tensor const& topk_ids,
                                                           std::optional<at::Tensor> const& expert_map,
                                                           int64_t num_experts, int64_t num_local_experts) {
  TensorChecks const c("w4a8moe.moe_routing", topk_ids, "topk_ids");
  c.rank(topk_ids, "topk_ids", 2, "int32 [num_tokens, top_k]");
  int64_t const tokens = topk_ids.size(0), top_k = topk_ids.size(1);
  c.check(topk_ids, "topk_ids", {at::kInt}, {tokens, top_k}, "[num_tokens, top_k]", 4);
  check_expert_map(c, expert_map, num_experts);
  w4a8moe::MoeRoutingArgs args;
  args.shape.num_experts = c.to_int(num_experts, "num_experts");
  args.shape.num_local_experts = c.to_int(num_local_experts, "num_local_experts");
  args.shape.top_k = c.to_int(top_k, "top_k");
  args.num_tokens = tokens;

  c10::cuda::CUDAGuard const guard(c.device());
  auto const options = topk_ids.options();
  at::Tensor offsets = at::empty({num_local_experts + 1}, options.dtype(at::kLong));
  at::Tensor dest_row = at::empty({tokens, top_k}, options);
  // Rows past offsets[-1] belong to no local expert; -1 there instead of whatever the allocator held.
  at::Tensor row_slot = at::full({tokens * top_k}, -1, options);
  at::Tensor ws = workspace(w4a8moe::moe_routing_workspace_bytes(args.shape, tokens), c.device());
  args.topk_ids = topk_ids.data_ptr<int32_t>();
  args.expert_map = expert_map.has_value() ? expert_map->data_ptr<int32_t>() : nullptr;
  args.expert_offsets = offsets.data_ptr<int64_t>();
  args.dest_row = dest_row.data_ptr<int32_t>();
  args.row_slot = row_slot.data_ptr<int32_t>();
  args.workspace = ws.data_ptr();
  args.workspace_bytes = static_cast<size_t>(ws.numel());
  args.stream = current_stream(c.device());
  throw_on_error(w4a8moe::moe_routing(args), c.op());
  return {offsets, dest_row, row_slot};
}

at::Tensor moe_forward(at::Tensor const& hidden, at::Tensor const& gemm1_weights, at::Tensor const& gemm2_weights,
                       std::optional<at::Tensor> const& router_logits, std::optional<at::Tensor> const& topk_ids,
                       std::optional<at::Tensor> const& topk_weights, std::optional<at::Tensor> const& expert_map,
                       int64_t num_experts, int64_t num_local_experts, int64_t top_k, int64_t inter_size,
                       bool renormalize, bool apply_router_weight_on_input,
                       std::optional<std::string> const& gemm1_config, std::optional<std::string> const& gemm2_config,
                       std::string const& path, std::string const& activation, double swiglu_limit,
                       std::optional<at::Tensor> const& gemm1_bias, std::optional<at::Tensor> const& gemm2_bias,
                       std::optional<std::string> const& layout) {
  TensorChecks const c("w4a8moe.moe_forward", hidden, "hidden");
  c.rank(hidden, "hidden", 2, "[num_tokens, hidden_size]");
  int64_t const tokens = hidden.size(0), hidden_size = hidden.size(1);
  c.check(hidden, "hidden", {at::kBFloat16, at::kHalf}, {tokens, hidden_size}, "[num_tokens, hidden_size]", 16);

  w4a8moe::MoeForwardArgs args;
  args.shape = {c.to_int(num_experts, "num_experts"), c.to_int(num_local_experts, "num_local_experts"),
                c.to_int(top_k, "top_k"), c.to_int(hidden_size, "hidden_size"), c.to_int(inter_size, "inter_size")};
  throw_on_error(w4a8moe::validate_moe_shape(args.shape), c.op());
  auto const& s = args.shape;
  // The library checks both buffers' sizes against their GEMMs' shapes in this layout (swapped, or packed for
  // another shape or layout); without a layout named, GEMM1's size tells it.
  args.weight_layout = c.packed_layout(gemm1_weights, "gemm1_weights",
                                       {s.num_local_experts, 2 * s.inter, s.hidden, w4a8moe::kGroupSize}, layout);
  c.packed(gemm1_weights, "gemm1_weights");
  c.packed(gemm2_weights, "gemm2_weights");
  args.gemm1_weights_bytes = gemm1_weights.nbytes();
  args.gemm2_weights_bytes = gemm2_weights.nbytes();
  args.activation = parse_activation(activation, c.op());
  args.swiglu_limit = static_cast<float>(swiglu_limit);
  args.gemm1_bias = c.bias(gemm1_bias, "gemm1_bias", s.num_local_experts, 2 * s.inter, "[num_local_experts, 2I]");
  args.gemm2_bias = c.bias(gemm2_bias, "gemm2_bias", s.num_local_experts, s.hidden, "[num_local_experts, H]");
  check_expert_map(c, expert_map, num_experts);

  bool const has_topk = topk_ids.has_value() || topk_weights.has_value();
  TORCH_CHECK_VALUE(router_logits.has_value() != has_topk, c.op(),
                    ": give either router_logits or topk_ids + topk_weights, not ",
                    has_topk ? "both" : "neither");
  if (router_logits.has_value()) {
    c.check(*router_logits, "router_logits", {at::kFloat, at::kBFloat16}, {tokens, num_experts},
            "[num_tokens, num_experts]", router_logits->element_size());
    args.router_logits = router_logits->data_ptr();
    args.logits_type = router_logits->scalar_type() == at::kFloat ? w4a8moe::LogitsType::kFP32
                                                                  : w4a8moe::LogitsType::kBF16;
  } else {
    TORCH_CHECK_VALUE(topk_ids.has_value() && topk_weights.has_value(), c.op(),
                      ": topk_ids and topk_weights go together; got only ",
                      topk_ids.has_value() ? "topk_ids" : "topk_weights");
    c.check(*topk_ids, "topk_ids", {at::kInt}, {tokens, top_k}, "[num_tokens, top_k], global expert ids", 4);
    c.check(*topk_weights, "topk_weights", {at::kFloat}, {tokens, top_k}, "[num_tokens, top_k]", 4);
    args.topk_ids = topk_ids->data_ptr<int32_t>();
    args.topk_weights = topk_weights->data_ptr<float>();
  }

  c10::cuda::CUDAGuard const guard(c.device());
  at::Tensor out = at::empty_like(hidden, at::MemoryFormat::Contiguous);
  at::Tensor ws = workspace(w4a8moe::moe_workspace_bytes(s, tokens), c.device());
  args.gemm1_weights = gemm1_weights.data_ptr();
  args.gemm2_weights = gemm2_weights.data_ptr();
  args.num_tokens = tokens;
  args.hidden = hidden.data_ptr();
  args.act_type = hidden.scalar_type() == at::kBFloat16 ? w4a8moe::ActivationType::kBF16
                                                        : w4a8moe::ActivationType::kFP16;
  args.renormalize = renormalize;
  args.expert_map = expert_map.has_value() ? expert_map->data_ptr<int32_t>() : nullptr;
  args.apply_router_weight_on_input = apply_router_weight_on_input;
  args.out = out.data_ptr();
  args.workspace = ws.data_ptr();
  args.workspace_bytes = static_cast<size_t>(ws.numel());
  args.gemm1_config = gemm1_config.value_or("");
  args.gemm2_config = gemm2_config.value_or("");
  args.path = parse_path(path, c.op());
  args.stream = current_stream(c.device());
  throw_on_error(w4a8moe::moe_forward(args), c.op());
  return out;
}

// Shape [E, N, K] and layout name of a packed buffer read back on the host (e.g. from disk); checks magic, version
// and size.
std::tuple<int64_t, int64_t, int64_t, std::string> packed_weights_shape(at::Tensor const& packed) {
  char const* const op = "w4a8moe.packed_weights_shape";
  TORCH_CHECK_VALUE(packed.is_cpu(), op, ": packed must be on the CPU (the header is read on the host), got ",
                    packed.device(), "; pass packed.cpu()");
  TORCH_CHECK_TYPE(packed.scalar_type() == at::kByte, op, ": packed must be uint8, got ", packed.scalar_type());
  TORCH_CHECK_VALUE(packed.dim() == 1 && packed.is_contiguous(), op, ": packed must be a contiguous 1-D tensor, got "
                    "shape ", packed.sizes(), " and strides ", packed.strides());
  w4a8moe::ExpertWeightShape shape;
  w4a8moe::PackedLayout layout = w4a8moe::PackedLayout::kLookupTable;
  throw_on_error(
      w4a8moe::read_packed_header(packed.data_ptr(), static_cast<size_t>(packed.numel()), &shape, &layout), op);
  return {shape.num_experts, shape.n, shape.k, w4a8moe::packed_layout_name(layout)};
}

int64_t packed_weights_bytes(int64_t num_experts, int64_t n, int64_t k, std::string const& layout) {
  char const* const op = "w4a8moe.packed_weights_bytes";
  auto const narrow = [op](int64_t value, char const* name) {
    TORCH_CHECK_VALUE(value >= 0 && value <= std::numeric_limits<int>::max(), op, ": ", name, "=", value,
                      " is out of range");
    return static_cast<int>(value);
  };
  w4a8moe::ExpertWeightShape const shape{narrow(num_experts, "num_experts"), narrow(n, "n"), narrow(k, "k"),
                                         w4a8moe::kGroupSize};
  throw_on_error(w4a8moe::validate_weight_shape(shape), op);
  return static_cast<int64_t>(w4a8moe::packed_weights_bytes(shape, parse_layout(layout, op)));
}

std::vector<std::string> gemm_config_names(std::string const& layout) {
  return w4a8moe::gemm_config_names(parse_layout(layout, "w4a8moe.gemm_config_names"));
}

}  // namespace
}  // namespace w4a8moe_torch

TORCH_LIBRARY(w4a8moe, m) {
  // Load time: waits for the stream and reads back the scale check, so it cannot be captured in a CUDA graph.
  m.def("prepack_weights(Tensor weights, Tensor group_scales, Tensor? channel_scales=None, str layout=\"lookup\") "
        "-> Tensor",
        {at::Tag::cudagraph_unsafe});
  // Run time: enqueue only, never wait for the host; safe to capture and to trace with torch.compile.
  m.def("grouped_gemm(Tensor act, Tensor token_scales, Tensor expert_offsets, Tensor packed_weights, int n, "
        "ScalarType? out_dtype=None, str? config=None, Tensor? bias=None, str? layout=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("moe_routing(Tensor topk_ids, Tensor? expert_map, int num_experts, int num_local_experts) "
        "-> (Tensor expert_offsets, Tensor dest_row, Tensor row_slot)",
        {at::Tag::pt2_compliant_tag});
  m.def("moe_forward(Tensor hidden, Tensor gemm1_weights, Tensor gemm2_weights, Tensor? router_logits, "
        "Tensor? topk_ids, Tensor? topk_weights, Tensor? expert_map, int num_experts, int num_local_experts, "
        "int top_k, int inter_size, bool renormalize, bool apply_router_weight_on_input, str? gemm1_config=None, "
        "str? gemm2_config=None, str path=\"auto\", str activation=\"silu\", float swiglu_limit=7.0, "
        "Tensor? gemm1_bias=None, Tensor? gemm2_bias=None, str? layout=None) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def("packed_weights_shape(Tensor packed) -> (int num_experts, int n, int k, str layout)");
  // No tensor arguments: these run on the host wherever they are called from.
  m.def("packed_weights_bytes(int num_experts, int n, int k, str layout=\"lookup\") -> int",
        &w4a8moe_torch::packed_weights_bytes);
  m.def("gemm_config_names(str layout=\"lookup\") -> str[]", &w4a8moe_torch::gemm_config_names);
}

TORCH_LIBRARY_IMPL(w4a8moe, CUDA, m) {
  m.impl("prepack_weights", &w4a8moe_torch::prepack_weights);
  m.impl("grouped_gemm", &w4a8moe_torch::grouped_gemm);
  m.impl("moe_routing", &w4a8moe_torch::moe_routing);
  m.impl("moe_forward", &w4a8moe_torch::moe_forward);
  m.impl("packed_weights_shape", &w4a8moe_torch::packed_weights_shape);
}

// CPU tensors reach the same functions, whose first check explains that the tensor must be on the GPU (rather than
// PyTorch's generic "could not run with arguments from the CPU backend"); packed_weights_shape is host-only.
TORCH_LIBRARY_IMPL(w4a8moe, CPU, m) {
  m.impl("prepack_weights", &w4a8moe_torch::prepack_weights);
  m.impl("grouped_gemm", &w4a8moe_torch::grouped_gemm);
  m.impl("moe_routing", &w4a8moe_torch::moe_routing);
  m.impl("moe_forward", &w4a8moe_torch::moe_forward);
  m.impl("packed_weights_shape", &w4a8moe_torch::packed_weights_shape);
}
