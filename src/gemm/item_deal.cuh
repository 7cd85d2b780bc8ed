// How the workers of the streaming kernels (stream_gemm.cu, block_stream_kernel.cuh) take the call's items, and where
// a worker's threads are in its block. Two ways (StreamLaunchPlan::workers_per_block says which):
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
  int* taken = nullptr;             // several: the block's count of items taken, in shared memory, 0 at the start

  __device__ __forceinline__ int64_t first() const { return kWorkers == 1 ? worker : take(); }
  __device__ __forceinline__ int64_t next(int64_t index) const {
    return kWorkers == 1 ? index + workers : take();
  }

 private:
  __device__ __forceinline__ int64_t take() const {
    int count = 0;
    if (threadIdx.x % 32 == 0) count = atomicAdd(taken, 1);
    count = __shfl_sync(0xFFFFFFFFu, count, 0);
    return int64_t(blockIdx.x) + int64_t(count) * int64_t(gridDim.x);
  }
};

}  // namespace w4a8moe::gemm
