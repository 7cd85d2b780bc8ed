// Every rule of the MoE layer's public entry points (moe.h), stated once: moe.cpp calls these, and the CLI and the
// Python binding reach them through validate_moe_shape and moe_forward. Each error names the argument and the rule
// it broke.
#include "moe/moe_validation.h"

#include <algorithm>
#include <cmath>

#include "common/status_util.h"
#include "gemm/expert_bias.h"
#include "gemm/registry.h"
#include "moe/decode_layer.h"
#include "moe/moe_kernels.h"
#include "moe/moe_plan.h"
#include "moe/workspace_plan.h"
#include "prepack/packed_format.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::moe {

Status validate_routing_shape(MoeShape const& s) {
  if (s.num_experts < 1) return invalid_argument("shape.num_experts=", s.num_experts, ": must be >= 1");
  if (s.num_local_experts < 1 || s.num_local_experts > std::min(s.num_experts, kMaxLocalExperts)) {
    return invalid_argument("shape.num_local_experts=", s.num_local_experts, ": must be in [1, min(num_experts=",
                            s.num_experts, ", ", kMaxLocalExperts, ")]");
  }
  if (s.top_k < 1 || s.top_k > std::min(kMaxTopK, s.num_experts)) {
    return invalid_argument("shape.top_k=", s.top_k, ": must be in [1, min(32, num_experts)]");
  }
  return Status::Ok();
}

Status validate_expert_map(MoeShape const& s, int32_t const* expert_map) {
  if (s.num_local_experts < s.num_experts && expert_map == nullptr) {
    return invalid_argument("args.expert_map is null: required when shape.num_local_experts (", s.num_local_experts,
                            ") < shape.num_experts (", s.num_experts, ")");
  }
  if (expert_map != nullptr && !is_aligned(expert_map, 4)) {
    return invalid_argument("args.expert_map must be 4-byte aligned");
  }
  return Status::Ok();
}

// MXFP4: H and I multiples of 32 (validate_weight_shape).
Status validate_layer_shape(MoeShape const& s, PackedLayout layout) {
  W4A8_RETURN_IF_ERROR(validate_routing_shape(s));
  if (!is_valid_size(s.hidden)) {
    return invalid_argument("shape.hidden=", s.hidden, ": must be a positive multiple of 16 (GEMM2's N)");
  }
  if (!is_valid_size(s.inter) || s.inter > kMaxInter) {
    return invalid_argument("shape.inter=", s.inter, ": must be a positive multiple of 16 (16-channel stripes), at ",
                            "most ", kMaxInter, " (the SiLU stage holds a row in one block's registers)");
  }
  W4A8_RETURN_IF_ERROR(validate_weight_shape(gemm1_shape(s), layout, "GEMM1 weights (2I x H)"));
  return validate_weight_shape(gemm2_shape(s), layout, "GEMM2 weights (H x I)");
}

Status validate_forward_args(MoeForwardArgs const& a) {
  W4A8_RETURN_IF_ERROR(validate_packed_layout(a.weight_layout, "args.weight_layout"));
  W4A8_RETURN_IF_ERROR(validate_layer_shape(a.shape, a.weight_layout));
  MoeShape const& s = a.shape;
  if (a.num_tokens < 0) return invalid_argument("args.num_tokens=", a.num_tokens, ": must be >= 0");
  int64_t const max_tokens = a.max_tokens > 0 ? a.max_tokens : a.num_tokens;
  if (a.max_tokens < 0 || max_tokens < a.num_tokens) {
    return invalid_argument("args.max_tokens=", a.max_tokens, ": must be 0 or >= args.num_tokens=", a.num_tokens);
  }
  if (!rows_fit(max_tokens, s.top_k)) {
    return invalid_argument("args.max_tokens=", max_tokens, ": max_tokens * top_k (", s.top_k,
                            ") must stay below 2^31");
  }
  if (a.act_type != ActivationType::kBF16 && a.act_type != ActivationType::kFP16) {
    return invalid_argument("args.act_type=", int(a.act_type), ": must be kBF16 or kFP16");
  }
  if (a.activation != MoeActivation::kSiluMul && a.activation != MoeActivation::kGptOssSwiglu) {
    return invalid_argument("args.activation=", int(a.activation), ": must be kSiluMul or kGptOssSwiglu");
  }
  if (a.activation == MoeActivation::kGptOssSwiglu && !(a.swiglu_limit > 0.0f && std::isfinite(a.swiglu_limit))) {
    return invalid_argument("args.swiglu_limit=", a.swiglu_limit, ": must be finite and > 0 with kGptOssSwiglu");
  }
  W4A8_RETURN_IF_ERROR(gemm::validate_expert_bias(a.gemm1_bias, a.weight_layout, "args.gemm1_bias"));
  W4A8_RETURN_IF_ERROR(gemm::validate_expert_bias(a.gemm2_bias, a.weight_layout, "args.gemm2_bias"));
  if (a.apply_router_weight_on_input && (a.gemm1_bias != nullptr || a.gemm2_bias != nullptr)) {
    return invalid_argument("args.apply_router_weight_on_input: not with expert biases (they would go unweighted)");
  }
  struct Weights {
    void const* pointer;
    size_t bytes;
    ExpertWeightShape shape;
    char const* name;
  };
  Weights const weights[] = {{a.gemm1_weights, a.gemm1_weights_bytes, gemm1_shape(s), "args.gemm1_weights"},
                             {a.gemm2_weights, a.gemm2_weights_bytes, gemm2_shape(s), "args.gemm2_weights"}};
  for (Weights const& w : weights) {
    if (w.pointer == nullptr) return invalid_argument(w.name, " is null");
    if (!is_aligned(w.pointer, prepack::kSectionAlign)) {
      return invalid_argument(w.name, " must be ", prepack::kSectionAlign, "-byte aligned");
    }
    size_t const packed = packed_weights_bytes(w.shape, a.weight_layout);
    if (w.bytes != 0 && w.bytes != packed) {
      return invalid_argument(w.name, "_bytes=", w.bytes, ": the weights of ", w.shape.num_experts, " experts of ",
                              w.shape.n, " x ", w.shape.k, " packed in the \"", packed_layout_name(a.weight_layout),
                              "\" layout take ", packed, " bytes (swapped, or packed for another shape or layout?)");
    }
  }
  bool const has_logits = a.router_logits != nullptr;
  bool const has_topk = a.topk_ids != nullptr || a.topk_weights != nullptr;
  // With no tokens there is nothing to route: an engine may pass empty tensors.
  if (a.num_tokens > 0 || has_logits || has_topk) {
    if (has_logits == has_topk) {
      return invalid_argument("routing: give either args.router_logits or args.topk_ids + args.topk_weights, not ",
                              has_logits ? "both" : "neither");
    }
    if (has_logits) {
      if (a.logits_type != LogitsType::kFP32 && a.logits_type != LogitsType::kBF16) {
        return invalid_argument("args.logits_type=", int(a.logits_type), ": must be kFP32 or kBF16");
      }
      if (!is_aligned(a.router_logits, a.logits_type == LogitsType::kFP32 ? 4 : 2)) {
        return invalid_argument("args.router_logits is not aligned to its element type");
      }
      if (s.num_experts > kMaxRouterExperts) {
        return invalid_argument("shape.num_experts=", s.num_experts, ": the router supports at most ",
                                kMaxRouterExperts, " experts; pass precomputed top-k ids and weights instead");
      }
    } else {
      if (a.topk_ids == nullptr) return invalid_argument("args.topk_ids is null (args.topk_weights is given)");
      if (a.topk_weights == nullptr) return invalid_argument("args.topk_weights is null (args.topk_ids is given)");
      if (!is_aligned(a.topk_ids, 4) || !is_aligned(a.topk_weights, 4)) {
        return invalid_argument("args.topk_ids and args.topk_weights must be 4-byte aligned");
      }
    }
  }
  W4A8_RETURN_IF_ERROR(validate_expert_map(s, a.expert_map));
  if (a.num_tokens > 0) {
    if (a.hidden == nullptr) return invalid_argument("args.hidden is null");
    if (!is_aligned(a.hidden, 16)) return invalid_argument("args.hidden must be 16-byte aligned");
    if (a.out == nullptr) return invalid_argument("args.out is null");
    if (!is_aligned(a.out, 16)) return invalid_argument("args.out must be 16-byte aligned");
  }
  W4A8_RETURN_IF_ERROR(validate_workspace(a.workspace, a.workspace_bytes, plan_workspace(s, max_tokens).total,
                                          concat("moe_workspace_bytes(shape, ", max_tokens, ")")));
  if (a.path != MoePath::kAuto && a.path != MoePath::kStaged && a.path != MoePath::kOneLaunch) {
    return invalid_argument("args.path=", int(a.path), ": must be kAuto, kStaged or kOneLaunch");
  }
  if (a.path == MoePath::kOneLaunch) {
    if (!decode_layer_runs(a.weight_layout, a.activation, a.gemm1_bias != nullptr || a.gemm2_bias != nullptr)) {
      return invalid_argument("args.path=kOneLaunch: the one-launch layer runs SiLU * up on the int4 layouts ",
                              "without biases; got layout \"", packed_layout_name(a.weight_layout), "\", ",
                              a.activation == MoeActivation::kSiluMul ? "SiLU * up" : "gpt-oss's SwiGLU",
                              a.gemm1_bias != nullptr || a.gemm2_bias != nullptr ? ", biases" : "");
    }
    if (a.num_tokens > 0 && !decode_layer_fits(s, a.num_tokens, has_logits)) {
      return invalid_argument("args.path=kOneLaunch: the one-launch layer takes 1..", kDecodeLayerMaxTokens,
                              " tokens and, from router logits, at most ", kDecodeLayerMaxRouterExperts,
                              " experts; got num_tokens=", a.num_tokens, ", num_experts=", s.num_experts);
    }
    if (!a.gemm1_config.empty() || !a.gemm2_config.empty()) {
      return invalid_argument("args.path=kOneLaunch: GEMM configs belong to the staged path");
    }
  }
  for (auto [name, what] : {std::pair{&a.gemm1_config, "args.gemm1_config"}, {&a.gemm2_config, "args.gemm2_config"}}) {
    if (!name->empty()) {
      W4A8_RETURN_IF_ERROR(gemm::validate_config_name(*name, what, a.weight_layout, "args.weight_layout"));
    }
  }
  return Status::Ok();
}

Status validate_routing_args(MoeRoutingArgs const& a) {
  MoeShape const& s = a.shape;
  W4A8_RETURN_IF_ERROR(validate_routing_shape(s));
  if (!rows_fit(a.num_tokens, s.top_k)) {
    return invalid_argument("args.num_tokens=", a.num_tokens, ": must be >= 0 with num_tokens * top_k < 2^31");
  }
  W4A8_RETURN_IF_ERROR(validate_expert_map(s, a.expert_map));
  if (a.expert_offsets == nullptr) return invalid_argument("args.expert_offsets is null");
  if (!is_aligned(a.expert_offsets, 8)) return invalid_argument("args.expert_offsets must be 8-byte aligned");
  W4A8_RETURN_IF_ERROR(validate_workspace(a.workspace, a.workspace_bytes, moe_routing_workspace_bytes(s, a.num_tokens),
                                          "moe_routing_workspace_bytes()"));
  if (a.num_tokens > 0) {
    for (auto [pointer, name] : {std::pair<void const*, char const*>{a.topk_ids, "args.topk_ids"},
                                 {a.dest_row, "args.dest_row"}, {a.row_slot, "args.row_slot"}}) {
      if (pointer == nullptr) return invalid_argument(name, " is null");
      if (!is_aligned(pointer, 4)) return invalid_argument(name, " must be 4-byte aligned");
    }
  }
  return Status::Ok();
}

}  // namespace w4a8moe::moe
