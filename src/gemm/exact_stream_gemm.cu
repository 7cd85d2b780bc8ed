// The wgmma streaming kernel on the exact-scale layout (prepack/exact_format.h): the structure of stream_gemm.cu
// (workers over items, a producer warp and a ring of stages filled by the copy engine, K split over a cluster when
// the items are few), with the conversion and the scales of that layout:
//  - an item is a chunk of up to kRows rows of one expert and a tile of kConsumers x 64 channels; a stage holds the
//    chunk's activations of one 128-K group, one contiguous block per 64-channel tile (its weights and 64 bf16 group
//    scales, one bulk copy), and the activations' group sums, which the producer warp's lanes copy;
//  - each consumer warpgroup takes one 64-channel tile; the nibbles become wgmma A registers by masks alone
//    (`w & 0x0F0F0F0F`, `(w >> 4) & 0x0F0F0F0F`: bytes u read by the tensor cores as u * 2^-9);
//  - each group's four wgmmas start a fresh accumulator, and the group is added into the fp32 result as
//    acc += sg * (group - 2^-6 sum_k x_k) (bf16 sg exact, no e4m3 rounding of q * sg); the next group is loaded
//    and unpacked while the wgmmas run.
#include "gemm/exact_stream_gemm.h"

#include <cooperative_groups.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "common/pdl.cuh"
#include "common/status_util.h"
#include "gemm/async_copy.cuh"
#include "gemm/stream_epilogue.cuh"
#include "gemm/stream_layout.h"
#include "gemm/stream_plan.h"
#include "gemm/tensor_map.h"
#include "gemm/weight_stream.cuh"
#include "gemm/wgmma_rs.cuh"
#include "prepack/exact_format.h"

namespace w4a8moe::gemm {
namespace {

namespace cg = cooperative_groups;
using prepack::kExactStripeBytes;
using prepack::kExactStripeWeightBytes;

constexpr int kWarpgroupThreads = 128;
constexpr int kTileStripes = prepack::kExactTileChannels / prepack::kExactStripeChannels;
constexpr uint32_t kBlockBytes = kTileStripes * kExactStripeBytes;
// Arrivals on a stage's full barrier: the producer's lane 0 (with the copies' bytes) and each lane's group sums.
constexpr uint32_t kFullArrivals = 1 + 32;

// A stage: the activations (1024-byte aligned for the swizzle), a block per consumer warpgroup, the group sums.
template <int kRows, int kConsumers>
struct Config {
  // 128-row chunks take a producer warpgroup (one warp of it works) so that setmaxnreg can move its registers to the
  // consumers (their accumulators need ~200 per thread); the others a producer warp.
  static constexpr bool kProducerWarpgroup = kRows == 128;
  static constexpr int kThreads = kConsumers * kWarpgroupThreads + (kProducerWarpgroup ? kWarpgroupThreads : 32);
  static constexpr int kTileChannels = kConsumers * prepack::kExactTileChannels;
  static constexpr uint32_t kActBytes = kRows * kGroupSize;
  static constexpr uint32_t kSumOffset = kActBytes + kConsumers * kBlockBytes;
  static constexpr uint32_t kBytes = (kSumOffset + kRows * sizeof(float) + kSwizzleAtomBytes - 1) /
                                     kSwizzleAtomBytes * kSwizzleAtomBytes;
  // Only the one-warpgroup shapes split K (their partial tiles fit beside the ring).
  static constexpr bool kSplitsK = kConsumers == 1;
  static constexpr int kBlocksPerSm = exact_stream_blocks_per_sm(kRows, kConsumers);
  static constexpr uint32_t kPartialBytes = kSplitsK ? kTileChannels * kRows * sizeof(float) : 0;
  static constexpr size_t kRingBytes =
      kSharedMemoryPerSm / kBlocksPerSm - 1024 - 2048 - kSwizzleAtomBytes - kPartialBytes;
  static constexpr int kCount = std::min<int>(8, int(kRingBytes / kBytes));
  static constexpr size_t kSharedBytes = kSwizzleAtomBytes + size_t(kCount) * kBytes + kPartialBytes;
};

struct Ring {
  uint32_t stages;  // 1024-byte aligned
  uint32_t full;
  uint32_t empty;
  uint32_t uses;
};

struct StagedItem {
  Chunk chunk;
  int tile;
};

// The whole producer warp: copies groups [group_begin, group_end) of the item into the next stages. Lane 0 issues
// the tensor copies and arrives expecting their bytes; every lane copies its rows' group sums with cp.async (zeros
// past the chunk) and arrives when they land, so that no lane waits for a load (a stage's full barrier counts
// kFullArrivals).
template <int kRows, int kConsumers>
__device__ __forceinline__ void produce(GroupedGemmParams const& p, prepack::ExactSections const& sections,
                                        CUtensorMap const& act_map, StagedItem const& item, int group_begin,
                                        int group_end, Ring const& ring, StagedItem* staged) {
  using C = Config<kRows, kConsumers>;
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, lane = int(threadIdx.x) % 32;
  int64_t const sum_stride = group_sums_stride(p.total_rows);
  uint8_t const* expert_blocks =
      p.packed + sections.blocks + size_t(item.chunk.expert) * sections.block_bytes_per_expert;
  uint32_t block_bytes[kConsumers], bytes = C::kActBytes;
  uint8_t const* blocks[kConsumers];
#pragma unroll
  for (int w = 0; w < kConsumers; ++w) {
    int const tile = item.tile * kConsumers + w;
    block_bytes[w] = uint32_t(max(prepack::exact_tile_stripes(n, tile), 0)) * kExactStripeBytes;
    blocks[w] = expert_blocks + (block_bytes[w] > 0 ? prepack::exact_block_offset(n, groups, tile, 0) : 0);
    bytes += block_bytes[w];
  }
  for (int group = group_begin; group < group_end; ++group) {
    uint32_t const use = ring.uses + uint32_t(group - group_begin), slot = use % C::kCount;
    if (use >= C::kCount) barrier_wait(ring.empty + 8 * slot, (use / C::kCount - 1) % 2);
    uint32_t const stage = ring.stages + slot * C::kBytes, full = ring.full + 8 * slot;
    float const* sums = p.group_sums + group * sum_stride + item.chunk.first_row;
    for (int row = lane; row < kRows; row += 32) {
      uint32_t const bytes_read = row < item.chunk.rows ? 4 : 0;
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(stage + C::kSumOffset + 4 * row),
                   "l"(bytes_read ? sums + row : sums), "r"(bytes_read)
                   : "memory");
    }
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(full) : "memory");
    if (lane == 0) {
      staged[slot] = item;
      barrier_arrive_expect(full, bytes);
      tensor_copy_2d(stage, act_map, group * kGroupSize, int(item.chunk.first_row), full);
#pragma unroll
      for (int w = 0; w < kConsumers; ++w) {
        if (block_bytes[w] > 0) {
          bulk_copy(stage + C::kActBytes + w * kBlockBytes, blocks[w] + size_t(group) * block_bytes[w],
                    block_bytes[w], full);
        }
      }
    }
  }
}

// The producer's lane 0, once the worker's items are done: the next stage carries no item.
template <int kRows, int kConsumers>
__device__ __forceinline__ void announce_end(Ring const& ring, StagedItem* staged) {
  using C = Config<kRows, kConsumers>;
  uint32_t const slot = ring.uses % C::kCount;
  if (ring.uses >= C::kCount) barrier_wait(ring.empty + 8 * slot, (ring.uses / C::kCount - 1) % 2);
  staged[slot] = StagedItem{{0, 0, 0}, 0};
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;" ::"r"(ring.full + 8 * slot), "r"(kFullArrivals)
               : "memory");
}

__device__ __forceinline__ uint4 load_shared_16(uint32_t address) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(address));
  return v;
}
__device__ __forceinline__ uint32_t load_shared_4(uint32_t address) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(address));
  return v;
}
__device__ __forceinline__ float2 load_shared_float2(uint32_t address) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(address));
  return v;
}

// Two offset-binary words of one atom (K 4c.. and 16 + 4c.., rows r and r + 8 in the nibbles) -> the atom's four
// wgmma A registers.
__device__ __forceinline__ void unpack_atom(uint32_t x, uint32_t y, uint32_t (&a)[4]) {
  a[0] = x & 0x0F0F0F0Fu;
  a[1] = (x >> 4) & 0x0F0F0F0Fu;
  a[2] = y & 0x0F0F0F0Fu;
  a[3] = (y >> 4) & 0x0F0F0F0Fu;
}

// acc += sg * (group - sum), with the scales of the lane's channels (r, r + 8) and the group sums of its rows
// (8j + 2c, 8j + 2c + 1): accumulator 4j + 2h + t is channel r + 8h, row 8j + 2c + t.
template <int kRows>
__device__ __forceinline__ void promote(float (&acc)[kRows / 2], float const (&group)[kRows / 2], float2 scale,
                                        float2 const (&sums)[kRows / 8]) {
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) {
    float const sum = i % 2 == 0 ? sums[i / 4].x : sums[i / 4].y;
    acc[i] = fmaf((i / 2) % 2 == 0 ? scale.x : scale.y, group[i] - sum, acc[i]);
  }
}

// A consumer warpgroup: `groups` staged groups of its tile (`stripes` of them exist) into acc. Group i's wgmmas run
// into a fresh accumulator while group i + 1 is loaded and unpacked; once they are done (wait 0: reading an
// accumulator while another wgmma group is in flight makes ptxas serialise every wgmma), the group is promoted and
// the warp's share of its stage released.
template <int kRows, int kConsumers>
__device__ __forceinline__ void consume(Ring const& ring, int groups, int stripes, float (&acc)[kRows / 2]) {
  using C = Config<kRows, kConsumers>;
  int const warpgroup = int(threadIdx.x) / kWarpgroupThreads, warp = int(threadIdx.x) / 32 % 4;
  int const lane = int(threadIdx.x) % 32;
  uint32_t const block = C::kActBytes + warpgroup * kBlockBytes;
  uint32_t const weights_offset = block + warp * kExactStripeWeightBytes + lane * 16;
  uint32_t const scale_offset =
      block + stripes * kExactStripeWeightBytes + warp * prepack::kExactStripeScaleBytes + (lane / 4) * 4;
  uint32_t const sum_offset = C::kSumOffset + (lane % 4) * 8;
  uint32_t a[2][kAtomsPerGroup][4];
  float2 scales[2];
  // Waits for group i's stage and unpacks it into set h.
  auto load = [&](int i, int h) {
    uint32_t const use = ring.uses + uint32_t(i), stage = ring.stages + use % C::kCount * C::kBytes;
    barrier_wait(ring.full + 8 * (use % C::kCount), use / C::kCount % 2);
    uint4 const w01 = load_shared_16(stage + weights_offset);
    uint4 const w23 = load_shared_16(stage + weights_offset + 512);
    uint32_t const scale_bits = load_shared_4(stage + scale_offset);
    scales[h] = {__uint_as_float(scale_bits << 16), __uint_as_float(scale_bits & 0xFFFF0000u)};
    unpack_atom(w01.x, w01.y, a[h][0]);
    unpack_atom(w01.z, w01.w, a[h][1]);
    unpack_atom(w23.x, w23.y, a[h][2]);
    unpack_atom(w23.z, w23.w, a[h][3]);
  };
  float part[kRows / 2];
  if (groups > 0) load(0, 0);
  for (int first = 0; first < groups; first += 2) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int const i = first + h;
      if (i < groups) {
        uint32_t const use = ring.uses + uint32_t(i), stage = ring.stages + use % C::kCount * C::kBytes;
        wgmma_fence();
#pragma unroll
        for (int atom = 0; atom < kAtomsPerGroup; ++atom) {
          wgmma_e4m3_rs<kRows>(part, a[h][atom], activation_descriptor(stage, atom), atom > 0 ? 1u : 0u);
        }
        wgmma_commit();
        float2 sums[kRows / 8];  // only now: in registers beside the next group's, they spill at 128 rows
#pragma unroll
        for (int j = 0; j < kRows / 8; ++j) sums[j] = load_shared_float2(stage + sum_offset + 32 * j);
        if (i + 1 < groups) load(i + 1, 1 - h);
        wgmma_wait<0>();
        fence_accumulators<kRows>(part);
        promote<kRows>(acc, part, scales[h], sums);
        if (lane == 0) barrier_arrive(ring.empty + 8 * (use % C::kCount));
      }
    }
  }
}

template <int kRows, int kConsumers, class Out>
__global__ void __launch_bounds__(Config<kRows, kConsumers>::kThreads, Config<kRows, kConsumers>::kBlocksPerSm)
    exact_stream_gemm_kernel(GroupedGemmParams const p, const __grid_constant__ CUtensorMap act_map,
                             int const splits) {
  using C = Config<kRows, kConsumers>;
  constexpr int kConsumerThreads = kConsumers * kWarpgroupThreads;
  extern __shared__ uint8_t shared_memory[];
  __shared__ alignas(8) uint64_t barriers[2 * C::kCount];
  __shared__ StagedItem staged[C::kCount];

  uint32_t const base = shared_address(shared_memory);
  Ring ring{(base + kSwizzleAtomBytes - 1) / kSwizzleAtomBytes * kSwizzleAtomBytes, shared_address(barriers),
            shared_address(barriers + C::kCount), 0};
  float* partial = reinterpret_cast<float*>(shared_memory + (ring.stages - base) + C::kCount * C::kBytes);
  bool const producer = threadIdx.x >= kConsumerThreads;
  if (threadIdx.x == 0) {
    for (int s = 0; s < C::kCount; ++s) {
      barrier_init(ring.full + 8 * s, kFullArrivals);
      barrier_init(ring.empty + 8 * s, kConsumers * 4);
    }
    barrier_init_fence();
  }
  if (threadIdx.x == kConsumerThreads) prefetch_tensor_map(act_map);
  __syncthreads();

  pdl_wait_for_previous_grid();
  prepack::ExactSections const sections = prepack::exact_sections_of_whole_groups(p.shape);
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, stripes = n / kStripeChannels;
  int const tiles = (n + C::kTileChannels - 1) / C::kTileChannels;
  int const warpgroup = int(threadIdx.x) / kWarpgroupThreads, warp = int(threadIdx.x) / 32 % 4;
  int const lane = int(threadIdx.x) % 32;
  int const split = int(blockIdx.x) % splits, worker = int(blockIdx.x) / splits, workers = int(gridDim.x) / splits;
  int const group_begin = split * groups / splits, group_end = (split + 1) * groups / splits;
  int const item_groups = group_end - group_begin;
  Out* out = static_cast<Out*>(p.out);

  if (producer) {
    if constexpr (C::kProducerWarpgroup) {
      asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
      if (threadIdx.x >= kConsumerThreads + 32) return;
    }
    int64_t const chunk_bound = max_chunks(p.total_rows, p.shape.num_experts, kRows);
    ChunkCursor cursor;
    for (int64_t index = worker;; index += workers) {
      StagedItem item{{}, int(index % tiles)};
      bool const found =
          index / tiles < chunk_bound && find_chunk_in_warp<kRows>(p, index / tiles, cursor, &item.chunk);
      if (found) {
        produce<kRows, kConsumers>(p, sections, act_map, item, group_begin, group_end, ring, staged);
      } else if (lane == 0) {
        announce_end<kRows, kConsumers>(ring, staged);
      }
      __syncwarp();
      if (!found) {
        pdl_allow_next_grid();  // the worker's last item is staged: the next kernel may start launching
        return;
      }
      ring.uses += uint32_t(item_groups);
      if constexpr (C::kSplitsK) {
        if (splits > 1) {  // the consumers' two cluster barriers of this item
          cg::this_cluster().sync();
          cg::this_cluster().sync();
        }
      }
    }
  }

  if constexpr (C::kProducerWarpgroup) asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  while (true) {
    uint32_t const slot = ring.uses % C::kCount;
    barrier_wait(ring.full + 8 * slot, ring.uses / C::kCount % 2);
    StagedItem const item = staged[slot];
    if (item.chunk.rows == 0) return;
    int const tile = item.tile * kConsumers + warpgroup;
    Chunk const& chunk = item.chunk;
    float const* channel_scales =
        reinterpret_cast<float const*>(p.packed + sections.channel_scales) + size_t(chunk.expert) * n;
    int const stripe = tile * kTileStripes + warp;
    bool const stores_stripe = splits == 1 && stripe < stripes;
    StripeScales<kRows> scales;
    if (kEarlyStripeScales<kRows> && stores_stripe) {
      scales = load_stripe_scales<kRows>(channel_scales, p.token_scales, chunk, stripe);
    }
    float acc[kRows / 2];
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.f;
    consume<kRows, kConsumers>(ring, item_groups, max(prepack::exact_tile_stripes(n, tile), 0), acc);
    ring.uses += uint32_t(item_groups);

    if (splits == 1) {
      if (stores_stripe) {
        if (!kEarlyStripeScales<kRows>) {
          scales = load_stripe_scales<kRows>(channel_scales, p.token_scales, chunk, stripe);
        }
        store_stripe<kRows>(out, n, scales, chunk, stripe, acc);
      }
    } else if constexpr (C::kSplitsK) {
      store_cluster_sum<kRows, kConsumerThreads>(out, n, channel_scales, p.token_scales, chunk, item.tile, split,
                                                 splits, partial, acc);
    }
  }
}

// One block per row, a thread per 16 activations (looping past 1024 threads); eight consecutive threads hold a
// group. The block and K / 16 are multiples of 8, so a team of eight is always whole.
__global__ void activation_group_sums_kernel(uint8_t const* act, int64_t rows, int k, float* sums, int64_t stride) {
  int64_t const row = blockIdx.x;
  for (int first = int(threadIdx.x) * 16; first < k; first += int(blockDim.x) * 16) {
    uint4 const bytes = *reinterpret_cast<uint4 const*>(act + row * k + first);
    uint32_t const words[4] = {bytes.x, bytes.y, bytes.z, bytes.w};
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        __half2_raw const h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(words[w] >> (16 * half)), __NV_E4M3);
        float2 const f = __half22float2(__half2(h));
        sum += f.x + f.y;
      }
    }
    unsigned const team = 0xFFu << (threadIdx.x & 24);  // the group's eight lanes, all of them here
    sum += __shfl_xor_sync(team, sum, 1);
    sum += __shfl_xor_sync(team, sum, 2);
    sum += __shfl_xor_sync(team, sum, 4);
    if (threadIdx.x % 8 == 0) sums[int64_t(first / kGroupSize) * stride + row] = sum * prepack::kExactOffsetValue;
  }
}

template <int kRows, int kConsumers, class Out>
Status launch(GroupedGemmParams const& p) {
  using C = Config<kRows, kConsumers>;
  StreamLaunchPlan const plan =
      plan_stream_launch(p.shape, p.total_rows, p.expected_rows, p.sm_count, kRows, C::kBlocksPerSm, C::kSharedBytes,
                         C::kTileChannels, C::kSplitsK ? 8 : 1);
  CUtensorMap act_map;
  W4A8_RETURN_IF_ERROR(make_activation_tensor_map(p.act, p.total_rows, p.shape.k, kRows, &act_map));
  auto kernel = exact_stream_gemm_kernel<kRows, kConsumers, Out>;
  W4A8_CUDA_RETURN(launch_with_pdl_in_clusters(kernel, dim3(unsigned(plan.blocks)), dim3(C::kThreads),
                                               plan.shared_bytes, p.stream, unsigned(plan.splits), p, act_map,
                                               plan.splits));
  return Status::Ok();
}

}  // namespace

Status launch_activation_group_sums(void const* act, int64_t rows, int k, float* sums, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  activation_group_sums_kernel<<<unsigned(rows), unsigned(std::min(k / 16, 1024)), 0, stream>>>(
      static_cast<uint8_t const*>(act), rows, k, sums, group_sums_stride(rows));
  W4A8_CUDA_RETURN(cudaGetLastError());
  return Status::Ok();
}

template <int kRows, int kConsumers>
Status run_exact_stream_gemm(GroupedGemmParams const& params) {
  return params.out_type == OutputType::kBF16 ? launch<kRows, kConsumers, __nv_bfloat16>(params)
                                              : launch<kRows, kConsumers, __half>(params);
}

template Status run_exact_stream_gemm<8, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<16, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<32, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<48, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<64, 2>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<128, 2>(GroupedGemmParams const&);

}  // namespace w4a8moe::gemm
