// The MoE layer's entry points: validation (moe_validation.h), then the plan (moe_plan.h) run as its sequence of
// stages (see moe.h).
#include "w4a8moe/moe.h"

#include <string>

#include "common/device_info.h"
#include "common/named_choice.h"
#include "common/status_util.h"
#include "gemm/built_arrays.h"
#include "gemm/exact_stream_gemm.h"
#include "moe/decode_layer.h"
#include "moe/moe_kernels.h"
#include "moe/moe_plan.h"
#include "moe/moe_validation.h"
#include "moe/plan_cache.h"
#include "moe/workspace_plan.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

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
  constexpr MoePath kPaths[] = {MoePath::kAuto, MoePath::kStaged, MoePath::kOneLaunch};
  return parse_named_choice(name, kPaths, moe_path_name, path, arg_name);
}

Status validate_moe_shape(MoeShape const& s, PackedLayout layout) {
  W4A8_RETURN_IF_ERROR(validate_packed_layout(layout, "layout"));
  return moe::validate_layer_shape(s, layout);
}

size_t moe_workspace_bytes(MoeShape const& shape, int64_t max_tokens) {
  if (!validate_moe_shape(shape).ok() || !rows_fit(max_tokens, shape.top_k)) return 0;
  return moe::plan_workspace(shape, max_tokens).total;
}

size_t moe_routing_workspace_bytes(MoeShape const& shape, int64_t num_tokens) {
  if (!moe::validate_routing_shape(shape).ok() || !rows_fit(num_tokens, shape.top_k)) return 0;
  return size_t(moe::routing_scratch_words(num_tokens * shape.top_k, shape.num_local_experts)) * sizeof(int32_t);
}

Status moe_routing(MoeRoutingArgs const& a) {
  W4A8_RETURN_IF_ERROR(moe::validate_routing_args(a));
  MoeShape const& s = a.shape;
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

namespace {

// The plan's options moe_forward(a) asks for: the one statement of them for the call and for moe_forward_kernels.
moe::MoePlanOptions forward_plan_options(MoeForwardArgs const& a) {
  moe::MoePlanOptions options;
  options.gemm1_config = a.gemm1_config;
  options.gemm2_config = a.gemm2_config;
  options.from_logits = a.router_logits != nullptr;
  options.path = a.path;
  options.stage_events = a.stage_events != nullptr;
  options.layout = a.weight_layout;
  options.activation = a.activation;
  options.biases = a.gemm1_bias != nullptr || a.gemm2_bias != nullptr;
  return options;
}

// The per-GEMM queries are moe_forward_kernels() on arguments without overrides, so that they name what the call runs
// (nothing at 0 tokens).
MoeForwardKernels heuristic_kernels(MoeShape const& shape, int64_t num_tokens, PackedLayout layout) {
  MoeForwardArgs args;
  args.shape = shape;
  args.num_tokens = num_tokens;
  args.weight_layout = layout;
  return moe_forward_kernels(args);
}

}  // namespace

MoeForwardKernels moe_forward_kernels(MoeForwardArgs const& a) {
  MoeForwardKernels kernels;
  if (!validate_moe_shape(a.shape, a.weight_layout).ok() || a.num_tokens <= 0) return kernels;
  moe::MoePlan const plan = moe::plan_moe(a.shape, a.num_tokens, a.max_tokens, forward_plan_options(a));
  kernels.one_launch = plan.one_launch;
  kernels.gemm1_config = plan.gemm1.config;
  kernels.gemm2_config = plan.gemm2.config;
  return kernels;
}

std::string moe_gemm1_config(MoeShape const& shape, int64_t num_tokens, PackedLayout layout) {
  return heuristic_kernels(shape, num_tokens, layout).gemm1_config;
}

std::string moe_gemm2_config(MoeShape const& shape, int64_t num_tokens, PackedLayout layout) {
  return heuristic_kernels(shape, num_tokens, layout).gemm2_config;
}

Status moe_forward(MoeForwardArgs const& a) {
  W4A8_RETURN_IF_ERROR(moe::validate_forward_args(a));
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
  moe::MoePlan const plan = moe::remembered_plan_moe(s, a.num_tokens, a.max_tokens, forward_plan_options(a));
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
  // Where GEMM1 launches as the permute kernel starts, the routing's end is published to it through this word.
  auto* const routing_end =
      plan.gemm1_at_routing_end ? reinterpret_cast<uint32_t*>(at(plan.workspace.routing_end)) : nullptr;
  auto run_gemm = [&](GroupedGemmArgs const& g, uint32_t const* awaits = nullptr) {
    return gemm::grouped_gemm_in_layer(g, plan.one_block_routing, awaits);
  };

  W4A8_RETURN_IF_ERROR(mark(0));
  moe::RoutingProblem routing = routing_problem(s, tokens, a.expert_map, a.stream);
  routing.topk_ids = a.topk_ids;
  routing.chunk_counts = reinterpret_cast<int32_t*>(at(plan.workspace.chunk_counts));
  routing.offsets = offsets;
  routing.dest_row = dest_row;
  routing.row_slot = reinterpret_cast<int32_t*>(at(plan.workspace.row_slot));
  routing.fill = fill;
  routing.routing_end = routing_end;
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
                                                act1, scale1, group_sums(plan.workspace.sums1), routing_end,
                                                a.stream));

  W4A8_RETURN_IF_ERROR(mark(2));
  W4A8_RETURN_IF_ERROR(run_gemm(gemm1, routing_end));

  W4A8_RETURN_IF_ERROR(mark(3));
  W4A8_CUDA_RETURN(moe::launch_silu_mul_quantize(at(plan.workspace.gemm1_out), a.act_type,
                                                 {a.activation, a.swiglu_limit}, plan.rows, s.inter,
                                                 offsets, s.num_local_experts, act2, scale2,
                                                 group_sums(plan.workspace.sums2), plan.gemm2.works_before_wait,
                                                 a.stream));

  W4A8_RETURN_IF_ERROR(mark(4));
  W4A8_RETURN_IF_ERROR(run_gemm(gemm2));

  W4A8_RETURN_IF_ERROR(mark(5));
  W4A8_CUDA_RETURN(moe::launch_unpermute(at(plan.workspace.gemm2_out), a.act_type, tokens, s.hidden, s.top_k,
                                         dest_row, topk_weights, a.apply_router_weight_on_input, a.out, routing_end,
                                         a.stream));
  return mark(6);
}

}  // namespace w4a8moe
