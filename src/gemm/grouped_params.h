// Validated arguments of one grouped GEMM call, as the launchers see them. No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "prepack/packed_format.h"
#include "w4a8moe/types.h"

namespace w4a8moe::gemm {

struct GroupedGemmParams {
  ExpertWeightShape shape;
  uint8_t const* packed = nullptr;
  prepack::PackedSections sections;
  int64_t total_rows = 0;
  int64_t expected_rows = 0;  // rows the experts are expected to hold (args.expected_rows_hint, else total_rows)
  void const* act = nullptr;
  float const* token_scales = nullptr;
  int64_t const* expert_offsets = nullptr;  // [E + 1]
  // Exact-scale layout only (exact_stream_gemm.h): 2^-6 sum_k act[m, k] over each 128-K group g at
  // [g * group_sums_stride(total_rows) + m].
  float const* group_sums = nullptr;
  void* out = nullptr;
  OutputType out_type = OutputType::kBF16;
  // The per-expert arrays are already in the workspace: a kernel that knew the final offsets filled them
  // (fill_expert_arrays in expert_arrays.cuh), as the MoE layer's one-block routing does.
  bool arrays_built = false;
  int sm_count = 0;
  int device_id = 0;
  cudaStream_t stream = nullptr;
  // Optional, MXFP4 layout only: fp32 [E, N], the expert's bias added to each of its output rows. (Last: the fields
  // before it keep their kernel-parameter offsets.)
  float const* bias = nullptr;
  // The expert offsets were written by a kernel that has ended when this one starts (the MoE layer's routing, two or
  // more launches before either GEMM; common/pdl.cuh): the decode kernel finds its first chunk and loads that chunk's
  // first weights and channel scales before its PDL wait, overlapping the previous kernel's tail.
  bool offsets_before_wait = false;
  // Where the routing may still run when this kernel starts (the decode kernel as GEMM1 after a permute kernel that
  // let it launch as it started): the word the permute kernel publishes the routing's end to, awaited before the
  // offsets are read (common/pdl.cuh's third exception). Null: the offsets are final when the kernel starts.
  uint32_t const* routing_end = nullptr;
};

// Bytes of the per-expert argument arrays (expert_arrays.cuh) at the start of the workspace.
size_t expert_arrays_bytes(int num_experts);

// Whether an expert's rows [begin, end) from the device offsets are usable: not negative, not decreasing, not past
// total_rows. The kernels give an expert that breaks this zero rows, so corrupt offsets cannot make them touch
// memory outside their buffers.
W4A8_HOST_DEVICE inline bool expert_rows_valid(int64_t begin, int64_t end, int64_t total_rows) {
  return begin >= 0 && end >= begin && end <= total_rows;
}

}  // namespace w4a8moe::gemm
