// Programmatic dependent launch (PDL) for the library's own kernels. A kernel launched with launch_with_pdl() may
// start while the previous kernel in the stream is still running: its launch and block set-up overlap that
// kernel's tail. So every such kernel calls pdl_wait_for_previous_grid() before its first global memory access (it
// returns once the previous grid has finished and its writes are visible), and pdl_allow_next_grid() to let the
// next PDL kernel start early in turn. Without the launch attribute both are no-ops. CUTLASS's grouped kernels are
// launched without it: they read their arguments before any such wait.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace w4a8moe {

__device__ __forceinline__ void pdl_wait_for_previous_grid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

__device__ __forceinline__ void pdl_allow_next_grid() { asm volatile("griddepcontrol.launch_dependents;" :::); }

template <class... Params, class... Args>
cudaError_t launch_with_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                            Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace w4a8moe
