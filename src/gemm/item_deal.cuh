// How the workers of the streaming kernels (stream_gemm.cu, block_stream_kernel.cuh) take the call's items, where a
// worker's threads are in its block, and how its ring of stages is set up. Two ways to take the items
// (StreamLaunchPlan::workers_per_block says which):
//  - one worker a block (or a thread-block cluster of K slices): worker w takes the items w, w + workers, ...;
//  - several workers in one block of one SM: the call's items are dealt to the blocks, b, b + blocks, ..., so that
//    every SM gets the same count within one, and the block's workers take them in turn from a count in shared
//    memory as each gets to its next item. The block scheduler fills an SM to its slots before the next, so one
//    worker a block leaves the second wave of long items on part of the SMs (bench/NOTES.md §43); dealt per SM, an
//    SM whose items are done early is the exception instead. Each item is still one worker's: the results are the
//    same bits either way.
// Thread layout of a block of kWorkers workers: the consumer threads of worker w at [w, w + 1) x kConsumerThreads
// (warpgroups stay aligned to four warps, as wgmma needs), then one producer warp a worker.
#pragma once

#include <cstdint>

#include "gemm/async_copy.cuh"
#include "gemm/weight_stream.cuh"

namespace w4a8moe::gemm {

template <int kWorkers, int kConsumerThreads>
struct BlockWorkers {
  static constexpr int kProducerThreads = kWorkers * kConsumerThreads;  // the first producer thread

  __device__ __forceinline__ static bool producer() { return int(threadIdx.x) >= kProducerThreads; }
  // The worker this thread belongs to (0 where the block is one worker).
  __device__ __forceinline__ static int worker() {
    if constexpr (kWorkers == 1) return 0;
    return producer() ? (int(threadIdx.x) - kProducerThreads) / 32 : int(threadIdx.x) / kConsumerThreads;
  }
};

// The items of one producer warp, in increasing order (find_chunk_in_warp's cursor needs that). Every lane of the
// warp calls first() and next() and gets the same index.
template <int kWorkers>
struct ItemDeal {
  int64_t worker = 0, workers = 1;  // one worker a block: this one, and how many the grid has
  // Several: the block's count of items taken, in shared memory, 0 at the start; null where the block's workers all
  // take the block's items (stream_gemm.cu's K slices in a block), dealt as to one worker a block.
  int* taken = nullptr;

  __device__ __forceinline__ int64_t first() const { return dealt_per_sm() ? take() : worker; }
  __device__ __forceinline__ int64_t next(int64_t index) const {
    return dealt_per_sm() ? take() : index + workers;
  }

 private:
  __device__ __forceinline__ bool dealt_per_sm() const { return kWorkers > 1 && taken != nullptr; }
  __device__ __forceinline__ int64_t take() const {
    int count = 0;
    if (threadIdx.x % 32 == 0) count = atomicAdd(taken, 1);
    count = __shfl_sync(0xFFFFFFFFu, count, 0);
    return int64_t(blockIdx.x) + int64_t(count) * int64_t(gridDim.x);
  }
};

// A worker's ring of shared-memory stages: use u goes to stage u % kCount and waits for parity (u / kCount) % 2 of its
// barriers.
struct Ring {
  uint32_t stages;  // 1024-byte aligned
  uint32_t full;    // per stage: the copies landed (the producer's arrivals and their bytes)
  uint32_t empty;   // per stage: the consumer warps are done with it
  uint32_t uses;    // stages used before the current item (the same in every thread of the worker)
};

// Beside each stage: the item its group belongs to, written by the producer before the stage's arrival and read by
// the consumers after its phase completed. rows == 0: the worker has no more items.
struct StagedItem {
  Chunk chunk;
  int tile;
};

// A block's workers keep their rings' barriers in static shared memory, barriers[w] = worker w's full barriers, then
// its empty ones. Thread 0 initialises them, and the block's count of items taken (ItemDeal::taken), before the
// block's first __syncthreads().
template <int kWorkers, int kBarriers>
__device__ __forceinline__ void init_worker_rings(uint64_t (&barriers)[kWorkers][kBarriers], uint32_t full_arrivals,
                                                  uint32_t empty_arrivals, int& items_taken) {
  constexpr int kCount = kBarriers / 2;
  for (int w = 0; w < kWorkers; ++w) {
    for (int s = 0; s < kCount; ++s) {
      barrier_init(shared_address(barriers[w]) + 8 * s, full_arrivals);
      barrier_init(shared_address(barriers[w] + kCount) + 8 * s, empty_arrivals);
    }
  }
  items_taken = 0;
  barrier_init_fence();
}

// Worker w's ring: its stages are the w-th kCount of stage_bytes each from `stages` (1024-byte aligned).
template <int kWorkers, int kBarriers>
__device__ __forceinline__ Ring worker_ring(uint64_t (&barriers)[kWorkers][kBarriers], int w, uint32_t stages,
                                            uint32_t stage_bytes) {
  constexpr int kCount = kBarriers / 2;
  return Ring{stages + uint32_t(w) * kCount * stage_bytes, shared_address(barriers[w]),
              shared_address(barriers[w] + kCount), 0};
}

}  // namespace w4a8moe::gemm
