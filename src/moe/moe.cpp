// The MoE layer's entry points: validation, then the plan (moe_plan.h) run as its sequence of stages (see moe.h).
#include "w4a8moe/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/device_info.h"
#include "common/status_util.h"
#include "gemm/built_arrays.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/expert_bias.h"
#include "gemm/registry.h"
#include "moe/decode_layer.h"
#include "moe/moe_kernels.h"
#include "moe/moe_plan.h"
#include "moe/plan_cache.h"
#include "moe/workspace_plan.h"
#include "prepack/packed_format.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

// The routing half of a layer's shape (all moe_routing needs): experts, local experts, top-k.
Status validate_routing_shape(MoeShape const& s) {
  if (s.num_experts < 1) return invalid_argument("shape.num_experts=", s.num_experts, ": must be >= 1");
  if (s.num_local_experts < 1 || s.num_local_experts > std::min(s.num_experts, moe::kMaxLocalExperts)) {
    return invalid_argument("shape.num_local_experts=", s.num_local_experts, ": must be in [1, min(num_experts=",
                            s.num_experts, ", ", moe::kMaxLocalExperts, ")]");
  }
  if (s.top_k < 1 || s.top_k > std::min(moe::kMaxTopK, s.num_experts)) {
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

// The routing problem of a layer shape; the caller adds the ids, the outputs and the scratch.
moe::RoutingProblem routing_problem(MoeShape const& s, int64_t tokens, int32_t const* expert_map,
                                    cudaStream_t stream) {
  moe::RoutingProblem p;
  p.tokens = tokens;
  p.experts = s.num_experts;
  p.top_k = s.top_k;
  p.local_experts = s.num_local_experts;
  p.expert_map = expert_map;
  p.stream = stream;
  return p;
}

// The layer's shape rules (see MoeShape) and its GEMMs' for the packed layout (MXFP4: H and I multiples of 32).
Status validate_layer_shape(MoeShape const& s, PackedLayout layout) {
  W4A8_RETURN_IF_ERROR(validate_routing_shape(s));
  if (!is_valid_size(s.hidden)) {
    return invalid_argument("shape.hidden=", s.hidden, ": must be a positive multiple of 16 (GEMM2's N)");
  }
  if (!is_valid_size(s.inter) || s.inter > moe::kMaxInter) {
    return invalid_argument("shape.inter=", s.inter, ": must be a positive multiple of 16 (16-channel stripes), at ",
                            "most ", moe::kMaxInter, " (the SiLU stage holds a row in one block's registers)");
  }
  W4A8_RETURN_IF_ERROR(validate_weight_shape(moe::gemm1_shape(s), layout, "GEMM1 weights (2I x H)"));
  return validate_weight_shape(moe::gemm2_shape(s), layout, "GEMM2 weights (H x I)");
}

Status validate_args(MoeForwardArgs const& a) {
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
  Weights const weights[] = {{a.gemm1_weights, a.gemm1_weights_bytes, moe::gemm1_shape(s), "args.gemm1_weights"},
                             {a.gemm2_weights, a.gemm2_weights_bytes, moe::gemm2_shape(s), "args.gemm2_weights"}};
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
      if (s.num_experts > moe::kMaxRouterExperts) {
        return invalid_argument("shape.num_experts=", s.num_experts, ": the router supports at most ",
                                moe::kMaxRouterExperts, " experts; pass precomputed top-k ids and weights instead");
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
  if (a.workspace == nullptr) return invalid_argument("args.workspace is null");
  if (!is_aligned(a.workspace, moe::kWorkspaceAlign)) {
    return invalid_argument("args.workspace must be ", moe::kWorkspaceAlign, "-byte aligned");
  }
  size_t const needed = moe::plan_workspace(s, max_tokens).total;
  if (a.workspace_bytes < needed) {
    return invalid_argument("args.workspace_bytes=", a.workspace_bytes, ": too small, moe_workspace_bytes(shape, ",
                            max_tokens, ")=", needed);
  }
  if (a.path != MoePath::kAuto && a.path != MoePath::kStaged && a.path != MoePath::kOneLaunch) {
    return invalid_argument("args.path=", int(a.path), ": must be kAuto, kStaged or kOneLaunch");
  }
  if (a.path == MoePath::kOneLaunch) {
    if (!moe::decode_layer_runs(a.weight_layout, a.activation, a.gemm1_bias != nullptr || a.gemm2_bias != nullptr)) {
      return invalid_argument("args.path=kOneLaunch: the one-launch layer runs SiLU * up on the int4 layouts ",
                              "without biases; got layout \"", packed_layout_name(a.weight_layout), "\", ",
                              a.activation == MoeActivation::kSiluMul ? "SiLU * up" : "gpt-oss's SwiGLU",
                              a.gemm1_bias != nullptr || a.gemm2_bias != nullptr ? ", biases" : "");
    }
    if (a.num_tokens > 0 && !moe::decode_layer_fits(s, a.num_tokens, has_logits)) {
      return invalid_argument("args.path=kOneLaunch: the one-launch layer takes 1..", moe::kDecodeLayerMaxTokens,
                              " tokens and, from router logits, at most ", moe::kDecodeLayerMaxRouterExperts,
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

// The one-launch layer over the staged path's workspace regions (decode_layer.h says which it uses).
Status run_one_launch(MoeForwardArgs const& a, moe::MoePlan const& plan) {
  int const sm_count = current_device_sm_count();
  if (sm_count < 1) return Status(StatusCode::kCudaError, "no usable CUDA device for the one-launch layer");
  W4A8_CUDA_RETURN(moe::launch_decode_layer(moe::decode_layer_problem(a, plan.workspace), sm_count, a.stream));
  return Status::Ok();
}

}  // namespace

char const* moe_stage_name(int stage) {
  static char const* const names[kMoeStageCount] = {"route",  "permute+quantize", "gemm1", "silu*up+quantize",
                                                    "gemm2", "unpermute"};
  return stage >= 0 && stage < kMoeStageCount ? names[stage] : "unknown";
}

char const* moe_path_name(MoePath path) {
  switch (path) {
    case MoePath::kAuto:
      return "auto";
    case MoePath::kStaged:
      return "staged";
    case MoePath::kOneLaunch:
      return "one_launch";
  }
  return "unknown";
}

Status parse_moe_path(char const* name, MoePath* path, char const* arg_name) {
  if (path == nullptr) return invalid_argument("path is null");
  constexpr MoePath kPaths[] = {MoePath::kAuto, MoePath::kStaged, MoePath::kOneLaunch};
  constexpr size_t kCount = sizeof(kPaths) / sizeof(kPaths[0]);
  std::string names;
  for (size_t i = 0; i < kCount; ++i) {
    if (name != nullptr && std::strcmp(name, moe_path_name(kPaths[i])) == 0) {
      *path = kPaths[i];
      return Status::Ok();
    }
    names += concat(i == 0 ? "" : i + 1 == kCount ? " or " : ", ", "\"", moe_path_name(kPaths[i]), "\"");
  }
  return invalid_argument(arg_name, "='", name == nullptr ? "(null)" : name, "': must be ", names);
}

Status validate_moe_shape(MoeShape const& s, PackedLayout layout) {
  W4A8_RETURN_IF_ERROR(validate_packed_layout(layout, "layout"));
  return validate_layer_shape(s, layout);
}

size_t moe_workspace_bytes(MoeShape const& shape, int64_t max_tokens) {
  if (!validate_moe_shape(shape).ok() || !rows_fit(max_tokens, shape.top_k)) return 0;
  return moe::plan_workspace(shape, max_tokens).total;
}

size_t moe_routing_workspace_bytes(MoeShape const& shape, int64_t num_tokens) {
  if (!validate_routing_shape(shape).ok() || !rows_fit(num_tokens, shape.top_k)) return 0;
  return size_t(moe::routing_scratch_words(num_tokens * shape.top_k, shape.num_local_experts)) * sizeof(int32_t);
}

Status moe_routing(MoeRoutingArgs const& a) {
  MoeShape const& s = a.shape;
  W4A8_RETURN_IF_ERROR(validate_routing_shape(s));
  if (!rows_fit(a.num_tokens, s.top_k)) {
    return invalid_argument("args.num_tokens=", a.num_tokens, ": must be >= 0 with num_tokens * top_k < 2^31");
  }
  W4A8_RETURN_IF_ERROR(validate_expert_map(s, a.expert_map));
  for (auto [pointer, name] : {std::pair<void const*, char const*>{a.expert_offsets, "args.expert_offsets"},
                               {a.workspace, "args.workspace"}}) {
    if (pointer == nullptr) return invalid_argument(name, " is null");
  }
  if (!is_aligned(a.workspace, moe::kWorkspaceAlign)) {
    return invalid_argument("args.workspace must be ", moe::kWorkspaceAlign, "-byte aligned");
  }
  if (a.num_tokens > 0) {
    for (auto [pointer, name] : {std::pair<void const*, char const*>{a.topk_ids, "args.topk_ids"},
                                 {a.dest_row, "args.dest_row"}, {a.row_slot, "args.row_slot"}}) {
      if (pointer == nullptr) return invalid_argument(name, " is null");
      if (!is_aligned(pointer, 4)) return invalid_argument(name, " must be 4-byte aligned");
    }
  }
  if (!is_aligned(a.expert_offsets, 8)) return invalid_argument("args.expert_offsets must be 8-byte aligned");
  if (a.workspace_bytes < moe_routing_workspace_bytes(s, a.num_tokens)) {
    return invalid_argument("args.workspace_bytes=", a.workspace_bytes, ": too small, moe_routing_workspace_bytes()=",
                            moe_routing_workspace_bytes(s, a.num_tokens));
  }
  W4A8_RETURN_IF_ERROR(require_hopper_device());
  moe::RoutingProblem problem = routing_problem(s, a.num_tokens, a.expert_map, a.stream);
  problem.topk_ids = a.topk_ids;
  problem.chunk_counts = static_cast<int32_t*>(a.workspace);
  problem.offsets = a.expert_offsets;
  problem.dest_row = a.dest_row;
  problem.row_slot = a.row_slot;
  W4A8_CUDA_RETURN(moe::launch_routing(problem));
  return Status::Ok();
}

std::string moe_gemm1_config(MoeShape const& shape, int64_t num_tokens, PackedLayout layout) {
  if (!validate_moe_shape(shape, layout).ok() || num_tokens < 0) return {};
  moe::MoePlanOptions options;
  options.layout = layout;
  return moe::plan_moe(shape, num_tokens, 0, options).gemm1.config;
}

std::string moe_gemm2_config(MoeShape const& shape, int64_t num_tokens, PackedLayout layout) {
  if (!validate_moe_shape(shape, layout).ok() || num_tokens < 0) return {};
  moe::MoePlanOptions options;
  options.layout = layout;
  return moe::plan_moe(shape, num_tokens, 0, options).gemm2.config;
}

Status moe_forward(MoeForwardArgs const& a) {
  W4A8_RETURN_IF_ERROR(validate_args(a));
  // Under stream capture a record with cudaEventRecordExternal becomes an event-record node of the graph, so that
  // replays are timed; outside a capture that flag is invalid, and a plain record is what times the call.
  unsigned record_flags = cudaEventRecordDefault;
  if (a.stage_events != nullptr) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    W4A8_CUDA_RETURN(cudaStreamIsCapturing(a.stream, &capture));
    if (capture == cudaStreamCaptureStatusActive) record_flags = cudaEventRecordExternal;
  }
  auto mark = [&](int stage) -> Status {
    if (a.stage_events != nullptr) {
      W4A8_CUDA_RETURN(cudaEventRecordWithFlags(a.stage_events[stage], a.stream, record_flags));
    }
    return Status::Ok();
  };
  if (a.num_tokens == 0) {  // nothing to run (an idle rank); the stage events still mark the empty stages
    for (int stage = 0; stage <= kMoeStageCount; ++stage) W4A8_RETURN_IF_ERROR(mark(stage));
    return Status::Ok();
  }
  W4A8_RETURN_IF_ERROR(require_hopper_device());
  MoeShape const& s = a.shape;
  moe::MoePlanOptions options;
  options.gemm1_config = a.gemm1_config;
  options.gemm2_config = a.gemm2_config;
  options.from_logits = a.router_logits != nullptr;
  options.path = a.path;
  options.stage_events = a.stage_events != nullptr;
  options.layout = a.weight_layout;
  options.activation = a.activation;
  options.biases = a.gemm1_bias != nullptr || a.gemm2_bias != nullptr;
  moe::MoePlan const plan = moe::remembered_plan_moe(s, a.num_tokens, a.max_tokens, options);
  int64_t const tokens = plan.tokens;
  char* ws = static_cast<char*>(a.workspace);
  auto at = [&](size_t offset) { return ws + offset; };
  if (plan.one_launch) {  // stage events, if any, bracket the one launch: the first stage's time is the layer's
    W4A8_RETURN_IF_ERROR(mark(0));
    W4A8_RETURN_IF_ERROR(run_one_launch(a, plan));
    for (int stage = 1; stage <= kMoeStageCount; ++stage) W4A8_RETURN_IF_ERROR(mark(stage));
    return Status::Ok();
  }
  auto* dest_row = reinterpret_cast<int32_t*>(at(plan.workspace.dest_row));
  auto* offsets = reinterpret_cast<int64_t*>(at(plan.workspace.offsets));

  auto* act1 = reinterpret_cast<uint8_t*>(at(plan.workspace.act1));
  auto* scale1 = reinterpret_cast<float*>(at(plan.workspace.scale1));
  auto* act2 = reinterpret_cast<uint8_t*>(at(plan.workspace.act2));
  auto* scale2 = reinterpret_cast<float*>(at(plan.workspace.scale2));
  OutputType const out_type = a.act_type == ActivationType::kBF16 ? OutputType::kBF16 : OutputType::kFP16;
  auto gemm_args = [&](moe::GemmStagePlan const& stage, void const* weights, float const* bias, void const* act,
                       float const* scales, size_t sums, size_t out, size_t workspace) {
    GroupedGemmArgs g;
    g.shape = stage.shape;
    g.packed_weights = weights;
    g.layout = a.weight_layout;
    g.bias = bias;
    g.act_group_sums = plan.group_sums ? reinterpret_cast<float const*>(at(sums)) : nullptr;
    g.total_rows = plan.rows;
    g.act = act;
    g.token_scales = scales;
    g.expert_offsets = offsets;
    g.out = at(out);
    g.out_type = out_type;
    g.workspace = at(workspace);
    g.workspace_bytes = plan.workspace.gemm_workspace_bytes;
    g.expected_rows_hint = plan.expected_local_rows;
    g.stream = a.stream;
    g.config = stage.config;
    return g;
  };
  GroupedGemmArgs const gemm1 = gemm_args(plan.gemm1, a.gemm1_weights, a.gemm1_bias, act1, scale1,
                                          plan.workspace.sums1, plan.workspace.gemm1_out,
                                          plan.workspace.gemm1_workspace);
  GroupedGemmArgs const gemm2 = gemm_args(plan.gemm2, a.gemm2_weights, a.gemm2_bias, act2, scale2,
                                          plan.workspace.sums2, plan.workspace.gemm2_out,
                                          plan.workspace.gemm2_workspace);
  // The exact-scale layout's GEMMs also take each quantised row's group sums, which the quantising kernels write.
  auto group_sums = [&](size_t sums) {
    moe::GroupSumsOut out;
    if (plan.group_sums) out = {reinterpret_cast<float*>(at(sums)), gemm::group_sums_stride(plan.rows)};
    return out;
  };
  // At small batches the routing kernel fills the GEMMs' per-expert arrays (where their kernels read them): two
  // launches fewer.
  moe::RoutingArraysFill fill;
  for (auto [g, stage] : {std::pair{&gemm1, &plan.gemm1}, {&gemm2, &plan.gemm2}}) {
    if (!stage->arrays_from_routing) continue;
    fill.gemm[fill.count] = gemm::grouped_gemm_params(*g);
    fill.workspace[fill.count] = g->workspace;
    ++fill.count;
  }
  auto run_gemm = [&](GroupedGemmArgs const& g) {
    return plan.one_block_routing ? gemm::grouped_gemm_with_built_arrays(g) : grouped_gemm(g);
  };

  W4A8_RETURN_IF_ERROR(mark(0));
  moe::RoutingProblem routing = routing_problem(s, tokens, a.expert_map, a.stream);
  routing.topk_ids = a.topk_ids;
  routing.chunk_counts = reinterpret_cast<int32_t*>(at(plan.workspace.chunk_counts));
  routing.offsets = offsets;
  routing.dest_row = dest_row;
  routing.row_slot = reinterpret_cast<int32_t*>(at(plan.workspace.row_slot));
  routing.fill = fill;
  float const* topk_weights = a.topk_weights;
  if (a.router_logits != nullptr) {
    moe::Router router;
    router.logits = a.router_logits;
    router.type = a.logits_type;
    router.renormalize = a.renormalize;
    router.topk_ids = reinterpret_cast<int32_t*>(at(plan.workspace.topk_ids));
    router.topk_weights = reinterpret_cast<float*>(at(plan.workspace.topk_weights));
    W4A8_CUDA_RETURN(moe::launch_topk_and_routing(routing, router));
    topk_weights = router.topk_weights;
  } else {
    W4A8_CUDA_RETURN(moe::launch_routing(routing));
  }

  W4A8_RETURN_IF_ERROR(mark(1));
  W4A8_CUDA_RETURN(moe::launch_permute_quantize(a.hidden, a.act_type, tokens, s.hidden, s.top_k, dest_row,
                                                a.expert_map != nullptr, topk_weights, a.apply_router_weight_on_input,
                                                act1, scale1, group_sums(plan.workspace.sums1), a.stream));

  W4A8_RETURN_IF_ERROR(mark(2));
  W4A8_RETURN_IF_ERROR(run_gemm(gemm1));

  W4A8_RETURN_IF_ERROR(mark(3));
  W4A8_CUDA_RETURN(moe::launch_silu_mul_quantize(at(plan.workspace.gemm1_out), a.act_type,
                                                 {a.activation, a.swiglu_limit}, plan.rows, s.inter,
                                                 offsets, s.num_local_experts, act2, scale2,
                                                 group_sums(plan.workspace.sums2), a.stream));

  W4A8_RETURN_IF_ERROR(mark(4));
  W4A8_RETURN_IF_ERROR(run_gemm(gemm2));

  W4A8_RETURN_IF_ERROR(mark(5));
  W4A8_CUDA_RETURN(moe::launch_unpermute(at(plan.workspace.gemm2_out), a.act_type, tokens, s.hidden, s.top_k,
                                         dest_row, topk_weights, a.apply_router_weight_on_input, a.out, a.stream));
  return mark(6);
}

}  // namespace w4a8moe
