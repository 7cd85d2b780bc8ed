// How the layer timings leave the caches cold before each replay. L2 by reading 2x L2 (the default): clean lines, as
// a decode step's preceding kernels (attention reading the KV cache) mostly leave it. Or by writing (a memset of 2x
// L2, as torch benchmarks usually flush): L2 then holds up to its size of dirty lines, whose write-back the layer's
// first large reader pays (bench/NOTES.md §61: Mixtral-8x7B at 1 token 10 us). Either way each SM's instruction
// caches too, by a kernel of more straight-line code than they hold, as a model's other kernels leave them (§69: a
// data flush alone left the one-launch layer's code cached and timed it 7-9 us faster). Not at all ("none"): a
// diagnostic floor, not a decode step: the previous replay's weights, inputs and kernel code stay cached where they
// fit, so what remains is latency and issue, not the cold reads.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "w4a8moe/status.h"

namespace w4a8moe::tools {

enum class L2Flush { kWrite, kRead, kNone };

char const* l2_flush_name(L2Flush flush);
// "write", "read" or "none"; else an error naming arg_name and the names.
Status parse_l2_flush(char const* name, L2Flush* flush, char const* arg_name = "l2_flush");

// The flush buffer's size: `requested` bytes, at least twice the current device's L2 (0: twice).
size_t l2_flush_buffer_bytes(size_t requested);

// Flushes L2 with `bytes` of `buffer` (at least 2x L2), then the SMs' instruction caches; `round` varies the written
// value. kNone enqueues nothing.
cudaError_t flush_l2(L2Flush flush, void* buffer, size_t bytes, int round, cudaStream_t stream);

}  // namespace w4a8moe::tools
