// Per-expert argument arrays of the pointer-array grouped kernel, carved from the caller's workspace and filled on
// the device from expert_offsets, so a call never synchronises with the host and can be captured in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "gemm/grouped_params.h"
#include "gemm/w4a8_types.cuh"

namespace w4a8moe::gemm {

struct ExpertArrays {
  UnderlyingProblemShape* problem_shapes;  // (N, rows of the expert, K): GEMM M is the channels
  ElementWeight const** weight;
  ElementAct const** act;
  StrideAct* stride_act;
  ElementGroupScale const** group_scale;
  StrideGroupScale* stride_group_scale;
  void** out;
  StrideOut* stride_out;
  float const** channel_scale;
  float const** token_scale;
  LayoutWeightReordered* weight_layout;  // lives in the packed weights, one per expert (CUTLASS wants non-const)
};

ExpertArrays carve_expert_arrays(void* workspace, GroupedGemmParams const& params);

// Launches the kernel that fills the arrays. Rows of an expert whose offsets are negative, decreasing or beyond
// params.total_rows are treated as zero rows (nothing read or written), so a corrupt offsets array cannot make the
// GEMM touch memory outside its buffers.
cudaError_t launch_build_expert_arrays(GroupedGemmParams const& params, ExpertArrays const& arrays,
                                       cudaStream_t stream);

}  // namespace w4a8moe::gemm
