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

#include <type_traits>

#include "common/pdl.cuh"
#include "common/status_util.h"
#include "gemm/stream_plan.h"
#include "gemm/stripe_mma.cuh"
#include "gemm/weight_stream.cuh"

namespace w4a8moe::gemm {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTokensPerTile = 8;  // mma.sync n
// Groups in flight per warp. 4 (with 2 blocks per SM for the registers) and 3 (3 blocks, a small spill) measured
// slower overall (bench/NOTES.md §6).
constexpr int kStages = 2;
// Resident blocks per SM the registers allow: 80 registers per thread with one token tile, 128 with two.
template <int kTokenTiles>
constexpr int kBlocksPerSm = kTokenTiles == 1 ? 3 : 2;

// One warp's share of one chunk: up to 8 * kTokenTiles rows of one expert (its 16-channel stripe is the kernel's
// `stripe`).
struct WarpItem {
  int expert;
  int rows;
  int32_t first_row;
};

// A lane's activations of a chunk: per token tile, its row's bytes at its K (4c..4c+3 of each half atom, c = lane %
// 4) of group 0. A lane whose row is past the chunk's reads the chunk's last row instead: its MMA column is never
// stored, and the loads need no predicate, no zeroing and no per-group 64-bit multiply (bench/NOTES.md §125).
template <int kTokenTiles>
struct ActivationRows {
  uint8_t const* row[kTokenTiles];
};

template <int kTokenTiles>
__device__ __forceinline__ ActivationRows<kTokenTiles> activation_rows(GroupedGemmParams const& p, WarpItem const& w) {
  int const lane = int(threadIdx.x) % 32;
  ActivationRows<kTokenTiles> rows;
#pragma unroll
  for (int t = 0; t < kTokenTiles; ++t) {
    int const row = min(t * kTokensPerTile + lane / 4, w.rows - 1);
    rows.row[t] = static_cast<uint8_t const*>(p.act) + int64_t(w.first_row + row) * p.shape.k + (lane % 4) * 4;
  }
  return rows;
}

// Multiplies one loaded group into acc. The activations (L1 hits: the block's warps share them) load here.
template <int kTokenTiles>
__device__ __forceinline__ void multiply_group(ActivationRows<kTokenTiles> const& act, int tiles, int group,
                                               GroupWeights const& f, float (&acc)[kTokenTiles][4]) {
  uint32_t x[kTokenTiles][kAtomsPerGroup][2];
#pragma unroll
  for (int t = 0; t < kTokenTiles; ++t) {
    uint8_t const* group_act = act.row[t] + group * kGroupSize;
#pragma unroll
    for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        x[t][a][h] = __ldg(reinterpret_cast<uint32_t const*>(group_act + a * kAtomK + h * 16));
      }
    }
  }
  uint2 const pos_low = positive_table(f.table_low), pos_high = positive_table(f.table_high);
#pragma unroll
  for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      F16Fragment const fragment = weight_fragment(h == 0 ? f.atoms[a].x : f.atoms[a].y, f, pos_low, pos_high);
#pragma unroll
      for (int t = 0; t < kTokenTiles; ++t) {
        if (t > 0 && t >= tiles) break;
        uint32_t const act4 = x[t][a][h];
        mma_f16_16x8x16(acc[t], fragment, e4m3x2_to_f16x2(act4), e4m3x2_to_f16x2<true>(act4));
      }
    }
  }
}

template <int kTokenTiles, class Out>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm<kTokenTiles>)
    decode_gemm_kernel(GroupedGemmParams p, int splits, bool launches_next_early) {
  constexpr int kChunkRows = kTokensPerTile * kTokenTiles;
  __shared__ float partial[kWarps][kChunkRows][kStripeChannels];
  __shared__ Chunk chunk;
  // No more chunks than this: lowered to the call's count by the first search that saw every expert, so that a block
  // that has had its last chunk leaves without scanning the offsets again (~0.6 us, bench/NOTES.md §92).
  __shared__ int64_t chunk_count;
  // The chunk's scales for the epilogue, loaded into registers when the chunk is found (the channel scales before
  // the PDL wait where it is found there, the token scales right after the wait) and stored here after the K loop:
  // the epilogue then reads no global memory (the channel scales were an HBM round trip at its start).
  __shared__ float chunk_channel_scales[kWarps * kStripeChannels];
  __shared__ float chunk_token_scales[kChunkRows];

  int const n = p.shape.n, groups = p.shape.k / kGroupSize, stripes = n / kStripeChannels;
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  int const stripes_per_block = kWarps / splits;
  int const split = warp / stripes_per_block;
  int const group_begin = split * groups / splits, group_end = (split + 1) * groups / splits;
  int const stripe = int(blockIdx.x) * stripes_per_block + warp % stripes_per_block;
  if (threadIdx.x == 0) {
    chunk_count = p.total_rows + p.shape.num_experts;
    // Launched as the permute kernel started, the routing may still run: its offsets are read once it has ended (the
    // barrier below passes what thread 0 acquired on to the block).
    if (p.routing_end != nullptr) await_routing_end_in_thread(p.routing_end);
  }
  __syncthreads();
  // kStages groups in flight: a buffer is reloaded with the group kStages ahead as soon as it is multiplied.
  StripeCursor cursor;
  GroupWeights stage[kStages];
  // Before the PDL wait (before_wait: std::true_type) both load through L2 only (weight_stream.cuh).
  auto const find = [&](int64_t index, auto before_wait) {  // block-wide
    return index < chunk_count &&
           find_chunk<kThreads, kChunkRows, decltype(before_wait)::value>(p, index, &chunk, &chunk_count);
  };
  // This thread's channel scale of the chunk's expert: packed data, readable before the wait (through L2 there,
  // common/pdl.cuh).
  int const scale_column = int(blockIdx.x) * stripes_per_block * kStripeChannels + int(threadIdx.x);
  bool const loads_channel_scale = int(threadIdx.x) < stripes_per_block * kStripeChannels && scale_column < n;
  auto const channel_scale = [&](auto before_wait) {
    float const* scale = reinterpret_cast<float const*>(p.packed + p.sections.channel_scales) +
                         size_t(chunk.expert) * n + scale_column;
    return !loads_channel_scale ? 0.f : decltype(before_wait)::value ? __ldcg(scale) : *scale;
  };
  auto const load_first_groups = [&](int expert, auto before_wait) {
    cursor = stripe_cursor(p.packed, p.sections, n, expert, stripe, group_begin);
#pragma unroll
    for (int i = 0; i < kStages; ++i) {
      if (group_begin + i < group_end) load_group<decltype(before_wait)::value>(n, cursor, stage[i]);
    }
  };
  // Where the offsets allow it, the first chunk and its first groups' weights before the wait (L2 loads only):
  // neither depends on the previous kernel, whose tail they overlap.
  int64_t index = blockIdx.y;
  bool const search_before_wait = p.offsets_before_wait;
  // The next kernel reads nothing but the routing's outputs before its own wait, and the routing has ended: on a rank
  // that expects few rows it launches now, under this kernel's search (decode_launches_next_early).
  if (launches_next_early) pdl_allow_next_grid();
  bool found = search_before_wait && find(index, std::true_type{});
  bool loaded = found && stripe < stripes;
  if (loaded) load_first_groups(chunk.expert, std::true_type{});
  float held_channel_scale = found ? channel_scale(std::true_type{}) : 0.f;
  pdl_wait_for_previous_grid();
  if (!launches_next_early) pdl_allow_next_grid();
  bool scale_held = found;
  if (!search_before_wait) found = find(index, std::false_type{});

  while (found) {
    WarpItem const w{chunk.expert, chunk.rows, int32_t(chunk.first_row)};
    if (!scale_held) held_channel_scale = channel_scale(std::false_type{});
    // After the wait: in the layer the token scales are the previous kernel's (the permute's, the SiLU's).
    float const held_token_scale = int(threadIdx.x) < w.rows ? p.token_scales[w.first_row + threadIdx.x] : 0.f;

    float acc[kTokenTiles][4] = {};
    if (stripe < stripes) {
      if (!loaded) load_first_groups(w.expert, std::false_type{});
      loaded = false;
      ActivationRows<kTokenTiles> const act = activation_rows<kTokenTiles>(p, w);
      int const tiles = (w.rows + kTokensPerTile - 1) / kTokensPerTile;
      for (int g = group_begin; g < group_end; g += kStages) {
#pragma unroll
        for (int i = 0; i < kStages; ++i) {
          if (g + i < group_end) {
            multiply_group(act, tiles, g + i, stage[i], acc);
            if (g + i + kStages < group_end) load_group(n, cursor, stage[i]);
          }
        }
      }
    }
    if (loads_channel_scale) chunk_channel_scales[threadIdx.x] = held_channel_scale;
    if (int(threadIdx.x) < w.rows) chunk_token_scales[threadIdx.x] = held_token_scale;
    // Accumulator (t, j): channel lane/4 + 8 (j / 2) of the stripe, row 8t + 2 (lane % 4) + j % 2.
#pragma unroll
    for (int t = 0; t < kTokenTiles; ++t) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        partial[warp][t * kTokensPerTile + 2 * (lane % 4) + j % 2][lane / 4 + 8 * (j / 2)] = acc[t][j];
      }
    }
    __syncthreads();  // publishes partial and the chunk's scales; `chunk` is free from here

    // The block's next chunk and its first weights before this one's epilogue, whose sums and stores then pass under
    // their latency (a block with several chunks: an expert-parallel rank with more rows than expected).
    index += gridDim.y;
    found = find(index, std::false_type{});
    loaded = found && stripe < stripes;
    if (loaded) load_first_groups(chunk.expert, std::false_type{});
    scale_held = found;
    if (found) held_channel_scale = channel_scale(std::false_type{});

    Out* out = static_cast<Out*>(p.out);
    int const outputs = stripes_per_block * w.rows * kStripeChannels;
    for (int i = int(threadIdx.x); i < outputs; i += kThreads) {
      int const channel = i % kStripeChannels, row = i / kStripeChannels % w.rows;
      int const block_stripe = i / (kStripeChannels * w.rows);
      int const out_stripe = int(blockIdx.x) * stripes_per_block + block_stripe;
      if (out_stripe >= stripes) continue;
      float sum = 0.f;
      for (int sp = 0; sp < splits; ++sp) sum += partial[sp * stripes_per_block + block_stripe][row][channel];
      int const column = out_stripe * kStripeChannels + channel;
      float const channel_scale = chunk_channel_scales[block_stripe * kStripeChannels + channel];
      out[(w.first_row + row) * n + column] = to_output<Out>(channel_scale * (chunk_token_scales[row] * sum));
    }
    __syncthreads();  // partial and the chunk's scales are rewritten by the next chunk
  }
}

template <int kTokenTiles, class Out>
Status launch(GroupedGemmParams const& p) {
  DecodeLaunchPlan const plan = plan_decode_launch(p.shape, p.total_rows, p.expected_rows, p.sm_count,
                                                   kTokensPerTile * kTokenTiles, kWarps, kBlocksPerSm<kTokenTiles>);
  dim3 const grid(unsigned(plan.grid_x), unsigned(plan.grid_y));
  auto kernel = decode_gemm_kernel<kTokenTiles, Out>;
  bool const launches_next_early = decode_launches_next_early(p.offsets_before_wait, p.expected_rows);
  W4A8_CUDA_RETURN(
      launch_with_pdl(kernel, grid, dim3(kThreads), plan.shared_bytes, p.stream, p, plan.splits, launches_next_early));
  return Status::Ok();
}

}  // namespace

template <int kTokenTiles>
Status run_decode_gemm(GroupedGemmParams const& params, void*, size_t) {
  return params.out_type == OutputType::kBF16 ? launch<kTokenTiles, __nv_bfloat16>(params)
                                              : launch<kTokenTiles, __half>(params);
}

template Status run_decode_gemm<1>(GroupedGemmParams const&, void*, size_t);
template Status run_decode_gemm<2>(GroupedGemmParams const&, void*, size_t);

}  // namespace w4a8moe::gemm
