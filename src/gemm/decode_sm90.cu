// The decode kernel: a W4A8 grouped GEMM for few rows per expert, written to stream the int4 weights at HBM speed.
//
// Why not CUTLASS's mixed-input mainloop here: with 16 tokens a tile's wgmma is tiny, so each k-tile's
// smem -> register -> LUT-convert -> wgmma chain is latency-bound, one CTA per SM, and it moves the weights at about
// 65 % of HBM bandwidth (bench/NOTES.md). This kernel keeps the same packed format and numerics but:
//   - one producer warp streams each work item's weights with bulk copies (cp.async.bulk, mbarrier completion), one
//     128-wide quantisation group (128 channels x 128 K = 8 KB of int4 + 1 KB of lookup tables) per stage;
//   - four consumer warps convert int4 -> e4m3 by lookup table (PRMT), e4m3 -> f16 (exact), and multiply with
//     mma.sync m16n8k16 (f16 in, fp32 accumulators; Hopper has no fp8 mma.sync, ptxas would emulate it less
//     efficiently). The prepacked weights are in the e4m3 m16n8k32 A-fragment order (the reorder atom is one warp's
//     wgmma register fragment), one 8-byte load per lane and atom; each 32-wide K block becomes two k16 MMAs over a
//     permuted K order that A and B share (see mma_block). The products are exact and the sums fp32, so this path is
//     slightly more accurate than the wgmma one;
//   - several small CTAs per SM, each with its own pipeline, keep enough bytes in flight;
//   - work items (expert, 128 channels, up to 32 tokens) are dealt round-robin to a persistent grid, skipping experts
//     without rows, all from expert_offsets on the device (no set-up kernel, no host sync).
// Activations (a few rows of K bytes per expert) are read from global memory: they stay in L2 across the expert's
// channel tiles.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include <mutex>

#include "common/status_util.h"
#include "gemm/decode_sm90.h"

namespace w4a8moe::gemm {
namespace {

constexpr int kTileN = 128;             // output channels per work item: 8 atoms of 16 rows
constexpr int kAtomBytes = 256;         // one 16 x 32 int4 atom: 32 lanes x 8 bytes
constexpr int kConsumerWarps = 4;       // each owns 2 atoms (32 channels)
constexpr int kTokenTiles = kDecodeMaxTokens / 8;  // mma n-tiles of 8 tokens
constexpr int kStages = 6;
constexpr int kGroupK = 128;
constexpr int kChunkBytes = (kTileN / 16) * kAtomBytes;  // one 32-wide K block of the tile: 2 KB
constexpr int kStageWeightBytes = kChunkBytes * (kGroupK / 32);
constexpr int kStageLutBytes = kTileN * 8;
constexpr int kThreads = 32 * (kConsumerWarps + 1);

struct SharedStorage {
  alignas(128) uint8_t weights[kStages][kStageWeightBytes];
  alignas(128) uint8_t luts[kStages][kStageLutBytes];
  alignas(8) uint64_t full[kStages];
  alignas(8) uint64_t empty[kStages];
};

struct Params {
  uint8_t const* weights;  // packed weights section
  size_t weight_bytes_per_expert;
  uint8_t const* luts;  // packed lookup-table section, [E][K/128][N] x 8 bytes
  size_t lut_bytes_per_expert;
  float const* channel_scales;  // [E][N]
  uint8_t const* act;           // e4m3 [total_rows, K]
  float const* token_scales;
  int64_t const* offsets;
  void* out;
  int n, k, num_experts;
  int64_t total_rows;
};

// Rows of expert e, or none if its offsets break the rules (as build_expert_arrays treats them).
__device__ void expert_rows(Params const& p, int e, int64_t* first, int64_t* count) {
  int64_t const begin = p.offsets[e], end = p.offsets[e + 1];
  bool const valid = begin >= 0 && end >= begin && end <= p.total_rows;
  *first = valid ? begin : 0;
  *count = valid ? end - begin : 0;
}

// Walks this CTA's work items in order: (expert, channel tile, token chunk), every gridDim.x-th item.
template <class Visit>
__device__ void for_each_item(Params const& p, Visit&& visit) {
  int const tiles = (p.n + kTileN - 1) / kTileN;
  int64_t item = 0;
  for (int e = 0; e < p.num_experts; ++e) {
    int64_t first, rows;
    expert_rows(p, e, &first, &rows);
    int64_t const chunks = (rows + kDecodeMaxTokens - 1) / kDecodeMaxTokens;
    int64_t const items = chunks * tiles;
    // The first of this expert's items that is ours, then every gridDim.x-th.
    int64_t i = (blockIdx.x - item % gridDim.x + gridDim.x) % gridDim.x;
    for (; i < items; i += gridDim.x) {
      int const tile = int(i % tiles);
      int64_t const chunk = i / tiles;
      int64_t const left = rows - chunk * kDecodeMaxTokens;
      int const tokens = int(left < kDecodeMaxTokens ? left : kDecodeMaxTokens);
      visit(e, tile * kTileN, first + chunk * kDecodeMaxTokens, tokens);
    }
    item += items;
  }
}

// 4 int4 codes (16 bits) -> 4 e4m3 bytes through the (group, channel) lookup tables: byte i of `negative` is
// e4m3((i - 8) sg); `positive` is the same with the sign flipped and a zero at index 0 (design 2).
__device__ uint32_t lut_convert(uint32_t codes, uint2 negative, uint2 positive) {
  uint32_t const index = codes & 0x7777u;                     // low 3 bits of each code select the byte
  uint32_t const select = 0x3210u | ((codes & 0x8888u) >> 1);  // sign bit set: take the negative table's byte
  uint32_t neg, pos, out;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(neg) : "r"(negative.x), "r"(negative.y), "r"(index));
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(pos) : "r"(positive.x), "r"(positive.y), "r"(index));
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(out) : "r"(pos), "r"(neg), "r"(select));
  return out;
}

// 4 e4m3 bytes -> two f16x2: {bytes 0, 1} and {bytes 2, 3} (exact: every e4m3 value is an f16).
__device__ uint2 e4m3x4_to_f16(uint32_t x) {
  __half2_raw const lo = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(x & 0xFFFF), __NV_E4M3);
  __half2_raw const hi = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(x >> 16), __NV_E4M3);
  return make_uint2(uint32_t(lo.x) | (uint32_t(lo.y) << 16), uint32_t(hi.x) | (uint32_t(hi.y) << 16));
}

__device__ void mma_f16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// One 16-row x 32-K atom times one 8-token B block, as two k16 MMAs. Lane (g = lane/4, q = lane%4) holds K 4q..4q+3
// (half 0) and 4q+16..4q+19 (half 1) of rows g and g + 8. Each half is one k16 MMA whose K positions (2q, 2q+1,
// 2q+8, 2q+9) stand for real K 4q..4q+3: a permutation of the half's 16 K, applied to A and B alike.
//   a_row_g[h], a_row_g8[h]: e4m3 x4 of rows g, g + 8 in half h, as f16 pairs; b[h]: the tokens' e4m3 x4 likewise.
__device__ void mma_block(float (&d)[4], uint2 const (&a_row_g)[2], uint2 const (&a_row_g8)[2], uint2 const (&b)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) mma_f16(d, a_row_g[h].x, a_row_g8[h].x, a_row_g[h].y, a_row_g8[h].y, b[h].x, b[h].y);
}

template <class Out>
__device__ Out to_out(float x);
template <>
__device__ __nv_bfloat16 to_out<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __half to_out<__half>(float x) {
  return __float2half_rn(x);
}

template <class Out>
__global__ void __launch_bounds__(kThreads) w4a8_decode_kernel(Params const p) {
  extern __shared__ __align__(128) uint8_t shared_raw[];
  SharedStorage& smem = *reinterpret_cast<SharedStorage*>(shared_raw);
  int const warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  using Barrier = cutlass::arch::ClusterTransactionBarrier;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      Barrier::init(&smem.full[s], 1);
      Barrier::init(&smem.empty[s], kConsumerWarps);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  int const groups = p.k / kGroupK;
  int const atoms_n = p.n / 16;  // atoms along N in the packed layout

  if (warp == kConsumerWarps) {
    // Producer: one lane issues the bulk copies of each stage.
    if (lane != 0) return;
    int64_t step = 0;
    for_each_item(p, [&](int e, int n0, int64_t, int) {
      int const rows = min(kTileN, p.n - n0);
      int const chunk_bytes = (rows / 16) * kAtomBytes;
      uint8_t const* weights = p.weights + size_t(e) * p.weight_bytes_per_expert + size_t(n0 / 16) * kAtomBytes;
      uint8_t const* luts = p.luts + size_t(e) * p.lut_bytes_per_expert + size_t(n0) * 8;
      for (int g = 0; g < groups; ++g, ++step) {
        int const s = int(step % kStages);
        Barrier::wait(&smem.empty[s], uint32_t(((step / kStages) & 1) ^ 1));
        Barrier::arrive_and_expect_tx(&smem.full[s], uint32_t(4 * chunk_bytes + rows * 8));
        for (int kb = 0; kb < kGroupK / 32; ++kb) {
          size_t const column = size_t(g * (kGroupK / 32) + kb) * atoms_n * kAtomBytes;
          cute::SM90_BULK_COPY_G2S::copy(weights + column, &smem.full[s], smem.weights[s] + kb * kChunkBytes,
                                         chunk_bytes);
        }
        cute::SM90_BULK_COPY_G2S::copy(luts + size_t(g) * p.n * 8, &smem.full[s], smem.luts[s], rows * 8);
      }
    });
    return;
  }

  // Consumers: warp w owns atoms 2w and 2w + 1 of the tile (channels n0 + 32w ... + 31).
  int64_t step = 0;
  for_each_item(p, [&](int e, int n0, int64_t first_row, int tokens) {
    int const rows = min(kTileN, p.n - n0);
    int const token_tiles = (tokens + 7) / 8;  // MMAs only for the 8-token blocks that hold tokens
    float acc[2][kTokenTiles][4] = {};
    for (int g = 0; g < groups; ++g, ++step) {
      // Activations of this group (B): token 8j + lane/4, K (lane%4)*4 + 0..3 and + 16 of each 32-wide block, as f16
      // pairs. Loaded before waiting for the weights, to overlap the two.
      uint2 b[kGroupK / 32][kTokenTiles][2];
#pragma unroll
      for (int kb = 0; kb < kGroupK / 32; ++kb) {
#pragma unroll
        for (int j = 0; j < kTokenTiles; ++j) {
          if (j >= token_tiles) continue;
          int const token = 8 * j + lane / 4;
          int64_t const k0 = int64_t(g) * kGroupK + kb * 32 + (lane % 4) * 4;
          uint32_t const* src = reinterpret_cast<uint32_t const*>(p.act + (first_row + token) * p.k + k0);
          b[kb][j][0] = e4m3x4_to_f16(token < tokens ? __ldg(src) : 0u);
          b[kb][j][1] = e4m3x4_to_f16(token < tokens ? __ldg(src + 4) : 0u);
        }
      }
      int const s = int(step % kStages);
      Barrier::wait(&smem.full[s], uint32_t((step / kStages) & 1));
#pragma unroll
      for (int a = 0; a < 2; ++a) {
        int const atom = 2 * warp + a;
        if (atom * 16 >= rows) continue;
        // Lookup tables of this lane's two channels (atom rows lane/4 and lane/4 + 8) for this group.
        uint2 negative[2], positive[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          negative[h] = *reinterpret_cast<uint2 const*>(smem.luts[s] + (atom * 16 + lane / 4 + 8 * h) * 8);
          positive[h] = make_uint2((negative[h].x & 0xFFFFFF00u) ^ 0x80808080u, negative[h].y ^ 0x80808080u);
        }
#pragma unroll
        for (int kb = 0; kb < kGroupK / 32; ++kb) {
          uint2 const codes =
              *reinterpret_cast<uint2 const*>(smem.weights[s] + kb * kChunkBytes + atom * kAtomBytes + lane * 8);
          // Codes 0-3: row g, half 0; 4-7: row g + 8, half 0; 8-11: row g, half 1; 12-15: row g + 8, half 1.
          uint2 const row_g[2] = {e4m3x4_to_f16(lut_convert(codes.x & 0xFFFF, negative[0], positive[0])),
                                  e4m3x4_to_f16(lut_convert(codes.y & 0xFFFF, negative[0], positive[0]))};
          uint2 const row_g8[2] = {e4m3x4_to_f16(lut_convert(codes.x >> 16, negative[1], positive[1])),
                                   e4m3x4_to_f16(lut_convert(codes.y >> 16, negative[1], positive[1]))};
#pragma unroll
          for (int j = 0; j < kTokenTiles; ++j) {
            if (j < token_tiles) mma_block(acc[a][j], row_g, row_g8, b[kb][j]);
          }
        }
      }
      __syncwarp();
      if (lane == 0) Barrier::arrive(&smem.empty[s]);
    }
    // Epilogue: out[token, channel] = acc * sc[channel] * st[token]. Accumulator c0, c1: channel lane/4, tokens
    // 8j + (lane%4)*2 + 0, 1; c2, c3: channel lane/4 + 8.
    Out* out = static_cast<Out*>(p.out);
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      int const atom = 2 * warp + a;
      if (atom * 16 >= rows) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        int const channel = n0 + atom * 16 + lane / 4 + 8 * h;
        float const sc = p.channel_scales[size_t(e) * p.n + channel];
#pragma unroll
        for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            int const token = 8 * j + (lane % 4) * 2 + c;
            if (token >= tokens) continue;
            int64_t const row = first_row + token;
            out[row * p.n + channel] = to_out<Out>(sc * (p.token_scales[row] * acc[a][j][2 * h + c]));
          }
        }
      }
    }
  });
}

template <class Out>
Status launch(Params const& p, int sm_count, cudaStream_t stream) {
  static int blocks_per_sm = 0;
  static cudaError_t setup_error = cudaSuccess;
  static std::once_flag once;
  std::call_once(once, [] {
    setup_error = cudaFuncSetAttribute(w4a8_decode_kernel<Out>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(sizeof(SharedStorage)));
    if (setup_error == cudaSuccess) {
      setup_error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, w4a8_decode_kernel<Out>, kThreads,
                                                                  sizeof(SharedStorage));
    }
  });
  W4A8_CUDA_RETURN(setup_error);
  int const grid = std::max(1, blocks_per_sm) * sm_count;
  w4a8_decode_kernel<Out><<<grid, kThreads, sizeof(SharedStorage), stream>>>(p);
  W4A8_CUDA_RETURN(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status run_decode_gemm(GroupedGemmParams const& params) {
  Params p;
  p.weights = params.packed + params.sections.weights;
  p.weight_bytes_per_expert = params.sections.weight_bytes_per_expert;
  p.luts = params.packed + params.sections.group_scales;
  p.lut_bytes_per_expert = params.sections.group_scale_bytes_per_expert;
  p.channel_scales = reinterpret_cast<float const*>(params.packed + params.sections.channel_scales);
  p.act = static_cast<uint8_t const*>(params.act);
  p.token_scales = params.token_scales;
  p.offsets = params.expert_offsets;
  p.out = params.out;
  p.n = params.shape.n;
  p.k = params.shape.k;
  p.num_experts = params.shape.num_experts;
  p.total_rows = params.total_rows;
  return params.out_type == OutputType::kBF16 ? launch<__nv_bfloat16>(p, params.sm_count, params.stream)
                                              : launch<__half>(p, params.sm_count, params.stream);
}

}  // namespace w4a8moe::gemm
