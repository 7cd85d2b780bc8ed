// The decode kernel: a few rows per expert, where CUTLASS's grouped kernel pays ~8-10 us of set-up per call and its
// consumer warp group converts one 128x128 K tile at a time (bench/NOTES.md §5, §6).
//
// Each warp streams one 16-channel stripe of one expert over a range of K groups, straight from the packed format:
// a reorder atom (16 channels x 32 K, 256 bytes) is one 8-byte load per lane, and a lane's 16 nibbles are exactly
// the A fragment of two mma.sync m16n8k16 (rows lane/4 and lane/4 + 8). The nibbles go through the same (group,
// channel) lookup table as the CUTLASS mainloop (so the products are the same e4m3 values), then e4m3 -> f16 and an
// f16 MMA with fp32 accumulation, whose products are exact. The block's warps split K; their partial sums meet in
// shared memory in a fixed order (deterministic), and one pass applies the token and channel scales.
//
// Work: a block takes one chunk of up to 8 * kTokenTiles rows of one expert (found on the device from
// expert_offsets: no host sync, no workspace) and 8 / splits stripes; the host sizes the K split so that about one
// wave of warps covers the experts that can be active.
#include "gemm/decode_gemm.h"

#include <cub/block/block_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "common/pdl.cuh"
#include "common/status_util.h"

namespace w4a8moe::gemm {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kStripeChannels = 16;  // rows of a reorder atom (prepack::reorder_atom_offset)
constexpr int kAtomK = 32;
constexpr int kAtomBytes = kStripeChannels * kAtomK / 2;
constexpr int kAtomsPerGroup = kGroupSize / kAtomK;
constexpr int kTokensPerTile = 8;  // mma.sync n
// Groups in flight per warp. 4 (with 2 blocks per SM for the registers) and 3 (3 blocks, a small spill) measured
// slower overall (bench/NOTES.md §6).
constexpr int kStages = 2;
// Resident blocks per SM the registers allow: 80 registers per thread with one token tile, 128 with two.
template <int kTokenTiles>
constexpr int kBlocksPerSm = kTokenTiles == 1 ? 3 : 2;
constexpr size_t kSharedMemoryPerSm = 228 * 1024;  // H100 and H200

struct Chunk {
  int expert;
  int rows;
  int64_t first_row;
};

// The chunk-th chunk of kChunkRows rows, counting each expert's rows in expert order; an expert whose offsets are
// not expert_rows_valid() holds none. False when there are fewer chunks. Called by the whole block.
template <int kChunkRows>
__device__ bool find_chunk(GroupedGemmParams const& p, int64_t chunk, Chunk* found) {
  using Scan = cub::BlockScan<int64_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ bool done;
  if (threadIdx.x == 0) done = false;
  int64_t chunks_before = 0;
  for (int base = 0; base < p.shape.num_experts; base += kThreads) {
    int const e = base + int(threadIdx.x);
    int64_t begin = 0, rows = 0;
    if (e < p.shape.num_experts) {
      begin = p.expert_offsets[e];
      int64_t const end = p.expert_offsets[e + 1];
      if (expert_rows_valid(begin, end, p.total_rows)) rows = end - begin;
    }
    int64_t const chunks = (rows + kChunkRows - 1) / kChunkRows;
    int64_t inclusive = 0, total = 0;
    Scan(scan_storage).InclusiveSum(chunks, inclusive, total);
    int64_t const first = chunks_before + inclusive - chunks;
    if (chunk >= first && chunk < first + chunks) {
      int64_t const skipped = (chunk - first) * kChunkRows;
      *found = {e, int(min(int64_t(kChunkRows), rows - skipped)), begin + skipped};
      done = true;
    }
    chunks_before += total;
    __syncthreads();  // scan_storage is reused, and `done` is read below
    if (done) return true;
  }
  return false;
}

__device__ __forceinline__ uint2 load_streaming(void const* address) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(address));
  return v;
}

// Two e4m3 in the low (kHigh: high) half of a word -> f16x2.
template <bool kHigh = false>
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t word) {
  uint32_t out;
  if constexpr (kHigh) {
    asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, hi; }" : "=r"(out) : "r"(word));
  } else {
    asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, lo; }" : "=r"(out) : "r"(word));
  }
  return out;
}

// prmt without __byte_perm's masking of each selector nibble to 3 bits: our selectors never set bit 3.
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t out;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(out) : "r"(a), "r"(b), "r"(selector));
  return out;
}

// The positive half {0, 7 sg, ..., 1 sg} of the lookup table from the stored negative half {-8 sg, ..., -1 sg}: the
// sign bits flipped, entry 0 (nibble 0, the value 0) zeroed. As CUTLASS's mixed-input mainloop builds it.
__device__ __forceinline__ uint2 positive_table(uint2 negative) {
  return {(negative.x & 0xFFFFFF00u) ^ 0x80808080u, negative.y ^ 0x80808080u};
}

// Four LUT-encoded nibbles (the low 16 bits of index and select) -> four e4m3 bytes: the three low bits pick the
// table entry, the sign bit picks the negative or the positive table.
__device__ __forceinline__ uint32_t lookup4(uint32_t index, uint32_t select, uint2 negative, uint2 positive) {
  uint32_t const neg = prmt(negative.x, negative.y, index);
  uint32_t const pos = prmt(positive.x, positive.y, index);
  return prmt(pos, neg, select);
}

__device__ __forceinline__ void mma_f16_16x8x16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The weights and tables one lane loads for one 128-K group (the activations, L1 hits, are loaded when used).
struct GroupFragments {
  uint2 weights[kAtomsPerGroup];  // 16 nibbles: channels lane/4 and lane/4 + 8, 8 K each
  uint2 table_low, table_high;    // lookup tables of channels lane/4 and lane/4 + 8
};

// One warp's share of one chunk: up to 8 * kTokenTiles rows of one expert, one 16-channel stripe.
struct WarpItem {
  int expert;
  int stripe;
  int rows;
  int32_t first_row;
};

// A lane's pointers to the next group of its warp's stripe to load: each group adds a constant, so the loop has no
// 64-bit index arithmetic for the weights.
struct StripeCursor {
  uint8_t const* weights;  // the lane's 8 bytes of the group's first atom
  uint2 const* table;      // the table of channel lane/4 (channel lane/4 + 8: 8 entries on)
};

// Bytes between consecutive K atoms of a stripe.
__device__ __forceinline__ size_t atom_stride(int n) { return size_t(n / kStripeChannels) * kAtomBytes; }

__device__ __forceinline__ StripeCursor stripe_cursor(GroupedGemmParams const& p, WarpItem const& w, int group) {
  int const lane = int(threadIdx.x) % 32, n = p.shape.n;
  StripeCursor c;
  c.weights = p.packed + p.sections.weights + size_t(w.expert) * p.sections.weight_bytes_per_expert +
              size_t(group) * kAtomsPerGroup * atom_stride(n) + size_t(w.stripe) * kAtomBytes + lane * 8;
  c.table = reinterpret_cast<uint2 const*>(p.packed + p.sections.group_scales +
                                           size_t(w.expert) * p.sections.group_scale_bytes_per_expert) +
            size_t(group) * n + w.stripe * kStripeChannels + lane / 4;
  return c;
}

// Issues the loads of the cursor's group: 4 atoms (8 bytes per lane each) and the two channels' tables.
__device__ __forceinline__ void load_group(int n, StripeCursor& c, GroupFragments& f) {
#pragma unroll
  for (int a = 0; a < kAtomsPerGroup; ++a) f.weights[a] = load_streaming(c.weights + a * atom_stride(n));
  f.table_low = __ldg(c.table);
  f.table_high = __ldg(c.table + 8);
  c.weights += kAtomsPerGroup * atom_stride(n);
  c.table += n;
}

// Multiplies one loaded group into acc. The activations (L1 hits: the block's warps share them) load here.
template <int kTokenTiles>
__device__ __forceinline__ void multiply_group(GroupedGemmParams const& p, WarpItem const& w, int group,
                                               GroupFragments const& f, float (&acc)[kTokenTiles][4]) {
  int const lane = int(threadIdx.x) % 32, k = p.shape.k;
  int const tiles = (w.rows + kTokensPerTile - 1) / kTokensPerTile;
  // Token lane/4 of each tile, at this lane's K (4c..4c+3 of each half atom, c = lane % 4).
  uint8_t const* act = static_cast<uint8_t const*>(p.act) + int64_t(w.first_row + lane / 4) * k + (lane % 4) * 4 +
                       group * kGroupSize;
  uint32_t x[kTokenTiles][kAtomsPerGroup][2];
#pragma unroll
  for (int t = 0; t < kTokenTiles; ++t) {
    bool const has_row = t * kTokensPerTile + lane / 4 < w.rows;
#pragma unroll
    for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        x[t][a][h] = has_row ? __ldg(reinterpret_cast<uint32_t const*>(act + int64_t(t * kTokensPerTile) * k +
                                                                       a * kAtomK + h * 16))
                             : 0u;
      }
    }
  }
  uint2 const pos_low = positive_table(f.table_low), pos_high = positive_table(f.table_high);
#pragma unroll
  for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      // Nibbles 0-3: channel lane/4 at K 4c..4c+3 of this half atom (c = lane % 4); nibbles 4-7: channel + 8.
      uint32_t const word = h == 0 ? f.weights[a].x : f.weights[a].y;
      uint32_t const index = word & 0x77777777u;
      uint32_t select;  // per nibble j: j, or j + 4 (the negative table) when its sign bit is set
      asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(select) : "r"(word), "r"(0x88888888u), "r"(0x64206420u));
      select >>= 1;
      uint32_t const low = lookup4(index, select, f.table_low, pos_low);
      uint32_t const high = lookup4(index >> 16, select >> 16, f.table_high, pos_high);
      // mma k slots {2c, 2c+1} <- K {4c, 4c+1}, slots {2c+8, 2c+9} <- K {4c+2, 4c+3}; the activations match.
      uint32_t const a0 = e4m3x2_to_f16x2(low), a2 = e4m3x2_to_f16x2<true>(low);
      uint32_t const a1 = e4m3x2_to_f16x2(high), a3 = e4m3x2_to_f16x2<true>(high);
#pragma unroll
      for (int t = 0; t < kTokenTiles; ++t) {
        if (t > 0 && t >= tiles) break;
        uint32_t const act4 = x[t][a][h];
        mma_f16_16x8x16(acc[t], a0, a1, a2, a3, e4m3x2_to_f16x2(act4), e4m3x2_to_f16x2<true>(act4));
      }
    }
  }
}

template <class Out>
__device__ __forceinline__ Out to_output(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 to_output<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half to_output<__half>(float x) { return __float2half_rn(x); }

template <int kTokenTiles, class Out>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm<kTokenTiles>)
    decode_gemm_kernel(GroupedGemmParams p, int splits) {
  constexpr int kChunkRows = kTokensPerTile * kTokenTiles;
  __shared__ float partial[kWarps][kChunkRows][kStripeChannels];
  __shared__ Chunk chunk;

  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, stripes = n / kStripeChannels;
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  int const stripes_per_block = kWarps / splits;
  int const split = warp / stripes_per_block;
  int const group_begin = split * groups / splits, group_end = (split + 1) * groups / splits;
  int const stripe = int(blockIdx.x) * stripes_per_block + warp % stripes_per_block;

  for (int64_t index = blockIdx.y; index < p.total_rows + p.shape.num_experts; index += gridDim.y) {
    if (!find_chunk<kChunkRows>(p, index, &chunk)) return;
    WarpItem const w{chunk.expert, stripe, chunk.rows, int32_t(chunk.first_row)};

    float acc[kTokenTiles][4] = {};
    if (stripe < stripes) {
      // kStages groups in flight: a buffer is reloaded with the group kStages ahead as soon as it is multiplied.
      StripeCursor cursor = stripe_cursor(p, w, group_begin);
      GroupFragments stage[kStages];
#pragma unroll
      for (int i = 0; i < kStages; ++i) {
        if (group_begin + i < group_end) load_group(n, cursor, stage[i]);
      }
      for (int g = group_begin; g < group_end; g += kStages) {
#pragma unroll
        for (int i = 0; i < kStages; ++i) {
          if (g + i < group_end) {
            multiply_group(p, w, g + i, stage[i], acc);
            if (g + i + kStages < group_end) load_group(n, cursor, stage[i]);
          }
        }
      }
    }
    // Accumulator (t, j): channel lane/4 + 8 (j / 2) of the stripe, row 8t + 2 (lane % 4) + j % 2.
#pragma unroll
    for (int t = 0; t < kTokenTiles; ++t) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        partial[warp][t * kTokensPerTile + 2 * (lane % 4) + j % 2][lane / 4 + 8 * (j / 2)] = acc[t][j];
      }
    }
    __syncthreads();

    float const* channel_scales =
        reinterpret_cast<float const*>(p.packed + p.sections.channel_scales) + size_t(w.expert) * p.shape.n;
    Out* out = static_cast<Out*>(p.out);
    int const outputs = stripes_per_block * w.rows * kStripeChannels;
    for (int i = int(threadIdx.x); i < outputs; i += kThreads) {
      int const channel = i % kStripeChannels, row = i / kStripeChannels % w.rows;
      int const block_stripe = i / (kStripeChannels * w.rows);
      int const out_stripe = int(blockIdx.x) * stripes_per_block + block_stripe;
      if (out_stripe >= stripes) continue;
      float sum = 0.f;
      for (int sp = 0; sp < splits; ++sp) sum += partial[sp * stripes_per_block + block_stripe][row][channel];
      int64_t const out_row = w.first_row + row;
      int const column = out_stripe * kStripeChannels + channel;
      out[out_row * n + column] = to_output<Out>(channel_scales[column] * (p.token_scales[out_row] * sum));
    }
    __syncthreads();  // partial and chunk are rewritten by the next chunk
  }
}

// K split per stripe: as many warps as fill about one wave of resident warps over the experts that can be active,
// and at least enough that no warp streams more than kMaxGroupsPerWarp groups one after another (a warp keeps
// kStages groups in flight, so a long K alone is latency-bound: DeepSeek-V3 GEMM1 at 16 tokens, §6);
// at most one warp per group and kWarps per block.
template <int kTokenTiles>
int choose_splits(GroupedGemmParams const& p) {
  int64_t const active_experts = std::max<int64_t>(1, std::min<int64_t>(p.shape.num_experts, p.expected_rows));
  int64_t const columns = active_experts * (p.shape.n / kStripeChannels);
  int64_t const wave_warps = int64_t(std::max(p.sm_count, 1)) * kBlocksPerSm<kTokenTiles> * kWarps;
  int const groups = p.shape.k / kGroupSize;
  constexpr int kMaxGroupsPerWarp = 16;
  int splits = 1;
  while (splits < kWarps && 2 * splits <= groups &&
         (columns * 2 * splits <= wave_warps || splits * kMaxGroupsPerWarp < groups)) {
    splits *= 2;
  }
  return splits;
}

template <int kTokenTiles, class Out>
Status launch(GroupedGemmParams const& p) {
  constexpr int64_t kChunkRows = kTokensPerTile * kTokenTiles;
  int const splits = choose_splits<kTokenTiles>(p);
  int const stripes_per_block = kWarps / splits;
  int const stripes = p.shape.n / kStripeChannels;
  // Chunks: at most one per expert that holds rows, plus one per kChunkRows rows beyond each expert's first. (The
  // looser "one partial per expert plus the full ones" counted a ninth chunk for 8 rows over 8 experts, and that
  // empty chunk's blocks kept the grid from spreading: Qwen3 GEMM2 at 1 token 8.6 -> 7.3 us.) The grid covers twice
  // the chunks the expected rows make (at least 16), not all that total_rows could: blocks without a chunk still
  // scan the offsets, which cost an expert-parallel rank (4 of 32 rows local) more than its GEMM. Blocks loop over
  // the chunks past the grid, so a rank that gets more rows than expected (3 experts where 1 row was) is right,
  // slower.
  auto chunks_of = [&](int64_t rows) {
    int64_t const active = std::min<int64_t>(p.shape.num_experts, rows);
    return active + (rows - active) / kChunkRows;
  };
  int64_t const expected_chunks = chunks_of(p.expected_rows);
  int64_t const grid_chunks =
      std::min({chunks_of(p.total_rows), std::max<int64_t>(2 * expected_chunks, 16), int64_t(65535)});
  dim3 const grid(unsigned((stripes + stripes_per_block - 1) / stripes_per_block),
                  unsigned(std::max<int64_t>(grid_chunks, 1)));
  // Less than a wave of blocks with work: the block scheduler fills an SM up to its limit before the next, so
  // 256 blocks at 3 per SM leave 46 SMs idle. Spread them by capping the blocks per SM with dynamic shared memory
  // that leaves no room for one more. The blocks with work are counted for twice the expected rows, like the
  // grid: capped for 1 expected expert, a rank that got 3 runs three waves (DeepSeek-V3 GEMM1 32.6 -> 38.2 us).
  auto kernel = decode_gemm_kernel<kTokenTiles, Out>;
  int64_t const sms = std::max(p.sm_count, 1);
  int64_t const working_blocks = int64_t(grid.x) * std::min<int64_t>(grid_chunks, 2 * expected_chunks);
  int64_t const per_sm = std::clamp<int64_t>((working_blocks + sms - 1) / sms, 1, kBlocksPerSm<kTokenTiles>);
  size_t const spread_bytes = per_sm < kBlocksPerSm<kTokenTiles> ? kSharedMemoryPerSm / size_t(per_sm + 1) + 1024 : 0;
  if (spread_bytes > 48 * 1024) {  // past the default limit; per call, since the attribute is per device
    W4A8_CUDA_RETURN(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(spread_bytes)));
  }
  W4A8_CUDA_RETURN(launch_with_pdl(kernel, grid, dim3(kThreads), spread_bytes, p.stream, p, splits));
  return Status::Ok();
}

}  // namespace

size_t decode_gemm_workspace_bytes(int, int) { return 0; }

template <int kTokenTiles>
Status run_decode_gemm(GroupedGemmParams const& params, void*, size_t) {
  return params.out_type == OutputType::kBF16 ? launch<kTokenTiles, __nv_bfloat16>(params)
                                              : launch<kTokenTiles, __half>(params);
}

template Status run_decode_gemm<1>(GroupedGemmParams const&, void*, size_t);
template Status run_decode_gemm<2>(GroupedGemmParams const&, void*, size_t);

}  // namespace w4a8moe::gemm
