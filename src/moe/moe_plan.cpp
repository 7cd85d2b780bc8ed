#include "moe/moe_plan.h"

#include <algorithm>

#include "gemm/built_arrays.h"
#include "gemm/heuristic.h"
#include "moe/decode_layer.h"
#include "moe/moe_kernels.h"
#include "w4a8moe/grouped_gemm.h"

namespace w4a8moe::moe {
namespace {

GemmStagePlan plan_gemm(ExpertWeightShape const& shape, MoePlan const& plan, std::string const& config,
                        PackedLayout layout) {
  GroupedGemmArgs args;
  args.shape = shape;
  args.layout = layout;
  args.total_rows = plan.rows;
  args.expected_rows_hint = plan.expected_local_rows;
  GemmStagePlan stage;
  stage.shape = shape;
  stage.config = config.empty() ? select_gemm_config(args) : config;
  args.config = stage.config;
  stage.arrays_from_routing = plan.one_block_routing && gemm::reads_expert_arrays(args);
  stage.works_before_wait = gemm::works_before_wait(args);
  return stage;
}

}  // namespace

MoePlan plan_moe(MoeShape const& shape, int64_t tokens, int64_t max_tokens, MoePlanOptions const& options) {
  MoePlan plan;
  plan.tokens = tokens;
  plan.rows = tokens * shape.top_k;
  plan.expected_local_rows = std::max<int64_t>(1, plan.rows * shape.num_local_experts / shape.num_experts);
  bool const fits = decode_layer_runs(options.layout, options.activation, options.biases) &&
                    decode_layer_fits(shape, tokens, options.from_logits);
  bool const staged_asked = options.stage_events || !options.gemm1_config.empty() || !options.gemm2_config.empty();
  plan.one_launch = options.path == MoePath::kOneLaunch
                        ? fits
                        : options.path == MoePath::kAuto && fits && !staged_asked &&
                              decode_layer_pays(shape, tokens, options.layout);
  plan.group_sums = options.layout == PackedLayout::kExactScales && !plan.one_launch;
  plan.workspace = plan_workspace(shape, max_tokens > 0 ? max_tokens : tokens);
  plan.one_block_routing = routes_in_one_block(tokens, shape.top_k, shape.num_local_experts);
  plan.gemm1 = plan_gemm(gemm1_shape(shape), plan, options.gemm1_config, options.layout);
  plan.gemm2 = plan_gemm(gemm2_shape(shape), plan, options.gemm2_config, options.layout);
  plan.gemm1_at_routing_end = !plan.one_launch && plan.gemm1.works_before_wait;
  return plan;
}

}  // namespace w4a8moe::moe
