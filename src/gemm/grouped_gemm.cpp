// Public grouped GEMM entry points: validation, workspace plan, config choice, dispatch.
#include "w4a8moe/grouped_gemm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/device_info.h"
#include "common/status_util.h"
#include "common/workspace_rules.h"
#include "gemm/built_arrays.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/expert_bias.h"
#include "gemm/heuristic.h"
#include "gemm/registry.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

// The rows the experts are expected to hold: the hint where given (an expert-parallel rank), else all rows.
int64_t expected_rows(GroupedGemmArgs const& args) {
  return args.expected_rows_hint > 0 ? std::min(args.expected_rows_hint, args.total_rows) : args.total_rows;
}

// Used to size the workspace when no device is visible: more SMs than any Hopper part has.
constexpr int kMaxSmCount = 160;

size_t workspace_bytes_for(int num_experts, int sm_count) {
  size_t cutlass_bytes = 0;
  for (auto const& entry : gemm::gemm_registry()) {
    cutlass_bytes = std::max(cutlass_bytes, entry.cutlass_workspace_bytes(num_experts, sm_count));
  }
  return prepack::align_up(gemm::expert_arrays_bytes(num_experts), kWorkspaceAlign) + cutlass_bytes;
}

int sm_count_or_max() {
  int const count = current_device_sm_count();
  return count > 0 ? count : kMaxSmCount;
}

bool exact_layout(GroupedGemmArgs const& args) { return args.layout == PackedLayout::kExactScales; }

Status validate_args(GroupedGemmArgs const& args) {
  W4A8_RETURN_IF_ERROR(validate_packed_layout(args.layout, "args.layout"));
  W4A8_RETURN_IF_ERROR(validate_weight_shape(args.shape, args.layout, "args.shape"));
  int const e = args.shape.num_experts;
  if (args.packed_weights == nullptr) return invalid_argument("args.packed_weights is null");
  if (!is_aligned(args.packed_weights, prepack::kSectionAlign)) {
    return invalid_argument("args.packed_weights must be ", prepack::kSectionAlign, "-byte aligned");
  }
  if (!rows_fit(args.total_rows, 1)) {
    return invalid_argument("args.total_rows=", args.total_rows, ": must be in [0, 2^31)");
  }
  if (args.out_type != OutputType::kBF16 && args.out_type != OutputType::kFP16) {
    return invalid_argument("args.out_type=", int(args.out_type), ": must be kBF16 or kFP16");
  }
  if (args.expert_offsets == nullptr) return invalid_argument("args.expert_offsets is null");
  if (!is_aligned(args.expert_offsets, 8)) return invalid_argument("args.expert_offsets must be 8-byte aligned");
  if (args.total_rows > 0) {
    if (args.act == nullptr) return invalid_argument("args.act is null");
    if (!is_aligned(args.act, 16)) return invalid_argument("args.act must be 16-byte aligned (TMA)");
    if (args.token_scales == nullptr) return invalid_argument("args.token_scales is null");
    if (!is_aligned(args.token_scales, 4)) return invalid_argument("args.token_scales must be 4-byte aligned");
    if (args.out == nullptr) return invalid_argument("args.out is null");
    if (!is_aligned(args.out, 16)) return invalid_argument("args.out must be 16-byte aligned (TMA)");
    if (exact_layout(args)) {
      if (args.act_group_sums == nullptr) {
        return invalid_argument("args.act_group_sums is null: required with PackedLayout::kExactScales "
                                "(compute_activation_group_sums)");
      }
      if (!is_aligned(args.act_group_sums, 16)) return invalid_argument("args.act_group_sums must be 16-byte aligned");
    }
  }
  W4A8_RETURN_IF_ERROR(gemm::validate_expert_bias(args.bias, args.layout, "args.bias"));
  if (args.max_rows_per_expert_hint < 0) {
    return invalid_argument("args.max_rows_per_expert_hint=", args.max_rows_per_expert_hint, ": must be >= 0");
  }
  if (args.expected_rows_hint < 0) {
    return invalid_argument("args.expected_rows_hint=", args.expected_rows_hint, ": must be >= 0");
  }
  if (args.host_expert_offsets != nullptr) {
    int64_t const* offsets = args.host_expert_offsets;
    if (offsets[0] < 0) return invalid_argument("args.host_expert_offsets[0]=", offsets[0], ": must be >= 0");
    for (int i = 0; i < e; ++i) {
      if (offsets[i + 1] < offsets[i]) {
        return invalid_argument("args.host_expert_offsets: not non-decreasing at expert ", i, " (", offsets[i],
                                " > ", offsets[i + 1], ")");
      }
    }
    if (offsets[e] > args.total_rows) {
      return invalid_argument("args.host_expert_offsets[E]=", offsets[e], ": exceeds args.total_rows=",
                              args.total_rows);
    }
  }
  if (!args.config.empty()) {
    W4A8_RETURN_IF_ERROR(gemm::validate_config_name(args.config, "args.config", args.layout, "args.layout"));
  }
  return validate_workspace(args.workspace, args.workspace_bytes, workspace_bytes_for(e, sm_count_or_max()),
                            "grouped_gemm_workspace_bytes(E)");
}

gemm::HeuristicInput heuristic_input(GroupedGemmArgs const& args) {
  gemm::HeuristicInput input;
  input.n = args.shape.n;
  input.k = padded_k(args.shape.k);
  input.num_experts = args.shape.num_experts;
  input.total_rows = expected_rows(args);
  input.max_rows_per_expert = args.max_rows_per_expert_hint;
  input.sm_count = sm_count_or_max();
  if (args.host_expert_offsets != nullptr) {
    input.total_rows = args.host_expert_offsets[args.shape.num_experts] - args.host_expert_offsets[0];
    for (int i = 0; i < args.shape.num_experts; ++i) {
      input.rows_per_expert.push_back(args.host_expert_offsets[i + 1] - args.host_expert_offsets[i]);
    }
  }
  return input;
}

gemm::GemmKernelEntry const& choose_kernel(GroupedGemmArgs const& args) {
  if (!args.config.empty()) return *gemm::find_gemm_kernel(args.config);
  gemm::HeuristicInput const input = heuristic_input(args);
  gemm::GemmConfig const config = exact_layout(args)                    ? gemm::select_exact_config(input)
                                   : args.layout == PackedLayout::kMxfp4 ? gemm::select_mxfp4_config(input)
                                                                         : gemm::select_config(input);
  gemm::GemmKernelEntry const* chosen = gemm::find_gemm_kernel(config.name());
  // Only a development build filtered with W4A8_GEMM_CONFIGS can lack the heuristic's choice.
  return chosen != nullptr ? *chosen : gemm::gemm_registry().front();
}

}  // namespace

size_t grouped_gemm_workspace_bytes(int num_experts) {
  if (num_experts < 1) return 0;
  return workspace_bytes_for(num_experts, sm_count_or_max());
}

std::vector<std::string> gemm_config_names(PackedLayout layout) {
  std::vector<std::string> names;
  for (auto const& entry : gemm::gemm_registry()) {
    if (entry.config.layout() == layout) names.push_back(entry.name);
  }
  return names;
}

size_t activation_group_sums_bytes(int64_t rows, int k) {
  if (!rows_fit(rows, 1) || !is_valid_size(k)) return 0;
  return size_t(gemm::group_sums_stride(rows)) * size_t(group_count(k)) * sizeof(float);
}

Status compute_activation_group_sums(void const* act, int64_t rows, int k, float* sums, cudaStream_t stream) {
  if (!is_valid_size(k)) return invalid_argument("k=", k, ": must be a positive multiple of 16");
  if (!rows_fit(rows, 1)) {
    return invalid_argument("rows=", rows, ": must be in [0, 2^31)");
  }
  if (rows > 0) {
    if (act == nullptr) return invalid_argument("act is null");
    if (!is_aligned(act, 16)) return invalid_argument("act must be 16-byte aligned");
    if (sums == nullptr) return invalid_argument("sums is null");
    if (!is_aligned(sums, 16)) return invalid_argument("sums must be 16-byte aligned");
  }
  W4A8_RETURN_IF_ERROR(require_hopper_device());
  return gemm::launch_activation_group_sums(act, rows, padded_k(k), sums, stream);
}

std::string select_gemm_config(GroupedGemmArgs const& args) {
  if (!validate_weight_shape(args.shape, args.layout).ok()) return {};
  return choose_kernel(args).name;
}

namespace gemm {

// The launchers' view of validated arguments; run() fills the device fields.
GroupedGemmParams grouped_gemm_params(GroupedGemmArgs const& args) {
  GroupedGemmParams params;
  params.shape = args.shape;
  params.shape.k = padded_k(args.shape.k);  // the kernels see whole groups: packed and activation rows are padded
  params.packed = static_cast<uint8_t const*>(args.packed_weights);
  params.sections = prepack::packed_sections(args.shape);  // the lookup-table layout's (the exact kernel's own)
  params.group_sums = args.act_group_sums;
  params.bias = args.bias;
  params.total_rows = args.total_rows;
  params.expected_rows = expected_rows(args);
  params.act = args.act;
  params.token_scales = args.token_scales;
  params.expert_offsets = args.expert_offsets;
  params.out = args.out;
  params.out_type = args.out_type;
  params.stream = args.stream;
  return params;
}

bool reads_expert_arrays(GroupedGemmArgs const& args) {
  Schedule const schedule = choose_kernel(args).config.schedule;
  return schedule == Schedule::kCooperative || schedule == Schedule::kPingpong;
}

bool works_before_wait(GroupedGemmArgs const& args) { return choose_kernel(args).config.schedule == Schedule::kDecode; }

}  // namespace gemm

namespace {

// What a call's caller knows beyond its arguments (the MoE layer's GEMMs: grouped_gemm_in_layer).
struct CallContext {
  bool arrays_built = false;
  bool offsets_before_wait = false;
  uint32_t const* routing_end = nullptr;
};

Status run(GroupedGemmArgs const& args, CallContext const& call) {
  W4A8_RETURN_IF_ERROR(validate_args(args));
  W4A8_RETURN_IF_ERROR(require_hopper_device());
  auto const& kernel = choose_kernel(args);
  if (std::getenv("W4A8MOE_LOG_CONFIG") != nullptr) {
    std::fprintf(stderr, "[w4a8moe] grouped_gemm E=%d N=%d K=%d rows=%lld -> %s\n", args.shape.num_experts,
                 args.shape.n, args.shape.k, static_cast<long long>(args.total_rows), kernel.name.c_str());
  }
  if (args.total_rows == 0) return Status::Ok();  // nothing to compute or write

  gemm::GroupedGemmParams params = gemm::grouped_gemm_params(args);
  params.arrays_built = call.arrays_built;
  params.offsets_before_wait = call.offsets_before_wait;
  params.routing_end = call.routing_end;
  params.sm_count = current_device_sm_count();
  W4A8_CUDA_RETURN(cudaGetDevice(&params.device_id));
  return kernel.run(params, args.workspace, args.workspace_bytes);
}

}  // namespace

Status grouped_gemm(GroupedGemmArgs const& args) { return run(args, {}); }

namespace gemm {

Status grouped_gemm_in_layer(GroupedGemmArgs const& args, bool arrays_built, uint32_t const* routing_end) {
  return run(args, {arrays_built, true, routing_end});
}

}  // namespace gemm
}  // namespace w4a8moe
