// wgmma with the A operand in registers (RS): e4m3 x e4m3 -> fp32, M = 64, K = 32, N = kRows (8, 16, 32, 48, 64, 128
// or 256), and a bf16 one of K = 16 that subtracts; B from a shared-memory descriptor. Each of the warpgroup's warps
// passes its 16 rows of A as four registers of four e4m3 (rows lane/4 and lane/4 + 8, K 4 (lane % 4).. and
// 16 + 4 (lane % 4)..); the accumulator d[4j + 2h + t] is row lane/4 + 8h of the warp's 16, column 8j + 2 (lane % 4)
// + t.
#pragma once

#include <cstdint>

namespace w4a8moe::gemm {

// accumulate 0: d = A B (d's old values ignored), else d += A B.
template <int kRows>
__device__ __forceinline__ void wgmma_e4m3_rs(float (&d)[kRows / 2], uint32_t const (&a)[4], uint64_t desc,
                                              uint32_t accumulate = 1);

// d -= A B in bf16 x bf16 -> fp32, K = 16 (scale-a -1), B K-major from a shared-memory descriptor. A's four registers
// hold bf16 pairs: rows lane/4 and lane/4 + 8, K 2 (lane % 4).. and 8 + 2 (lane % 4)...
template <int kRows>
__device__ __forceinline__ void wgmma_bf16_rs_subtract(float (&d)[kRows / 2], uint32_t const (&a)[4], uint64_t desc);

// One N of both: DREGS the accumulators' %-list, then the A registers', the descriptor's and the flag's numbers.
#define W4A8_WGMMA_RS(N, DREGS, AREGS, DESC, FLAG, ...)                                                           \
  template <>                                                                                                    \
  __device__ __forceinline__ void wgmma_e4m3_rs<N>(float (&d)[N / 2], uint32_t const (&a)[4], uint64_t desc,     \
                                                   uint32_t accumulate) {                                         \
    asm volatile("{ .reg .pred p; setp.ne.b32 p, " FLAG ", 0; "                                                   \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k32.f32.e4m3.e4m3 {" DREGS "}, {" AREGS "}, " DESC       \
                 ", p, 1, 1; }"                                                                                   \
                 : __VA_ARGS__                                                                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate));                      \
  }                                                                                                              \
  template <>                                                                                                    \
  __device__ __forceinline__ void wgmma_bf16_rs_subtract<N>(float (&d)[N / 2], uint32_t const (&a)[4],           \
                                                            uint64_t desc) {                                      \
    asm volatile("{ .reg .pred p; setp.ne.b32 p, 1, 0; "                                                         \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 {" DREGS "}, {" AREGS "}, " DESC       \
                 ", p, -1, 1, 0; }"                                                                               \
                 : __VA_ARGS__                                                                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));                                         \
  }

#define W4A8_D4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define W4A8_D8(i) W4A8_D4(i), W4A8_D4(i + 4)
#define W4A8_D16(i) W4A8_D8(i), W4A8_D8(i + 8)
#define W4A8_D32(i) W4A8_D16(i), W4A8_D16(i + 16)

W4A8_WGMMA_RS(8, "%0,%1,%2,%3", "%4,%5,%6,%7", "%8", "%9", W4A8_D4(0))
W4A8_WGMMA_RS(16, "%0,%1,%2,%3,%4,%5,%6,%7", "%8,%9,%10,%11", "%12", "%13", W4A8_D8(0))
W4A8_WGMMA_RS(32, "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15", "%16,%17,%18,%19", "%20", "%21",
              W4A8_D16(0))
W4A8_WGMMA_RS(48,
              "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
              "%16,%17,%18,%19,%20,%21,%22,%23",
              "%24,%25,%26,%27", "%28", "%29", W4A8_D16(0), W4A8_D8(16))
W4A8_WGMMA_RS(64,
              "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
              "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31",
              "%32,%33,%34,%35", "%36", "%37", W4A8_D32(0))
W4A8_WGMMA_RS(128,
              "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
              "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
              "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
              "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63",
              "%64,%65,%66,%67", "%68", "%69", W4A8_D32(0), W4A8_D32(32))

W4A8_WGMMA_RS(256,
              "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
              "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
              "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
              "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
              "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"
              "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
              "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"
              "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127",
              "%128,%129,%130,%131", "%132", "%133", W4A8_D32(0), W4A8_D32(32), W4A8_D32(64), W4A8_D32(96))

#undef W4A8_D32
#undef W4A8_D16
#undef W4A8_D8
#undef W4A8_D4
#undef W4A8_WGMMA_RS

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
