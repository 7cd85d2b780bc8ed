#include "gemm/expert_arrays.cuh"

#include "common/pdl.cuh"

namespace w4a8moe::gemm {
namespace {

__global__ void build_expert_arrays(GroupedGemmParams params, void* workspace) {
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < params.shape.num_experts; e += gridDim.x * blockDim.x) {
    fill_expert_arrays(params, workspace, e, params.expert_offsets[e], params.expert_offsets[e + 1]);
  }
}

}  // namespace

size_t expert_arrays_bytes(int num_experts) {
  ExpertArrays arrays{};
  return place_expert_arrays(arrays, 0, num_experts);
}

ExpertArrays carve_expert_arrays(void* workspace, GroupedGemmParams const& params) {
  ExpertArrays arrays{};
  place_expert_arrays(arrays, reinterpret_cast<uintptr_t>(workspace), params.shape.num_experts);
  arrays.weight_layout =
      reinterpret_cast<LayoutWeightReordered*>(const_cast<uint8_t*>(params.packed) + params.sections.layouts);
  return arrays;
}

cudaError_t launch_build_expert_arrays(GroupedGemmParams const& params, void* workspace, cudaStream_t stream) {
  constexpr int kThreads = 128;
  int const blocks = (params.shape.num_experts + kThreads - 1) / kThreads;
  return launch_with_pdl(build_expert_arrays, blocks, kThreads, 0, stream, params, workspace);
}

}  // namespace w4a8moe::gemm
