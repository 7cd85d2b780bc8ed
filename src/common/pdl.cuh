// Programmatic dependent launch (PDL) for the library's own kernels. A kernel launched with launch_with_pdl() may
// start while the previous kernel in the stream is still running: its launch and block set-up overlap that
// kernel's tail. So every such kernel calls pdl_wait_for_previous_grid() (returns once the previous grid has
// finished and its writes are visible), and pdl_allow_next_grid() to let the next PDL kernel start early in turn.
// Without the launch attribute both are no-ops. CUTLASS's grouped kernels are launched without it: they read their
// arguments before any such wait. The rules, which scripts/sass_pdl_check.py checks in the SASS (ACQBULK is the
// wait, PREEXIT the launch; a ctest where cuobjdump is installed, and scripts/gpu-check.sh):
// - A kernel lets the next one launch only after its own wait. So whenever a kernel runs, every kernel two or more
//   launches before it has ended: what those wrote may be read before the wait. Three exceptions, all in the MoE
//   layer, for kernels whose next kernel reads nothing before its wait but the routing's outputs (the offsets, rows
//   and weights) and data no kernel writes (weights, scales); the routing has ended whenever a kernel after GEMM1
//   starts. Where GEMM2 is the decode kernel, the SiLU kernel lets it launch before its own wait, so GEMM2 may start
//   while GEMM1 runs. The decode kernel, where it knows the routing has ended and the rank expects few rows
//   (gemm/stream_plan.h, decode_launches_next_early), lets the next kernel (SiLU, unpermute) launch as it starts.
//   And where GEMM1 is the decode kernel (MoePlan::gemm1_at_routing_end) the permute kernel lets it launch as the
//   permute starts, so GEMM1 may start while the routing runs: GEMM1 reads the routing's outputs before its wait
//   only after await_routing_end_in_thread() and a barrier. The permute kernel, once its own wait has returned (the
//   routing has ended, its outputs are visible), stores kRoutingEnded to a workspace word with release semantics
//   (publish_routing_end), which GEMM1 loads with acquire semantics; GEMM1 lets its next kernel launch only after
//   that. The word is the first of every plan's workspace (WorkspacePlan), so no other layer's data sits there; the
//   unpermute kernel clears it as it ends (every kernel that polled it has ended by then) and the routing kernel as
//   it starts, before it lets the permute kernel launch, so a word left from an earlier call is never read as this
//   call's. Otherwise the permute kernel keeps the rule.
// - Before the wait, global memory is read only through L2 (__ldcg): the wait is also the grid's acquire, and an
//   SM's L1 may hold an older line until then. Only what kernels that have ended (above) wrote is read there.
// - No non-coherent load (of `const __restrict__` data) comes before a wait: the compiler treats such loads as
//   invariant and may hoist them above it, as it did with the permute kernel's rows once (bench/NOTES.md §71).
//   Where a kernel works before its wait, what an earlier grid wrote is read through plain pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include <utility>

namespace w4a8moe {

__device__ __forceinline__ void pdl_wait_for_previous_grid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

__device__ __forceinline__ void pdl_allow_next_grid() { asm volatile("griddepcontrol.launch_dependents;" :::); }

// The routing's end, as the permute kernel publishes it to GEMM1 (the third exception above): a value no cleared or
// poisoned workspace word holds.
inline constexpr uint32_t kRoutingEnded = 0x52E1D0A7u;

__device__ __forceinline__ void publish_routing_end(uint32_t* word) {
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(word), "r"(kRoutingEnded) : "memory");
}

// Clears the word (one thread calls it): the routing kernels as they start, before their trigger, and the unpermute
// kernel as it ends (the third exception above). Null: the layer publishes no routing's end.
__device__ __forceinline__ void clear_routing_end(uint32_t* word) {
  if (word != nullptr) *word = 0u;
}

// Returns once the routing's end is published: polls with acquire semantics. One thread of a block calls it, and a
// barrier after it passes what it acquired on to the block (as CUTLASS's semaphore does). Not inlined: inlined, the
// loop made ptxas spill 16 bytes in the decode kernel's one-tile instance (80 registers).
static __device__ __noinline__ void await_routing_end_in_thread(uint32_t const* word) {
  for (;;) {
    uint32_t value;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(value) : "l"(word) : "memory");
    if (value == kRoutingEnded) return;
    __nanosleep(32);
  }
}

// Lets `kernel` take dynamic shared memory past the default 48 KB (per call: the attribute is per device). An error
// is returned, not left for the next check.
template <class... Params>
cudaError_t allow_dynamic_shared_memory(void (*kernel)(Params...), size_t shared_bytes) {
  if (shared_bytes <= 48 * 1024) return cudaSuccess;
  cudaError_t const error =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
  if (error != cudaSuccess) cudaGetLastError();
  return error;
}

// cluster_x > 1 also groups consecutive blocks along x into thread-block clusters of that size. Dynamic shared
// memory past the default 48 KB is allowed first.
template <class... Params, class... Args>
cudaError_t launch_with_pdl_in_clusters(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                                        cudaStream_t stream, unsigned cluster_x, Args&&... args) {
  if (cudaError_t const error = allow_dynamic_shared_memory(kernel, shared_bytes); error != cudaSuccess) return error;
  cudaLaunchAttribute attributes[2]{};
  attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[0].val.programmaticStreamSerializationAllowed = 1;
  attributes[1].id = cudaLaunchAttributeClusterDimension;
  attributes[1].val.clusterDim.x = cluster_x;
  attributes[1].val.clusterDim.y = 1;
  attributes[1].val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = cluster_x > 1 ? 2 : 1;
  cudaError_t const error = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  // The error is returned here; cleared, so that the next launch's cudaGetLastError() does not report it again.
  if (error != cudaSuccess) cudaGetLastError();
  return error;
}

template <class... Params, class... Args>
cudaError_t launch_with_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                            Args&&... args) {
  return launch_with_pdl_in_clusters(kernel, grid, block, shared_bytes, stream, 1u, std::forward<Args>(args)...);
}

}  // namespace w4a8moe
