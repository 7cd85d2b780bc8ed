// wgmma with the A operand in registers (RS): e4m3 x e4m3 -> fp32, M = 64, K = 32, N = kRows (8 so far); B
// from a shared-memory descriptor. Each of the warpgroup's warps passes its 16 rows of A as four registers of four
// e4m3 (rows lane/4 and lane/4 + 8, K 4 (lane % 4).. and 16 + 4 (lane % 4)..); the accumulator d[4j + 2h + t] is
// row lane/4 + 8h of the warp's 16, column 8j + 2 (lane % 4) + t.
#pragma once

#include <cstdint>

namespace w4a8moe::gemm {

template <int kRows>
__device__ __forceinline__ void wgmma_e4m3_rs(float (&d)[kRows / 2], uint32_t const (&a)[4], uint64_t desc);

template <>
__device__ __forceinline__ void wgmma_e4m3_rs<8>(float (&d)[4], uint32_t const (&a)[4], uint64_t desc) {
  asm volatile(
      "{ .reg .pred p; setp.ne.b32 p, %9, 0; "
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1; }"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

// Keeps the compiler from moving accumulator reads or writes across a wgmma (CUTLASS's warpgroup_fence_operand).
template <int kRows>
__device__ __forceinline__ void fence_accumulators(float (&d)[kRows / 2]) {
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

}  // namespace w4a8moe::gemm
