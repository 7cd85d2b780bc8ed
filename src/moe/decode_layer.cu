// The one-launch decode layer: route, quantise, GEMM1 with SiLU(gate) * up, GEMM2 and the weighted combine in one
// cooperative launch for up to kDecodeLayerMaxTokens tokens, where the staged path is six launches whose fixed costs
// outweigh the weights they read. The phases meet at three grid-wide barriers. What it gains and where the time
// goes (phase stamps: DecodeLayerProblem::stamps) is in bench/NOTES.md §10, and on the exact-scale layout §12b.
//
//   every block   routes the tokens itself, in shared memory (decode_layer_routing.cuh); blocks 0..T-1 also
//                 quantise token t (per-token e4m3, as the staged permute+quantise)                       -> barrier
//   GEMM1         block items (active expert, stripe pairs): a warp streams the gate stripe and the up stripe of
//                 one 16-channel pair over its share of K (mma.sync, either packed layout: decode_layer_stripes.cuh);
//                 the block sums the shares, rounds gate and up to the activation type (the staged GEMM1's
//                 output), and writes SiLU(gate) * up in fp32 with each row's maximum over the item      -> barrier
//   GEMM2         block items (active expert, stripes): each row's scale from the maxima; the activations are
//                 quantised to e4m3 as they load (bit for bit the staged requantisation); rows of the activation
//                 type                                                                                    -> barrier
//   combine       out[t] = sum over t's slots, in slot order, of weight * row (the staged unpermute)
//
// Every rounding is the staged path's, so both paths agree up to the GEMMs' summation order. Deterministic: fixed
// orders everywhere, no atomics outside shared memory. A rank with no local rows goes from its routing straight to the
// combine (zeros), without a barrier.
#include "moe/decode_layer.h"

#include <cooperative_groups.h>

#include "moe/decode_layer_routing.cuh"
#include "moe/decode_layer_stripes.cuh"
#include "moe/kernel_common.cuh"
#include "moe/moe_plan.h"

namespace w4a8moe::moe {
namespace {

namespace cg = cooperative_groups;
using gemm::kStripeChannels;

constexpr int kWarps = kDecodeLayerWarps;
constexpr int kThreads = kDecodeLayerThreads;
constexpr int kTileRows = 8;  // mma.sync n
constexpr int kMinBlocksPerSm = 2;

// Accumulator j of a lane: channel lane/4 + 8 (j / 2) of the stripe, row 2 (lane % 4) + j % 2.
template <int kStripes>
__device__ __forceinline__ void store_partials(float const (&acc)[kStripes][4],
                                               float (*partial)[2][kTileRows][kStripeChannels]) {
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int s = 0; s < kStripes; ++s) {
#pragma unroll
    for (int j = 0; j < 4; ++j) partial[warp][s][2 * (lane % 4) + j % 2][lane / 4 + 8 * (j / 2)] = acc[s][j];
  }
}

// How a GEMM phase deals its items: `per_block` items (stripes or stripe pairs) of an expert per block, whose K the
// block's warps split `splits` ways.
struct PhaseSplit {
  int splits, per_block, blocks_per_expert;
};

__device__ PhaseSplit phase_split(int active, int items_per_expert, int groups) {
  int const splits =
      gemm::stripe_k_splits(int64_t(active) * items_per_expert, groups, int64_t(gridDim.x) * kWarps);
  int const per_block = kWarps / splits;
  return {splits, per_block, (items_per_expert + per_block - 1) / per_block};
}

struct Shared {
  BlockRouting routing;
  float partial[kWarps][2][kTileRows][kStripeChannels];
  int row_max[kTileRows];  // fp32 bits of non-negative maxima
  float row_scale[kTileRows], row_inverse[kTileRows];
  float scratch[kWarps];
};

// The SiLU rows' columns past I (GEMM2 reads padded_k(I) of them, against zero weights): zeros, once, by the whole
// grid before GEMM1's phase writes the rest.
__device__ void zero_silu_padding(DecodeLayerProblem const& p, int rows) {
  int const inter = p.shape.inter, pad = p.silu_columns - inter;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < int64_t(rows) * pad;
       i += int64_t(gridDim.x) * kThreads) {
    p.silu[(i / pad) * (inter + pad) + inter + i % pad] = 0.0f;
  }
}

// Token t to e4m3 with its per-token scale, as the staged permute+quantise computes it (a row of padded_k(H)
// columns, zeros past H).
template <ActivationType kType>
__device__ void quantize_token(DecodeLayerProblem const& p, int t, Shared& sh) {
  int const vectors = p.shape.hidden / kVector, padded_vectors = p.act_columns / kVector;
  int64_t const first = int64_t(t) * vectors;
  float local_max = 0.0f;
  for (int v = int(threadIdx.x); v < vectors; v += kThreads) {
    float x[kVector];
    load_vector<kType>(p.hidden, first + v, x);
#pragma unroll
    for (int i = 0; i < kVector; ++i) local_max = fmaxf(local_max, fabsf(x[i]));
  }
  float const amax = block_reduce(local_max, MaxOp{}, sh.scratch);
  E4m3Scale const e4m3 = e4m3_scale(amax);
  for (int v = int(threadIdx.x); v < padded_vectors; v += kThreads) {
    float x[kVector] = {};
    if (v < vectors) load_vector<kType>(p.hidden, first + v, x);
    reinterpret_cast<uint2*>(p.act)[int64_t(t) * padded_vectors + v] = quantize_vector(x, e4m3.inverse);
  }
  if (threadIdx.x == 0) p.act_scales[t] = e4m3.scale;
}

template <ActivationType kType, PackedLayout kLayout>
__device__ void gemm1_silu(DecodeLayerProblem const& p, PhaseSplit const& split, Shared& sh) {
  using A = Act<kType>;
  BlockRouting const& r = sh.routing;
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  int const inter = p.shape.inter, top_k = p.shape.top_k, pairs = inter / kStripeChannels;
  int const groups = p.act_columns / kGroupSize;
  int const split_index = warp / split.per_block;
  int const group_begin = split_index * groups / split.splits, group_end = (split_index + 1) * groups / split.splits;
  for (int item = int(blockIdx.x); item < r.active * split.blocks_per_expert; item += int(gridDim.x)) {
    int const active = item / split.blocks_per_expert, block_index = item % split.blocks_per_expert;
    int const expert = r.active_expert[active];
    int const pair = block_index * split.per_block + warp % split.per_block;
    for (int first_row = r.active_begin[active]; first_row < r.active_begin[active + 1]; first_row += kTileRows) {
      int const rows = min(kTileRows, r.active_begin[active + 1] - first_row);
      float acc[2][4] = {};
      if (pair < pairs) {
        int const lane_row = lane / 4;
        E4m3Row act{nullptr};
        if (lane_row < rows) {
          int const token = r.row_slot[first_row + lane_row] / top_k;
          act.row = p.act + int64_t(token) * p.act_columns + (lane % 4) * 4;
        }
        int const stripes[2] = {pair, pairs + pair};  // gate, up
        stream_stripes(stripes_of<kLayout>(p.gemm1, 2 * inter, groups, expert), stripes, group_begin, group_end, act,
                       acc);
      }
      store_partials<2>(acc, sh.partial);
      __syncthreads();
      float const* expert_scales = p.gemm1.channel_scales + size_t(expert) * 2 * inter;
      for (int i = int(threadIdx.x); i < split.per_block * rows * kStripeChannels; i += kThreads) {
        int const channel = i % kStripeChannels, row = i / kStripeChannels % rows;
        int const block_pair = i / (kStripeChannels * rows);
        int const out_pair = block_index * split.per_block + block_pair;
        if (out_pair >= pairs) continue;
        float gate = 0.f, up = 0.f;
        for (int sp = 0; sp < split.splits; ++sp) {
          gate += sh.partial[sp * split.per_block + block_pair][0][row][channel];
          up += sh.partial[sp * split.per_block + block_pair][1][row][channel];
        }
        int const slot = r.row_slot[first_row + row], column = out_pair * kStripeChannels + channel;
        float const token_scale = p.act_scales[slot / top_k] * (p.weight_on_input ? r.slot_weight[slot] : 1.0f);
        float const g = A::to_float(A::from_float(expert_scales[column] * (token_scale * gate)));
        float const u = A::to_float(A::from_float(expert_scales[inter + column] * (token_scale * up)));
        float const h = silu_mul(g, u);
        p.silu[int64_t(first_row + row) * p.silu_columns + column] = h;
        atomicMax(&sh.row_max[row], __float_as_int(fabsf(h)));
      }
      __syncthreads();
      if (int(threadIdx.x) < rows) {
        p.silu_max[int64_t(first_row + threadIdx.x) * split.blocks_per_expert + block_index] =
            __int_as_float(sh.row_max[threadIdx.x]);
        sh.row_max[threadIdx.x] = 0;
      }
      __syncthreads();
    }
  }
}

template <ActivationType kType, PackedLayout kLayout>
__device__ void gemm2(DecodeLayerProblem const& p, PhaseSplit const& split, int silu_blocks, Shared& sh) {
  using A = Act<kType>;
  BlockRouting const& r = sh.routing;
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  int const hidden = p.shape.hidden, stripes = hidden / kStripeChannels;
  int const groups = p.silu_columns / kGroupSize;
  int const split_index = warp / split.per_block;
  int const group_begin = split_index * groups / split.splits, group_end = (split_index + 1) * groups / split.splits;
  auto* out = static_cast<typename A::T*>(p.gemm2_out);
  for (int item = int(blockIdx.x); item < r.active * split.blocks_per_expert; item += int(gridDim.x)) {
    int const active = item / split.blocks_per_expert, block_index = item % split.blocks_per_expert;
    int const expert = r.active_expert[active];
    int const stripe = block_index * split.per_block + warp % split.per_block;
    for (int first_row = r.active_begin[active]; first_row < r.active_begin[active + 1]; first_row += kTileRows) {
      int const rows = min(kTileRows, r.active_begin[active + 1] - first_row);
      if (warp < rows) {  // the row's maximum over GEMM1's items, as the staged requantisation's
        float m = 0.0f;
        for (int i = lane; i < silu_blocks; i += 32) {
          m = fmaxf(m, __ldcg(p.silu_max + int64_t(first_row + warp) * silu_blocks + i));
        }
        m = warp_reduce(m, MaxOp{});
        if (lane == 0) {
          E4m3Scale const e4m3 = e4m3_scale(m);
          sh.row_inverse[warp] = e4m3.inverse;
          sh.row_scale[warp] = e4m3.scale;
        }
      }
      __syncthreads();
      float acc[1][4] = {};
      if (stripe < stripes) {
        int const lane_row = lane / 4;
        QuantisedFloatRow act{nullptr, 0.0f};
        if (lane_row < rows) {
          act.row = p.silu + int64_t(first_row + lane_row) * p.silu_columns + (lane % 4) * 4;
          act.inverse = sh.row_inverse[lane_row];
        }
        int const stripe_list[1] = {stripe};
        stream_stripes(stripes_of<kLayout>(p.gemm2, hidden, groups, expert), stripe_list, group_begin, group_end, act,
                       acc);
      }
      store_partials<1>(acc, sh.partial);
      __syncthreads();
      float const* expert_scales = p.gemm2.channel_scales + size_t(expert) * hidden;
      for (int i = int(threadIdx.x); i < split.per_block * rows * kStripeChannels; i += kThreads) {
        int const channel = i % kStripeChannels, row = i / kStripeChannels % rows;
        int const block_stripe = i / (kStripeChannels * rows);
        int const out_stripe = block_index * split.per_block + block_stripe;
        if (out_stripe >= stripes) continue;
        float sum = 0.f;
        for (int sp = 0; sp < split.splits; ++sp) {
          sum += sh.partial[sp * split.per_block + block_stripe][0][row][channel];
        }
        int const column = out_stripe * kStripeChannels + channel;
        out[int64_t(first_row + row) * hidden + column] =
            A::from_float(expert_scales[column] * (sh.row_scale[row] * sum));
      }
      __syncthreads();  // partial and the row scales are rewritten by the next tile
    }
  }
}

// out[t] = sum over the token's slots, in slot order, of its weight (1 with weight_on_input) times its row; zero
// where no slot is local. The grid's threads share the [T, H] vectors.
template <ActivationType kType>
__device__ void combine(DecodeLayerProblem const& p, Shared const& sh) {
  BlockRouting const& r = sh.routing;
  int const top_k = p.shape.top_k, vectors = p.shape.hidden / kVector;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < int64_t(p.tokens) * vectors;
       i += int64_t(gridDim.x) * kThreads) {
    int const t = int(i / vectors), v = int(i % vectors);
    float sum[kVector] = {};
    for (int j = 0; j < top_k; ++j) {
      int const slot = t * top_k + j, row = r.slot_row[slot];
      if (row < 0) continue;
      float const weight = p.weight_on_input ? 1.0f : r.slot_weight[slot];
      float x[kVector];
      unpack_vector<kType>(__ldcg(static_cast<uint4 const*>(p.gemm2_out) + int64_t(row) * vectors + v), x);
#pragma unroll
      for (int e = 0; e < kVector; ++e) sum[e] += weight * x[e];
    }
    store_vector<kType>(p.out, i, sum);
  }
}

// Profiling: thread 0's globaltimer at phase boundary `index` (DecodeLayerProblem::stamps).
__device__ __forceinline__ void stamp(DecodeLayerProblem const& p, int index) {
  if (p.stamps == nullptr || threadIdx.x != 0) return;
  unsigned long long now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  p.stamps[blockIdx.x * kDecodeLayerStamps + index] = now;
}

template <ActivationType kType, PackedLayout kLayout, int kPerLane>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) decode_layer_kernel(DecodeLayerProblem p) {
  __shared__ Shared sh;
  stamp(p, 0);
  if (threadIdx.x < kTileRows) sh.row_max[threadIdx.x] = 0;
  route_in_block<kPerLane>(p, sh.routing);
  stamp(p, 1);
  BlockRouting const& r = sh.routing;
  if (r.rows == 0) {  // the same in every block: no block meets a barrier
    combine<kType>(p, sh);
    stamp(p, 8);
    return;
  }
  cg::grid_group grid = cg::this_grid();
  PhaseSplit const split1 = phase_split(r.active, p.shape.inter / kStripeChannels, p.act_columns / kGroupSize);
  PhaseSplit const split2 = phase_split(r.active, p.shape.hidden / kStripeChannels, p.silu_columns / kGroupSize);
  if (int(blockIdx.x) < p.tokens) quantize_token<kType>(p, int(blockIdx.x), sh);
  if (p.shape.inter % kGroupSize != 0) zero_silu_padding(p, r.rows);
  stamp(p, 2);
  grid.sync();
  stamp(p, 3);
  gemm1_silu<kType, kLayout>(p, split1, sh);
  stamp(p, 4);
  grid.sync();
  stamp(p, 5);
  gemm2<kType, kLayout>(p, split2, split1.blocks_per_expert, sh);
  stamp(p, 6);
  grid.sync();
  stamp(p, 7);
  combine<kType>(p, sh);
  stamp(p, 8);
}

// A kernel instantiation and its resident blocks per SM (0 where the occupancy query fails).
struct KernelChoice {
  void (*kernel)(DecodeLayerProblem) = nullptr;
  int blocks_per_sm = 0;
};

template <ActivationType kType, PackedLayout kLayout, int kPerLane>
KernelChoice kernel_choice() {
  auto* const kernel = decode_layer_kernel<kType, kLayout, kPerLane>;
  static int const blocks = [kernel] {
    int b = 0;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, kThreads, 0) == cudaSuccess ? b : 0;
  }();
  return {kernel, blocks};
}

// The instantiation for a problem: its activation type, its layout, and the router's experts per lane (any one
// with precomputed top-k, which runs no router).
KernelChoice choose_kernel(DecodeLayerProblem const& p) {
  constexpr auto kBF16 = ActivationType::kBF16;
  constexpr auto kExact = PackedLayout::kExactScales, kLookup = PackedLayout::kLookupTable;
  KernelChoice choice;
  int const router_experts = p.router_logits != nullptr ? p.shape.num_experts : 1;
  with_warp_router(router_experts, [&](auto per_lane) {
    constexpr int kPerLane = decltype(per_lane)::value;
    bool const exact = p.layout == kExact;
    if (p.act_type == kBF16) {
      choice = exact ? kernel_choice<kBF16, kExact, kPerLane>() : kernel_choice<kBF16, kLookup, kPerLane>();
    } else {
      constexpr auto kFP16 = ActivationType::kFP16;
      choice = exact ? kernel_choice<kFP16, kExact, kPerLane>() : kernel_choice<kFP16, kLookup, kPerLane>();
    }
  });
  return choice;
}

DecodeLayerWeights layer_weights(void const* packed, ExpertWeightShape const& shape, PackedLayout layout) {
  DecodeLayerWeights w;
  w.packed = static_cast<uint8_t const*>(packed);
  w.lookup = prepack::packed_sections(shape);
  w.exact = prepack::exact_sections(shape);
  size_t const channel_scales =
      layout == PackedLayout::kExactScales ? w.exact.channel_scales : w.lookup.channel_scales;
  w.channel_scales = reinterpret_cast<float const*>(w.packed + channel_scales);
  return w;
}

}  // namespace

char const* const* decode_layer_stamp_names() {
  static char const* const names[kDecodeLayerStamps] = {"start",  "routed",    "quantised", "barrier 1", "gemm1",
                                                         "barrier 2", "gemm2", "barrier 3", "end"};
  return names;
}

DecodeLayerProblem decode_layer_problem(MoeForwardArgs const& a, WorkspacePlan const& w) {
  char* ws = static_cast<char*>(a.workspace);
  DecodeLayerProblem p;
  p.shape = a.shape;
  p.tokens = int(a.num_tokens);
  p.hidden = a.hidden;
  p.act_type = a.act_type;
  p.router_logits = a.router_logits;
  p.logits_type = a.logits_type;
  p.renormalize = a.renormalize;
  p.topk_ids = a.topk_ids;
  p.topk_weights = a.topk_weights;
  p.expert_map = a.expert_map;
  p.weight_on_input = a.apply_router_weight_on_input;
  p.layout = a.weight_layout;
  p.gemm1 = layer_weights(a.gemm1_weights, gemm1_shape(a.shape), a.weight_layout);
  p.gemm2 = layer_weights(a.gemm2_weights, gemm2_shape(a.shape), a.weight_layout);
  p.act_columns = padded_k(a.shape.hidden);
  p.silu_columns = padded_k(a.shape.inter);
  p.act = reinterpret_cast<uint8_t*>(ws + w.act1);
  p.act_scales = reinterpret_cast<float*>(ws + w.scale1);
  p.silu = reinterpret_cast<float*>(ws + w.gemm1_out);
  p.silu_max = reinterpret_cast<float*>(ws + w.act2);
  p.gemm2_out = ws + w.gemm2_out;
  p.out = a.out;
  return p;
}

int decode_layer_blocks_per_sm(DecodeLayerProblem const& problem) { return choose_kernel(problem).blocks_per_sm; }

cudaError_t launch_decode_layer(DecodeLayerProblem const& p, int sm_count, cudaStream_t stream) {
  KernelChoice const choice = choose_kernel(p);
  int const blocks = choice.blocks_per_sm * sm_count;
  if (choice.kernel == nullptr || blocks < 1) return cudaErrorInvalidConfiguration;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned(blocks));
  config.blockDim = dim3(kDecodeLayerThreads);
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, choice.kernel, p);
}

}  // namespace w4a8moe::moe
