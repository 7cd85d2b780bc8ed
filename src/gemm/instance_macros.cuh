// Defines the registry entry points of one config (see registry.h) for both output types.
#pragma once

#include <cutlass/bfloat16.h>
#include <cutlass/half.h>

#include <algorithm>

#include "gemm/registry.h"
#include "gemm/w4a8_grouped_sm90.cuh"

namespace w4a8moe::gemm {

template <int kTileM, int kTileN, int kClusterM, int kClusterN, Schedule kSchedule>
struct W4A8GroupedInstance {
  template <class ElementOut>
  using Kernel = W4A8GroupedKernel<kTileM, kTileN, kClusterM, kClusterN, kSchedule, ElementOut>;

  static size_t workspace(int num_experts, int sm_count) {
    return std::max(Kernel<cutlass::bfloat16_t>::workspace_bytes(num_experts, sm_count),
                    Kernel<cutlass::half_t>::workspace_bytes(num_experts, sm_count));
  }

  static Status run(GroupedGemmParams const& params, void* workspace, size_t workspace_bytes) {
    size_t const arrays_bytes = expert_arrays_bytes(params.shape.num_experts);
    ExpertArrays const arrays = carve_expert_arrays(workspace, params);
    if (!params.arrays_built) W4A8_CUDA_RETURN(launch_build_expert_arrays(params, workspace, params.stream));
    void* cutlass_workspace = static_cast<char*>(workspace) + arrays_bytes;
    size_t const cutlass_bytes = workspace_bytes - arrays_bytes;
    return params.out_type == OutputType::kBF16
               ? Kernel<cutlass::bfloat16_t>::run(params, arrays, cutlass_workspace, cutlass_bytes)
               : Kernel<cutlass::half_t>::run(params, arrays, cutlass_workspace, cutlass_bytes);
  }
};

}  // namespace w4a8moe::gemm

#define W4A8_GEMM_INSTANCE(tm, tn, cm, cn, sched)                                                              \
  namespace w4a8moe::gemm {                                                                                    \
  using Instance_##tm##x##tn##_##cm##x##cn##_##sched = W4A8GroupedInstance<tm, tn, cm, cn, Schedule::k##sched>; \
  size_t W4A8_GEMM_FN(tm, tn, cm, cn, sched, workspace)(int num_experts, int sm_count) {                       \
    return Instance_##tm##x##tn##_##cm##x##cn##_##sched::workspace(num_experts, sm_count);                     \
  }                                                                                                            \
  Status W4A8_GEMM_FN(tm, tn, cm, cn, sched, run)(GroupedGemmParams const& params, void* workspace,             \
                                                  size_t workspace_bytes) {                                    \
    return Instance_##tm##x##tn##_##cm##x##cn##_##sched::run(params, workspace, workspace_bytes);              \
  }                                                                                                            \
  }
