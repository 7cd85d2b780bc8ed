// The wgmma streaming kernel of the two layouts of tile x group blocks, the exact-scale layout
// (prepack/exact_format.h) and the MXFP4 layout (prepack/mxfp4_format.h); block_formats.cuh holds what differs. The
// structure is stream_gemm.cu's (workers over items, a producer warp and a ring of stages filled by the copy engine,
// K split over a cluster when the items are few), with these layouts' blocks and scales:
//  - an item is a chunk of up to kRows rows of one expert and a tile of kConsumers x 64 channels; a stage holds the
//    chunk's activations of one 128-K group, one contiguous block per 64-channel tile (its weights and scales, one
//    bulk copy), and, in the exact-scale layout, the activations' group sums, which the producer warp's lanes copy;
//  - each consumer warpgroup takes one 64-channel tile; the weights become wgmma A registers by masks and shifts
//    (exact-scale: `w & 0x0F0F0F0F`, `(w >> 4) & 0x0F0F0F0F`, bytes u read by the tensor cores as u * 2^-9) or by
//    byte lookups (MXFP4);
//  - exact-scale: each group's four wgmmas start a fresh accumulator, and the group is added into the fp32 result
//    with its scales: acc += sg * (group - 2^-6 sum_k x_k), bf16 sg exact, no e4m3 rounding of q * sg; MXFP4: the
//    block scales are folded into the e4m3 weights (per-lane tables), so the wgmmas accumulate into the result; the
//    next group is loaded and unpacked while the wgmmas run;
//  - exact-scale, 128-row chunks: acc += sg * group, and the nibbles' offset, sum_g sg(g) * 2^-6 sum_k x_k(g), comes
//    off every eight groups in one bf16 wgmma (OffsetTile; bench/NOTES.md §36).
// Included by the translation units that instantiate it (exact_stream_gemm.cu, mxfp4_stream_gemm.cu).
#pragma once

#include <cooperative_groups.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "common/pdl.cuh"
#include "gemm/async_copy.cuh"
#include "gemm/block_formats.cuh"
#include "gemm/cluster_residency.cuh"
#include "gemm/item_deal.cuh"
#include "gemm/stream_epilogue.cuh"
#include "gemm/stream_layout.h"
#include "gemm/stream_plan.h"
#include "gemm/tensor_map.h"
#include "gemm/weight_stream.cuh"
#include "gemm/wgmma_rs.cuh"
#include "gemm/worker_launch.cuh"
#include "prepack/exact_format.h"

namespace w4a8moe::gemm {
namespace {

namespace cg = cooperative_groups;
using prepack::kExactStripeWeightBytes;

constexpr int kWarpgroupThreads = 128;
constexpr int kTileStripes = prepack::kExactTileChannels / prepack::kExactStripeChannels;

// A stage: the activations (1024-byte aligned for the swizzle), a block per consumer warpgroup, the group sums (in
// the formats that have them).
template <class F, int kRows, int kConsumers>
struct Config {
  static constexpr uint32_t kStripeBytes = kExactStripeWeightBytes + F::kStripeScaleBytes;
  static constexpr uint32_t kBlockBytes = kTileStripes * kStripeBytes;
  // Arrivals on a stage's full barrier: the producer's lane 0 (with the copies' bytes) and each lane's group sums.
  static constexpr uint32_t kFullArrivals = F::kGroupSums ? 1 + 32 : 1;
  // 128- and 256-row chunks take a producer warpgroup (one warp of it works) so that setmaxnreg can move its
  // registers to the consumers (their accumulators need ~200 per thread); the others a producer warp.
  static constexpr bool kProducerWarpgroup = kRows >= 128;
  static constexpr int kThreads = kConsumers * kWarpgroupThreads + (kProducerWarpgroup ? kWarpgroupThreads : 32);
  static constexpr int kTileChannels = kConsumers * prepack::kExactTileChannels;
  static constexpr uint32_t kActBytes = kRows * kGroupSize;
  static constexpr uint32_t kSumOffset = kActBytes + kConsumers * kBlockBytes;
  static constexpr uint32_t kSumBytes = F::kGroupSums ? kRows * sizeof(float) : 0;
  static constexpr uint32_t kBytes =
      (kSumOffset + kSumBytes + kSwizzleAtomBytes - 1) / kSwizzleAtomBytes * kSwizzleAtomBytes;
  // Only the one-warpgroup shapes split K (their partial tiles fit beside the ring).
  static constexpr bool kSplitsK = kConsumers == 1;
  static constexpr int kBlocksPerSm = F::blocks_per_sm(kRows, kConsumers);
  static constexpr uint32_t kPartialBytes = kSplitsK ? kTileChannels * kRows * sizeof(float) : 0;
  // The 128-row exact-scale chunks take the offset off per eight groups (OffsetTile); the smaller ones per group,
  // where that measured faster (bench/NOTES.md §36). Each consumer warpgroup writes its own copy of the same sums:
  // one shared tile would need a barrier across both warpgroups and both wgmmas done before its next window.
  static constexpr bool kOffsetPerTile = F::kGroupSums && kRows == 128;
  static constexpr uint32_t kOffsetTileBytes = kOffsetPerTile ? kRows * 32 : 0;
  static constexpr size_t kRingBytes = kSharedMemoryPerSm / kBlocksPerSm - 1024 - 2048 - kSwizzleAtomBytes -
                                       kPartialBytes - kConsumers * kOffsetTileBytes;
  static constexpr int kCount = std::min<int>(8, int(kRingBytes / kBytes));
  static constexpr size_t kSharedBytes =
      kSwizzleAtomBytes + size_t(kCount) * kBytes + kPartialBytes + kConsumers * kOffsetTileBytes;
};

// Eight groups' activation group sums of a chunk's rows as the B operand of a bf16 wgmma m64nRk16: K slot 2s + j is
// group s of the eight, high (j = 0) or low (j = 1) bf16 part, so that with A = each group's bf16 scale twice the
// wgmma sums sg * (high + low) (about 16 bits of the fp32 sum; the products are exact). wgmma's K-major layout
// without swizzle: 8-row core matrices of 16 bytes a row, the two along K 128 bytes apart (the leading byte offset),
// 8-row groups 256 bytes apart (the stride byte offset).
struct OffsetTile {
  static constexpr uint32_t kLeadingBytes = 128, kStrideBytes = 256;

  // Byte offset of row `row`'s two K slots of group `slot` (one 4-byte word).
  __device__ __forceinline__ static uint32_t offset(int row, int slot) {
    return uint32_t(row / 8) * kStrideBytes + uint32_t(slot / 4) * kLeadingBytes + uint32_t(row % 8) * 16 +
           uint32_t(slot % 4) * 4;
  }

  // The descriptor of the tile at this 16-byte aligned shared address: no swizzle (layout type 0).
  __device__ __forceinline__ static uint64_t descriptor(uint32_t address) {
    return uint64_t(((address & 0x3FFFF) >> 4) | ((kLeadingBytes >> 4) << 16)) | (uint64_t(kStrideBytes >> 4) << 32);
  }

  // The fp32 group sum v as bf16 high and low parts, high in the lower half (the lower K slot).
  __device__ __forceinline__ static uint32_t split(float v) {
    __nv_bfloat16 const high = __float2bfloat16_rn(v);
    __nv_bfloat16 const low = __float2bfloat16_rn(v - __bfloat162float(high));
    return uint32_t(__bfloat16_as_ushort(high)) | (uint32_t(__bfloat16_as_ushort(low)) << 16);
  }
};

// The whole producer warp: copies groups [group_begin, group_end) of the item into the next stages. Lane 0 issues
// the tensor copies and arrives expecting their bytes; where the format has group sums, every lane copies its rows'
// sums with cp.async (zeros past the chunk) and arrives when they land, so that no lane waits for a load (a stage's
// full barrier counts kFullArrivals).
template <class F, int kRows, int kConsumers>
__device__ __forceinline__ void produce(GroupedGemmParams const& p, prepack::ExactSections const& sections,
                                        CUtensorMap const& act_map, StagedItem const& item, int group_begin,
                                        int group_end, Ring const& ring, StagedItem* staged) {
  using C = Config<F, kRows, kConsumers>;
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, lane = int(threadIdx.x) % 32;
  int64_t const sum_stride = group_sums_stride(p.total_rows);
  uint8_t const* expert_blocks =
      p.packed + sections.blocks + size_t(item.chunk.expert) * sections.block_bytes_per_expert;
  uint32_t block_bytes[kConsumers], bytes = C::kActBytes;
  uint8_t const* blocks[kConsumers];
#pragma unroll
  for (int w = 0; w < kConsumers; ++w) {
    int const tile = item.tile * kConsumers + w;
    block_bytes[w] = uint32_t(max(prepack::exact_tile_stripes(n, tile), 0)) * C::kStripeBytes;
    blocks[w] = expert_blocks +
                (block_bytes[w] > 0 ? prepack::exact_block_offset(n, groups, tile, 0, C::kStripeBytes) : 0);
    bytes += block_bytes[w];
  }
  for (int group = group_begin; group < group_end; ++group) {
    uint32_t const use = ring.uses + uint32_t(group - group_begin), slot = use % C::kCount;
    if (use >= C::kCount) barrier_wait(ring.empty + 8 * slot, (use / C::kCount - 1) % 2);
    uint32_t const stage = ring.stages + slot * C::kBytes, full = ring.full + 8 * slot;
    if constexpr (F::kGroupSums) {
      float const* sums = p.group_sums + group * sum_stride + item.chunk.first_row;
      for (int row = lane; row < kRows; row += 32) {
        uint32_t const bytes_read = row < item.chunk.rows ? 4 : 0;
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(stage + C::kSumOffset + 4 * row),
                     "l"(bytes_read ? sums + row : sums), "r"(bytes_read)
                     : "memory");
      }
      asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(full) : "memory");
    }
    if (lane == 0) {
      staged[slot] = item;
      barrier_arrive_expect(full, bytes);
      tensor_copy_2d(stage, act_map, group * kGroupSize, int(item.chunk.first_row), full);
#pragma unroll
      for (int w = 0; w < kConsumers; ++w) {
        if (block_bytes[w] > 0) {
          bulk_copy(stage + C::kActBytes + w * C::kBlockBytes, blocks[w] + size_t(group) * block_bytes[w],
                    block_bytes[w], full);
        }
      }
    }
  }
}

// The producer's lane 0, once the worker's items are done: the next stage carries no item.
template <class F, int kRows, int kConsumers>
__device__ __forceinline__ void announce_end(Ring const& ring, StagedItem* staged) {
  using C = Config<F, kRows, kConsumers>;
  uint32_t const slot = ring.uses % C::kCount;
  if (ring.uses >= C::kCount) barrier_wait(ring.empty + 8 * slot, (ring.uses / C::kCount - 1) % 2);
  staged[slot] = StagedItem{{0, 0, 0}, 0};
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;" ::"r"(ring.full + 8 * slot), "r"(C::kFullArrivals)
               : "memory");
}

// A consumer warpgroup: `groups` staged groups of its tile (`stripes` of them exist) into acc. Group i's wgmmas run
// while group i + 1 is loaded and unpacked; once they are done (wait 0: reading an accumulator while another wgmma
// group is in flight makes ptxas serialise every wgmma), the warp's share of the stage is released. Exact-scale: the
// wgmmas run into a fresh accumulator that is then promoted into acc; with the offset per tile (C::kOffsetPerTile),
// each thread writes its row's sum of group i into the warpgroup's OffsetTile (at offset_tile) while the wgmmas run,
// and every eighth group (and the last) the tile's wgmma takes the offset off acc. MXFP4 (F::kScaledInMma): the
// wgmmas accumulate into acc.
template <class F, int kRows, int kConsumers>
__device__ __forceinline__ void consume(Ring const& ring, int groups, int stripes, uint32_t offset_tile,
                                        float (&acc)[kRows / 2]) {
  using C = Config<F, kRows, kConsumers>;
  int const warpgroup = int(threadIdx.x) / kWarpgroupThreads % kConsumers, warp = int(threadIdx.x) / 32 % 4;
  int const lane = int(threadIdx.x) % 32;
  uint32_t const block = C::kActBytes + warpgroup * C::kBlockBytes;
  uint32_t const weights_offset = block + warp * kExactStripeWeightBytes + lane * 16;
  uint32_t const scale_offset =
      block + stripes * kExactStripeWeightBytes + warp * F::kStripeScaleBytes + (lane / 4) * F::kLaneScaleBytes;
  uint32_t const sum_offset = C::kSumOffset + (lane % 4) * 8;
  int const row = int(threadIdx.x) % kWarpgroupThreads;  // the OffsetTile row this thread writes
  uint32_t offset_scales[4] = {};  // the offset wgmma's A: this lane's scale pairs of the eight groups' K slots
  uint32_t a[2][kAtomsPerGroup][4];
  typename F::Scales scales[2];
  // Waits for group i's stage and unpacks it into set h.
  auto load = [&](int i, int h) {
    uint32_t const use = ring.uses + uint32_t(i), stage = ring.stages + use % C::kCount * C::kBytes;
    barrier_wait(ring.full + 8 * (use % C::kCount), use / C::kCount % 2);
    uint4 const w01 = load_shared_16(stage + weights_offset);
    uint4 const w23 = load_shared_16(stage + weights_offset + 512);
    scales[h] = F::load_scales(stage + scale_offset);
    F::unpack_atom(w01.x, w01.y, scales[h], 0, a[h][0]);
    F::unpack_atom(w01.z, w01.w, scales[h], 1, a[h][1]);
    F::unpack_atom(w23.x, w23.y, scales[h], 2, a[h][2]);
    F::unpack_atom(w23.z, w23.w, scales[h], 3, a[h][3]);
  };
  float part[F::kScaledInMma ? 1 : kRows / 2];  // the group's own accumulator (exact-scale)
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
          if constexpr (F::kScaledInMma) {
            wgmma_e4m3_rs<kRows>(acc, a[h][atom], activation_descriptor(stage, atom));
          } else {
            wgmma_e4m3_rs<kRows>(part, a[h][atom], activation_descriptor(stage, atom), atom > 0 ? 1u : 0u);
          }
        }
        wgmma_commit();
        float2 sums[kRows / 8];  // only now: in registers beside the next group's, they spill at 128 rows
        if constexpr (F::kGroupSums && !C::kOffsetPerTile) {
#pragma unroll
          for (int k = 0; k < kRows / 8; ++k) sums[k] = load_shared_float2(stage + sum_offset + 32 * k);
        }
        if constexpr (C::kOffsetPerTile) {
          int const slot = i % 8;
          if (row < kRows) {
            store_shared_4(offset_tile + OffsetTile::offset(row, slot),
                           OffsetTile::split(load_shared_float(stage + C::kSumOffset + 4 * row)));
          }
        }
        if (i + 1 < groups) load(i + 1, 1 - h);
        wgmma_wait<0>();
        if constexpr (F::kScaledInMma) {
          fence_accumulators<kRows>(acc);
        } else {
          fence_accumulators<kRows>(part);
          if constexpr (C::kOffsetPerTile) {
            // The offset wgmma's A, set only now: a register it reads, written while other wgmmas are in flight,
            // makes ptxas serialise every wgmma (C7513). K slots 2 (lane % 4).. hold group lane % 4, 8 + .. group + 4.
            if (i % 8 % 4 == lane % 4) {
              uint32_t const low = F::scale_pair(scales[h].x), high = F::scale_pair(scales[h].y);
              bool const first_half = i % 8 < 4;
              offset_scales[0] = first_half ? low : offset_scales[0];  // constant indices: registers, not a stack
              offset_scales[1] = first_half ? high : offset_scales[1];
              offset_scales[2] = first_half ? offset_scales[2] : low;
              offset_scales[3] = first_half ? offset_scales[3] : high;
            }
            F::template promote_scaled<kRows>(acc, part, scales[h]);
          } else {
            F::template promote<kRows>(acc, part, scales[h], sums);
          }
        }
        if constexpr (C::kOffsetPerTile) {
          if (i % 8 == 7 || i + 1 == groups) {  // the eight groups' offset off acc
            // A last window of fewer groups: its other slots' sums to zero (the lanes' scales there are the previous
            // window's; clearing those registers instead makes ptxas serialise every wgmma, C7513).
            for (int slot = i % 8 + 1; slot < 8 && row < kRows; ++slot) {
              store_shared_4(offset_tile + OffsetTile::offset(row, slot), 0u);
            }
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the tile's stores, for the wgmma
            asm volatile("bar.sync %0, %1;" ::"r"(1 + int(threadIdx.x) / kWarpgroupThreads), "n"(kWarpgroupThreads)
                         : "memory");
            wgmma_fence();
            fence_accumulators<kRows>(acc);
            wgmma_bf16_rs_subtract<kRows>(acc, offset_scales, OffsetTile::descriptor(offset_tile));
            wgmma_commit();
            wgmma_wait<0>();
            fence_accumulators<kRows>(acc);
          }
        }
        if (lane == 0) barrier_arrive(ring.empty + 8 * (use % C::kCount));
      }
    }
  }
}

// kWorkers: 1, or the blocks an SM (block_stream_sm_workers) in one block of one SM (item_deal.cuh), K unsplit.
template <class F, int kRows, int kConsumers, int kWorkers, class Out>
__global__ void __launch_bounds__(kWorkers * Config<F, kRows, kConsumers>::kThreads,
                                  Config<F, kRows, kConsumers>::kBlocksPerSm / kWorkers)
    block_stream_gemm_kernel(GroupedGemmParams const p, const __grid_constant__ CUtensorMap act_map,
                             int const cluster_splits) {
  using C = Config<F, kRows, kConsumers>;
  static_assert(kWorkers == 1 || (kConsumers == 1 && !C::kProducerWarpgroup && !C::kOffsetPerTile),
                "several workers a block: one consumer warpgroup and a producer warp each");
  using Workers = BlockWorkers<kWorkers, kConsumers * kWarpgroupThreads>;
  constexpr int kConsumerThreads = kConsumers * kWarpgroupThreads;
  extern __shared__ uint8_t shared_memory[];
  __shared__ alignas(8) uint64_t barriers[kWorkers][2 * C::kCount];
  __shared__ StagedItem staged_items[kWorkers][C::kCount];
  __shared__ int items_taken;

  int const slot_of_worker = Workers::worker();
  StagedItem* const staged = staged_items[slot_of_worker];
  uint32_t const base = shared_address(shared_memory);
  uint32_t const stages = (base + kSwizzleAtomBytes - 1) / kSwizzleAtomBytes * kSwizzleAtomBytes;
  Ring ring = worker_ring(barriers, slot_of_worker, stages, C::kBytes);
  float* partial = reinterpret_cast<float*>(shared_memory + (ring.stages - base) + C::kCount * C::kBytes);
  bool const producer = Workers::producer();
  uint32_t const offset_tile = ring.stages + C::kCount * C::kBytes + C::kPartialBytes +
                               uint32_t(threadIdx.x / kWarpgroupThreads) * C::kOffsetTileBytes;
  if (threadIdx.x == 0) init_worker_rings(barriers, C::kFullArrivals, kConsumers * 4, items_taken);
  if (threadIdx.x == Workers::kProducerThreads) prefetch_tensor_map(act_map);
  __syncthreads();

  pdl_wait_for_previous_grid();
  prepack::ExactSections const sections = F::sections(p.shape);
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, stripes = n / kStripeChannels;
  int const tiles = (n + C::kTileChannels - 1) / C::kTileChannels;
  int const warpgroup = int(threadIdx.x) / kWarpgroupThreads % kConsumers, warp = int(threadIdx.x) / 32 % 4;
  int const lane = int(threadIdx.x) % 32;
  int const splits = kWorkers == 1 ? cluster_splits : 1;
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
    ItemDeal<kWorkers> const deal{worker, workers, &items_taken};
    for (int64_t index = deal.first();; index = deal.next(index)) {
      StagedItem item{{}, int(index % tiles)};
      bool const found =
          index / tiles < chunk_bound && find_chunk_in_warp<kRows>(p, index / tiles, cursor, &item.chunk);
      if (found) {
        produce<F, kRows, kConsumers>(p, sections, act_map, item, group_begin, group_end, ring, staged);
      } else if (lane == 0) {
        announce_end<F, kRows, kConsumers>(ring, staged);
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
    float const* bias_row = F::kTakesBias && p.bias != nullptr ? p.bias + size_t(chunk.expert) * n : nullptr;
    int const stripe = tile * kTileStripes + warp;
    bool const stores_stripe = splits == 1 && stripe < stripes;
    StripeScales<kRows, F::kTakesBias> scales;
    if (kEarlyStripeScales<kRows> && stores_stripe) {
      scales = load_stripe_scales<kRows, F::kTakesBias>(channel_scales, p.token_scales, chunk, stripe, bias_row);
    }
    float acc[kRows / 2];
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.f;
    consume<F, kRows, kConsumers>(ring, item_groups, max(prepack::exact_tile_stripes(n, tile), 0), offset_tile, acc);
    ring.uses += uint32_t(item_groups);

    if (splits == 1) {
      if constexpr (kRows > 128) {
        if (stores_stripe) {
          store_stripe_in_parts<kRows, Out, F::kTakesBias>(out, n, channel_scales, p.token_scales, chunk, stripe, acc,
                                                           bias_row);
        }
      } else if (stores_stripe) {
        if (!kEarlyStripeScales<kRows>) {
          scales = load_stripe_scales<kRows, F::kTakesBias>(channel_scales, p.token_scales, chunk, stripe, bias_row);
        }
        store_stripe<kRows, Out, F::kTakesBias>(out, n, scales, chunk, stripe, acc);
      }
    } else if constexpr (C::kSplitsK) {
      store_slice_sum<kRows, kConsumerThreads, Out, F::kTakesBias>(out, n, channel_scales, p.token_scales, chunk,
                                                                  item.tile, split, splits, ClusterSlices{partial},
                                                                  acc, bias_row);
    }
  }
}

template <class F, int kRows, int kConsumers, class Out>
Status launch_block_stream_gemm(GroupedGemmParams const& p) {
  using C = Config<F, kRows, kConsumers>;
  constexpr int kSmWorkers = block_stream_sm_workers(C::kBlocksPerSm, kRows, kConsumers);
  constexpr size_t kSmBlockBytes = kSwizzleAtomBytes + size_t(kSmWorkers) * C::kCount * C::kBytes;
  static_assert(kSmBlockBytes <= kSharedMemoryPerSm - 1024 - 2048, "the workers' rings fit one block of an SM");
  auto kernel = block_stream_gemm_kernel<F, kRows, kConsumers, 1, Out>;
  ClusterResidency const residency =
      C::kSplitsK ? cluster_residency(kernel, C::kThreads, C::kSharedBytes, p.stream) : ClusterResidency{};
  StreamLaunchPlan const plan =
      plan_worker_launch(p.shape, p.total_rows, p.expected_rows, p.sm_count, kRows, kConsumers, C::kBlocksPerSm,
                         C::kSharedBytes, kSmWorkers, kSmBlockBytes, residency);
  return enqueue_worker_launch(plan, kRows, block_stream_gemm_kernel<F, kRows, kConsumers, kSmWorkers, Out>,
                               kSmWorkers * C::kThreads, kernel, C::kThreads, p);
}

// The kernel for params.out_type (bf16 or fp16 outputs).
template <class F, int kRows, int kConsumers>
Status run_block_stream_gemm(GroupedGemmParams const& params) {
  return params.out_type == OutputType::kBF16
             ? launch_block_stream_gemm<F, kRows, kConsumers, __nv_bfloat16>(params)
             : launch_block_stream_gemm<F, kRows, kConsumers, __half>(params);
}

}  // namespace
}  // namespace w4a8moe::gemm
