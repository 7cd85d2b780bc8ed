// The wgmma streaming kernel: a few rows per expert, where the GEMM is a stream of the packed weights
// (bench/NOTES.md §8).
//
// The blocks are workers over the call's items (a 64-channel tile of a chunk of up to kRows rows of one expert, over
// one slice of K): worker w takes items w, w + workers, ...; one wave of persistent workers for short items, one item
// per block otherwise, or, with at least an item an SM and K unsplit, four workers in one block an SM that take the
// block's share of the items in turn (stream_plan.h says when, item_deal.cuh how). One producer warp a worker finds
// each item's chunk from expert_offsets (on the device: no host sync, no workspace) and streams each 128-K group into a
// ring of shared-memory stages with the tensor copy engine: the tile's four reorder atoms (1 KB each, contiguous; one
// 3D tensor copy of all four where K has at least 32 groups, a bulk copy each otherwise, bench/NOTES.md §83), its
// 64 tables' odd entries (the packed format's odd tables, 4 bytes a channel) and the chunk's activations (a 2D tensor
// copy in wgmma's 128-byte swizzle), all completing on the stage's mbarrier, and the item's chunk beside the stage. It
// runs ahead across items, so a worker's next item is in flight while its consumers finish the last one (per-block
// set-up, the chunk search and the epilogue were 30 % of the warps' time when every block took one item,
// bench/NOTES.md §9). A consumer warpgroup reads each warp's atoms and odd table entries from the stage (one 8-byte
// load per lane an atom: the atom is exactly wgmma's m64k32 A fragment, 16 rows per warp; 4 bytes a channel, rebuilt
// into the whole table), turns the nibbles into e4m3 through the lookup table in registers (the same e4m3 values as
// the CUTLASS mainloop), and issues four wgmma m64nRk32 with A from those registers and B from the stage (R: the
// chunk's rows, 8 where it holds at most 8, §82). The tensor cores do the token dimension: 1 or 64 rows cost the same
// instructions per weight.
//
// Why the copy engine for the weights: loads into registers, kept several groups ahead, all share one scoreboard
// in the SASS ptxas emits, so each group's first use waited for every load in flight, and a proxy fence for
// cp.async-written activations compiled to a MEMBAR that did the same; both held the first versions of this kernel
// at about one group in flight per block (bench/NOTES.md §8b).
//
// K is split over the blocks of a thread-block cluster (up to 8) when the expected items are too few to fill the
// SMs; each block then writes its partial tile to shared memory and the cluster sums them through distributed shared
// memory, in rank order (deterministic), each rank a slice of the channels. The producer then waits for each item's
// sums like the consumers (the cluster barrier counts every thread), so it runs ahead only within an item. The
// split-K configs ("64x8_splitk_stream") split K instead over the four workers of one block an SM, which take the
// same items and sum through the block's shared memory at a barrier of their consumers (bench/NOTES.md §58): a
// cluster must stay resident and its blocks share a GPC, a block an SM need not. Named, they split the items of plans
// dealt per SM the same way, so that an SM's last items do not run on one or two of its workers; the heuristic does
// not take them there, as that paid only for long items at 5-6 an SM (§79).
//
// Numerics: as the CUTLASS configs (the same e4m3 products, the fp8 wgmma's accumulation).
#include "gemm/stream_gemm.h"

#include <cooperative_groups.h>

#include <algorithm>
#include <type_traits>

#include "common/pdl.cuh"
#include "gemm/async_copy.cuh"
#include "gemm/cluster_residency.cuh"
#include "gemm/item_deal.cuh"
#include "gemm/stream_epilogue.cuh"
#include "gemm/stream_layout.h"
#include "gemm/stream_plan.h"
#include "gemm/tensor_map.h"
#include "gemm/weight_stream.cuh"
#include "gemm/wgmma_rs.cuh"
#include "gemm/worker_launch.cuh"

namespace w4a8moe::gemm {
namespace {

namespace cg = cooperative_groups;

constexpr int kConsumerThreads = 128;  // one warpgroup
constexpr int kThreads = kConsumerThreads + 32;  // and the producer warp
constexpr int kTileStripes = 4;  // a consumer warp per 16-channel stripe: wgmma's 64 rows
constexpr int kTileChannels = kTileStripes * kStripeChannels;
constexpr uint32_t kWeightBytes = kAtomsPerGroup * kTileStripes * kAtomBytes;  // a group of the tile: 4 x 1 KB
// The tables' odd entries (4 bytes a channel), rebuilt into whole tables in registers: 4 bytes a channel and group
// fewer to stream than the 8-byte tables, for 4 instructions a channel (bench/NOTES.md §77).
constexpr uint32_t kTableBytes = kTileChannels * prepack::kOddTableBytes;

// An item of the 16- and 32-row configs whose chunk holds at most 8 rows multiplies and stores only 8 (wgmma m64n8);
// the others all kRows. Every item copies kRows rows of activations in one tensor copy a group (two to four copies
// of 8 rows made the 16-row items up to 1.2x slower, bench/NOTES.md §82). A third class (16 rows in the 32-row
// config) made ptxas spill. The 8 rows are the 8-row config's chunk.
constexpr int kMinRowClass = kStreamChunkRows;

// Calls f(std::integral_constant<int, R>{}) with the item's row class R: 8 for chunks of at most 8 rows, else kRows.
template <int kRows, class F>
__device__ __forceinline__ void with_row_class(int rows, F&& f) {
  if constexpr (kRows > kMinRowClass) {
    if (rows <= kMinRowClass) return f(std::integral_constant<int, kMinRowClass>{});
  }
  f(std::integral_constant<int, kRows>{});
}

// A stage: the activations first (1024-byte aligned for the swizzle), then the weights and the tables; the ring of a
// worker in a block of kWorkers.
template <int kRows, int kWorkers>
struct Stage {
  static constexpr uint32_t kActBytes = kRows * kGroupSize;
  static constexpr uint32_t kBytes = (kActBytes + kWeightBytes + kTableBytes + kSwizzleAtomBytes - 1) /
                                     kSwizzleAtomBytes * kSwizzleAtomBytes;
  static constexpr uint32_t kPartialBytes = kTileChannels * kRows * sizeof(float);
  // Only the 8-row chunks' split-K config splits K over the workers of one block (two sets of partial tiles each).
  static constexpr bool kSlicesInBlock = kRows == kStreamChunkRows;
  // At most 8 stages. One worker a block: as many as the block's share of an SM's shared memory holds beside its
  // partial tile (1 KB of it reserved per block, ~2 KB of static shared memory). The workers of one block an SM:
  // their share of the SM's memory less the block's, and less their partial tiles where K splits in the block: at
  // 16 and 32 rows one stage more than a block each (8 and 6), as no cluster's partial tile has to fit beside them.
  static constexpr size_t kWorkerBytes =
      kWorkers == 1 ? kSharedMemoryPerSm / kStreamBlocksPerSm - 1024 - 2048 - kSwizzleAtomBytes - kPartialBytes
                    : (kSharedMemoryPerSm - 1024 - 2048 - kSwizzleAtomBytes) / kWorkers -
                          (kSlicesInBlock ? 2 * kPartialBytes : 0);
  static constexpr int kCount = std::min<int>(8, int(kWorkerBytes / kBytes));
};

// The producer's lane 0: copies groups [group_begin, group_end) of the item's tile into the next stages. A group's
// weights of the tile: one 3D tensor copy of its four K atoms (weight_map; stripes past N arrive as zeros) where
// by_tensor_copy, else a bulk copy an atom of the stripes that exist.
template <class S>
__device__ __forceinline__ void produce(GroupedGemmParams const& p, CUtensorMap const& act_map,
                                        CUtensorMap const& weight_map, bool by_tensor_copy, StagedItem const& item,
                                        int group_begin, int group_end, Ring const& ring, StagedItem* staged) {
  int const n = p.shape.n, tile = item.tile;
  // The tile's stripes that exist: a partial last tile copies only those (the rest of the stage is never stored).
  uint32_t const stripes = uint32_t(min(kTileStripes, n / kStripeChannels - tile * kTileStripes));
  uint32_t const atom_bytes = stripes * kAtomBytes;
  uint32_t const weight_bytes = by_tensor_copy ? kWeightBytes : kAtomsPerGroup * atom_bytes;
  uint32_t const table_bytes = stripes * kStripeChannels * prepack::kOddTableBytes;
  int const expert_atoms = item.chunk.expert * (p.shape.k / kAtomK);  // the weight map's third coordinate
  uint8_t const* weights = p.packed + p.sections.weights +
                           size_t(item.chunk.expert) * p.sections.weight_bytes_per_expert +
                           size_t(tile) * kTileStripes * kAtomBytes;
  uint8_t const* tables = p.packed + p.sections.odd_tables +
                          size_t(item.chunk.expert) * p.sections.odd_table_bytes_per_expert +
                          size_t(tile) * kTileChannels * prepack::kOddTableBytes;
  for (int group = group_begin; group < group_end; ++group) {
    uint32_t const use = ring.uses + uint32_t(group - group_begin), slot = use % S::kCount;
    if (use >= S::kCount) barrier_wait(ring.empty + 8 * slot, (use / S::kCount - 1) % 2);
    uint32_t const stage = ring.stages + slot * S::kBytes, full = ring.full + 8 * slot;
    staged[slot] = item;
    barrier_arrive_expect(full, S::kActBytes + weight_bytes + table_bytes);
    tensor_copy_2d(stage, act_map, group * kGroupSize, int(item.chunk.first_row), full);
    if (by_tensor_copy) {
      tensor_copy_3d(stage + S::kActBytes, weight_map, 0, tile * kTileStripes,
                     expert_atoms + group * kAtomsPerGroup, full);
    } else {
#pragma unroll
      for (int atom = 0; atom < kAtomsPerGroup; ++atom) {
        bulk_copy(stage + S::kActBytes + atom * (kTileStripes * kAtomBytes),
                  weights + (size_t(group) * kAtomsPerGroup + atom) * atom_stride(n), atom_bytes, full);
      }
    }
    bulk_copy(stage + S::kActBytes + kWeightBytes, tables + size_t(group) * n * prepack::kOddTableBytes, table_bytes,
              full);
  }
}

// The producer's lane 0, once the worker's items are done: the next stage carries no item.
template <class S>
__device__ __forceinline__ void announce_end(Ring const& ring, StagedItem* staged) {
  uint32_t const slot = ring.uses % S::kCount;
  if (ring.uses >= S::kCount) barrier_wait(ring.empty + 8 * slot, (ring.uses / S::kCount - 1) % 2);
  staged[slot] = StagedItem{{0, 0, 0}, 0};
  barrier_arrive(ring.full + 8 * slot);
}

// The consumer warpgroup: multiplies `groups` staged groups into acc, from zero, releasing each stage once its wgmmas
// are done.
// Group i + 1 is loaded and converted into the other set of A registers while group i's wgmmas run, and only then
// does the warpgroup wait for them. The order matters: ptxas frees a wgmma's A registers at the first
// wgmma.wait_group after it, whatever that wait's count, so converting after a "wait 1" (the earlier order) let the
// new values take the registers of the group still in flight (bench/NOTES.md §12a).
// S: the ring's stages; kMmaRows: the item's row class.
template <class S, int kMmaRows>
__device__ __forceinline__ void consume(Ring const& ring, int groups, float (&acc)[kMmaRows / 2]) {
#pragma unroll
  for (int i = 0; i < kMmaRows / 2; ++i) acc[i] = 0.f;
  fence_accumulators<kMmaRows>(acc);
  int const warp = int(threadIdx.x) / 32 % kTileStripes, lane = int(threadIdx.x) % 32;
  // This lane's 8 bytes of each atom, and the tables of its channels lane/4 and lane/4 + 8.
  uint32_t const weights_offset = S::kActBytes + warp * kAtomBytes + lane * 8;
  uint32_t const table_offset =
      S::kActBytes + kWeightBytes + (warp * kStripeChannels + lane / 4) * prepack::kOddTableBytes;
  uint32_t a[2][kAtomsPerGroup][4];
  // Waits for group i's stage and converts it into set h.
  auto load = [&](int i, int h) {
    uint32_t const use = ring.uses + uint32_t(i), stage = ring.stages + use % S::kCount * S::kBytes;
    barrier_wait(ring.full + 8 * (use % S::kCount), use / S::kCount % 2);
    GroupWeights w;
#pragma unroll
    for (int atom = 0; atom < kAtomsPerGroup; ++atom) {
      w.atoms[atom] = load_shared_8(stage + weights_offset + atom * (kTileStripes * kAtomBytes));
    }
    w.table_low = whole_table(load_shared_4(stage + table_offset));
    w.table_high = whole_table(load_shared_4(stage + table_offset + 8 * prepack::kOddTableBytes));
    convert_group(w, a[h]);
  };
  if (groups > 0) load(0, 0);
  for (int first = 0; first < groups; first += 2) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int const i = first + h;
      if (i < groups) {
        uint32_t const use = ring.uses + uint32_t(i), stage = ring.stages + use % S::kCount * S::kBytes;
        wgmma_fence();
#pragma unroll
        for (int atom = 0; atom < kAtomsPerGroup; ++atom) {
          wgmma_e4m3_rs<kMmaRows>(acc, a[h][atom], activation_descriptor(stage, atom));
        }
        wgmma_commit();
        if (i + 1 < groups) load(i + 1, 1 - h);
        wgmma_wait<0>();
        if (lane == 0) barrier_arrive(ring.empty + 8 * (use % S::kCount));
      }
    }
  }
  fence_accumulators<kMmaRows>(acc);
}

// kWorkers: 1 (K slices: `k_slices` blocks of a cluster), or kStreamBlocksPerSm in one block of one SM that take
// the SM's items in turn (item_deal.cuh; k_slices 1) or are the K slices of each of the block's items (k_slices =
// kWorkers: split_k_in_block).
// kStreamBlocksPerSm blocks of kThreads an SM, as one or as the workers of one block: at most 102 registers a thread.
template <int kRows, int kWorkers, class Out>
__global__ void __launch_bounds__(kWorkers * kThreads, kStreamBlocksPerSm / kWorkers)
    stream_gemm_kernel(GroupedGemmParams const p, const __grid_constant__ CUtensorMap act_map,
                       const __grid_constant__ CUtensorMap weight_map, bool const weights_by_tensor_copy,
                       int const k_slices) {
  using S = Stage<kRows, kWorkers>;
  using Workers = BlockWorkers<kWorkers, kConsumerThreads>;
  extern __shared__ uint8_t shared_memory[];
  __shared__ alignas(8) uint64_t barriers[kWorkers][2 * S::kCount];
  __shared__ StagedItem staged_items[kWorkers][S::kCount];
  __shared__ int items_taken;

  int const slot_of_worker = Workers::worker();
  StagedItem* const staged = staged_items[slot_of_worker];
  uint32_t const base = shared_address(shared_memory);
  uint32_t const stages = (base + kSwizzleAtomBytes - 1) / kSwizzleAtomBytes * kSwizzleAtomBytes;
  Ring ring = worker_ring(barriers, slot_of_worker, stages, S::kBytes);
  // The partial tiles of a K split: a cluster block's after its ring; a block's slices' after all the rings, two sets
  // of them that alternate by item (BlockSlices).
  float* const partial = reinterpret_cast<float*>(shared_memory + (ring.stages - base) + S::kCount * S::kBytes);
  float* const block_partials =
      reinterpret_cast<float*>(shared_memory + (stages - base) + kWorkers * S::kCount * S::kBytes);
  bool const producer = Workers::producer();
  if (threadIdx.x == 0) init_worker_rings(barriers, 1, kTileStripes, items_taken);
  if (threadIdx.x == Workers::kProducerThreads) {
    prefetch_tensor_map(act_map);
    if (weights_by_tensor_copy) prefetch_tensor_map(weight_map);
  }
  __syncthreads();

  pdl_wait_for_previous_grid();
  int const n = p.shape.n, groups = p.shape.k / kGroupSize, stripes = n / kStripeChannels;
  int const tiles = (n + kTileChannels - 1) / kTileChannels;
  int const warp = int(threadIdx.x) / 32 % kTileStripes, lane = int(threadIdx.x) % 32;
  // The K slices of an item are the consecutive blocks of one cluster, or the workers of one block.
  bool const block_split = kWorkers > 1 && k_slices > 1;
  int const cluster_splits = kWorkers == 1 ? k_slices : 1;
  int const splits = block_split ? kWorkers : cluster_splits;
  int const split = block_split ? slot_of_worker : int(blockIdx.x) % splits;
  int const worker = int(blockIdx.x) / cluster_splits, workers = int(gridDim.x) / cluster_splits;
  int const group_begin = split * groups / splits, group_end = (split + 1) * groups / splits;
  int const item_groups = group_end - group_begin;
  Out* out = static_cast<Out*>(p.out);
  cg::cluster_group cluster = cg::this_cluster();

  if (producer) {
    // No search for chunk indices past the most the rows can make (the last search of every worker, mostly).
    int64_t const chunk_bound = max_chunks(p.total_rows, p.shape.num_experts, kRows);
    ChunkCursor cursor;
    // A block's K slices take the block's items in the same order, as a one-worker block would.
    ItemDeal<kWorkers> const deal{worker, workers, block_split ? nullptr : &items_taken};
    for (int64_t index = deal.first();; index = deal.next(index)) {
      StagedItem item{{}, int(index % tiles)};
      bool const found =
          index / tiles < chunk_bound && find_chunk_in_warp<kRows>(p, index / tiles, cursor, &item.chunk);
      if (lane == 0) {
        if (found) {
          produce<S>(p, act_map, weight_map, weights_by_tensor_copy, item, group_begin, group_end, ring, staged);
        } else {
          announce_end<S>(ring, staged);
        }
      }
      __syncwarp();
      if (!found) {
        pdl_allow_next_grid();  // the worker's last item is staged: the next kernel may start launching
        return;
      }
      ring.uses += uint32_t(item_groups);
      if (cluster_splits > 1) {  // the consumers' two cluster barriers of this item
        cluster.sync();
        cluster.sync();
      }
    }
  }

  for (int item_count = 0;; ++item_count) {
    uint32_t const slot = ring.uses % S::kCount;
    barrier_wait(ring.full + 8 * slot, ring.uses / S::kCount % 2);
    StagedItem const item = staged[slot];
    if (item.chunk.rows == 0) return;
    Chunk const& chunk = item.chunk;
    float const* channel_scales =
        reinterpret_cast<float const*>(p.packed + p.sections.channel_scales) + size_t(chunk.expert) * n;
    int const stripe = item.tile * kTileStripes + warp;
    if (splits == 1) {
      with_row_class<kRows>(chunk.rows, [&](auto row_class) {
        constexpr int kMmaRows = decltype(row_class)::value;
        static_assert(kEarlyStripeScales<kMmaRows>, "the scales are loaded before the item's groups");
        StripeScales<kMmaRows> scales;
        if (stripe < stripes) scales = load_stripe_scales<kMmaRows>(channel_scales, p.token_scales, chunk, stripe);
        float acc[kMmaRows / 2];
        consume<S, kMmaRows>(ring, item_groups, acc);
        if (stripe < stripes) store_stripe<kMmaRows>(out, n, scales, chunk, stripe, acc);
      });
      ring.uses += uint32_t(item_groups);
      continue;
    }
    // K slices: all kRows rows, as their partial tiles hold.
    SliceEntryScales entry_scales;
    if (block_split) {
      entry_scales = load_slice_entry_scales<kConsumerThreads>(n, channel_scales, p.token_scales, chunk, item.tile,
                                                               split, splits);
    }
    float acc[kRows / 2];
    consume<S, kRows>(ring, item_groups, acc);
    ring.uses += uint32_t(item_groups);

    if (block_split) {
      constexpr int kTileFloats = kTileChannels * kRows;
      BlockSlices const slices{block_partials + item_count % 2 * kWorkers * kTileFloats, kTileFloats,
                               kWorkers * kConsumerThreads};
      store_slice_sum<kRows, kConsumerThreads>(out, n, channel_scales, p.token_scales, chunk, item.tile, split,
                                               splits, slices, acc, nullptr, &entry_scales);
    } else {
      store_slice_sum<kRows, kConsumerThreads>(out, n, channel_scales, p.token_scales, chunk, item.tile, split,
                                               splits, ClusterSlices{partial}, acc);
    }
  }
}

// kSplitKInBlock: the split-K configs, whose K slices are the workers of one block (split_k_in_block).
template <int kRows, bool kSplitKInBlock, class Out>
Status launch(GroupedGemmParams const& p) {
  using S = Stage<kRows, 1>;                    // one worker a block
  using Sd = Stage<kRows, kStreamBlocksPerSm>;  // the workers of one block an SM
  auto kernel = stream_gemm_kernel<kRows, 1, Out>;
  // One block an SM: its workers' rings, then, where they are K slices, two sets of their partial tiles.
  static_assert(!kSplitKInBlock || Sd::kSlicesInBlock, "the rings leave room for the partial tiles");
  constexpr size_t kSlicesBytes = kSplitKInBlock ? 2 * Sd::kPartialBytes : 0;
  constexpr size_t kSmBlockBytes =
      kSwizzleAtomBytes + size_t(kStreamBlocksPerSm) * (Sd::kCount * Sd::kBytes + kSlicesBytes);
  static_assert(kSmBlockBytes <= kSharedMemoryPerSm - 1024 - 2048, "the workers' rings fit one block of an SM");
  // One worker a block: its ring and its partial tile.
  constexpr size_t kBlockBytes = kSwizzleAtomBytes + size_t(S::kCount) * S::kBytes + S::kPartialBytes;
  // The split-K configs split K wherever clusters would, however many of them could stay resident.
  ClusterResidency const residency =
      kSplitKInBlock ? ClusterResidency{} : cluster_residency(kernel, kThreads, kBlockBytes, p.stream);
  StreamLaunchPlan plan = plan_worker_launch(p.shape, p.total_rows, p.expected_rows, p.sm_count, kRows, 1,
                                             kStreamBlocksPerSm, kBlockBytes, kStreamBlocksPerSm, kSmBlockBytes,
                                             residency);
  if constexpr (kSplitKInBlock) {
    plan = split_k_in_block(plan, p.shape.k / kGroupSize, kStreamBlocksPerSm, kSmBlockBytes);
  }
  // The weights' map only where the kernel copies through it (an unused map is neither encoded nor prefetched).
  bool const weights_by_tensor_copy = weights_in_one_tensor_copy(p.shape.k / kGroupSize);
  CUtensorMap weight_map{};
  if (weights_by_tensor_copy) {
    W4A8_RETURN_IF_ERROR(make_weight_tensor_map(p.packed + p.sections.weights, p.shape.num_experts, p.shape.n,
                                                p.shape.k, kTileStripes, &weight_map));
  }
  return enqueue_worker_launch(plan, kRows, stream_gemm_kernel<kRows, kStreamBlocksPerSm, Out>,
                               kStreamBlocksPerSm * kThreads, kernel, kThreads, p, weight_map, weights_by_tensor_copy);
}

}  // namespace

template <int kRows, bool kSplitKInBlock>
Status run_stream_gemm(GroupedGemmParams const& params, void*, size_t) {
  return params.out_type == OutputType::kBF16 ? launch<kRows, kSplitKInBlock, __nv_bfloat16>(params)
                                              : launch<kRows, kSplitKInBlock, __half>(params);
}

template Status run_stream_gemm<8, false>(GroupedGemmParams const&, void*, size_t);
template Status run_stream_gemm<16, false>(GroupedGemmParams const&, void*, size_t);
template Status run_stream_gemm<32, false>(GroupedGemmParams const&, void*, size_t);
template Status run_stream_gemm<8, true>(GroupedGemmParams const&, void*, size_t);

}  // namespace w4a8moe::gemm
