// Per-expert argument arrays of the pointer-array grouped kernel, carved from the caller's workspace and filled on
// the device from expert_offsets, so a call never synchronises with the host and can be captured in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include <cutlass/util/packed_stride.hpp>

#include "gemm/grouped_params.h"
#include "gemm/w4a8_types.cuh"
#include "prepack/packed_format.h"

namespace w4a8moe::gemm {

struct ExpertArrays {
  UnderlyingProblemShape* problem_shapes;  // (N, rows of the expert, K): GEMM M is the channels
  ElementWeight const** weight;
  ElementAct const** act;
  StrideAct* stride_act;
  ElementGroupScale const** group_scale;
  StrideGroupScale* stride_group_scale;
  void** out;
  StrideOut* stride_out;
  float const** channel_scale;
  float const** token_scale;
  LayoutWeightReordered* weight_layout;  // lives in the packed weights, one per expert (CUTLASS wants non-const)
};

inline constexpr size_t kExpertArrayAlign = 128;

// Assigns each array its place after `base` (which may be 0 when only the size is wanted) and returns the bytes used.
// Host and device: the routing kernel of the MoE layer fills the arrays too.
CUTE_HOST_DEVICE size_t place_expert_arrays(ExpertArrays& arrays, uintptr_t base, int num_experts) {
  size_t offset = 0;
  auto place = [&](auto*& pointer) {
    using Element = cute::remove_reference_t<decltype(*pointer)>;
    pointer = reinterpret_cast<Element*>(base + offset);
    offset = prepack::align_up(offset + sizeof(Element) * size_t(num_experts), kExpertArrayAlign);
  };
  place(arrays.problem_shapes);
  place(arrays.weight);
  place(arrays.act);
  place(arrays.stride_act);
  place(arrays.group_scale);
  place(arrays.stride_group_scale);
  place(arrays.out);
  place(arrays.stride_out);
  place(arrays.channel_scale);
  place(arrays.token_scale);
  return offset;
}

// Expert e's entries in the arrays at the start of `workspace`, for its rows [begin, end); zero rows (nothing read
// or written) unless expert_rows_valid().
CUTE_DEVICE void fill_expert_arrays(GroupedGemmParams const& p, void* workspace, int e, int64_t begin, int64_t end) {
  constexpr int64_t kOutElementBytes = 2;  // bf16 and fp16
  int const n = p.shape.n, k = p.shape.k;
  ExpertArrays arrays{};
  place_expert_arrays(arrays, reinterpret_cast<uintptr_t>(workspace), p.shape.num_experts);
  bool const valid = expert_rows_valid(begin, end, p.total_rows);
  int64_t const rows = valid ? end - begin : 0;
  int64_t const first = valid ? begin : 0;
  // rows <= total_rows, which the host checked to fit in int32 (CUTLASS problem sizes are int).
  arrays.problem_shapes[e] = UnderlyingProblemShape(n, static_cast<int>(rows), k);
  arrays.weight[e] = reinterpret_cast<ElementWeight const*>(p.packed + p.sections.weights +
                                                            size_t(e) * p.sections.weight_bytes_per_expert);
  arrays.group_scale[e] = reinterpret_cast<ElementGroupScale const*>(
      p.packed + p.sections.group_scales + size_t(e) * p.sections.group_scale_bytes_per_expert);
  arrays.channel_scale[e] = reinterpret_cast<float const*>(p.packed + p.sections.channel_scales) + size_t(e) * n;
  arrays.act[e] = static_cast<ElementAct const*>(p.act) + first * k;
  arrays.token_scale[e] = p.token_scales + first;
  arrays.out[e] = static_cast<uint8_t*>(p.out) + first * n * kOutElementBytes;
  arrays.stride_act[e] = cutlass::make_cute_packed_stride(StrideAct{}, cute::make_shape(int(rows), k, 1));
  arrays.stride_group_scale[e] =
      cutlass::make_cute_packed_stride(StrideGroupScale{}, cute::make_shape(n, k / kGroupSize, 1));
  arrays.stride_out[e] = cutlass::make_cute_packed_stride(StrideOut{}, cute::make_shape(n, int(rows), 1));
}

ExpertArrays carve_expert_arrays(void* workspace, GroupedGemmParams const& params);

// Launches the kernel that fills the arrays from params.expert_offsets (fill_expert_arrays).
cudaError_t launch_build_expert_arrays(GroupedGemmParams const& params, void* workspace, cudaStream_t stream);

}  // namespace w4a8moe::gemm
