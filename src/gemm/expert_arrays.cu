#include "gemm/expert_arrays.cuh"

#include <cutlass/util/packed_stride.hpp>

#include "common/pdl.cuh"
#include "prepack/packed_format.h"

namespace w4a8moe::gemm {
namespace {

constexpr size_t kArrayAlign = 128;

// Assigns each array its place after `base` (which may be 0 when only the size is wanted) and returns the bytes used.
size_t place_arrays(ExpertArrays& arrays, uintptr_t base, int num_experts) {
  size_t offset = 0;
  auto place = [&](auto*& pointer) {
    using Element = std::remove_reference_t<decltype(*pointer)>;
    pointer = reinterpret_cast<Element*>(base + offset);
    offset = prepack::align_up(offset + sizeof(Element) * size_t(num_experts), kArrayAlign);
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

__global__ void build_expert_arrays(ExpertArrays arrays, int num_experts, int n, int k, int64_t total_rows,
                                    int64_t const* __restrict__ offsets, uint8_t const* packed,
                                    prepack::PackedSections sections, ElementAct const* act,
                                    float const* token_scales, uint8_t* out) {
  constexpr int64_t kOutElementBytes = 2;  // bf16 and fp16
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < num_experts; e += gridDim.x * blockDim.x) {
    int64_t const begin = offsets[e];
    int64_t const end = offsets[e + 1];
    bool const valid = begin >= 0 && end >= begin && end <= total_rows;
    int64_t const rows = valid ? end - begin : 0;
    int64_t const first = valid ? begin : 0;
    // rows <= total_rows, which the host checked to fit in int32 (CUTLASS problem sizes are int).
    arrays.problem_shapes[e] = UnderlyingProblemShape(n, static_cast<int>(rows), k);
    arrays.weight[e] = reinterpret_cast<ElementWeight const*>(packed + sections.weights +
                                                              size_t(e) * sections.weight_bytes_per_expert);
    arrays.group_scale[e] = reinterpret_cast<ElementGroupScale const*>(
        packed + sections.group_scales + size_t(e) * sections.group_scale_bytes_per_expert);
    arrays.channel_scale[e] =
        reinterpret_cast<float const*>(packed + sections.channel_scales) + size_t(e) * size_t(n);
    arrays.act[e] = act + first * k;
    arrays.token_scale[e] = token_scales + first;
    arrays.out[e] = out + first * n * kOutElementBytes;
    arrays.stride_act[e] = cutlass::make_cute_packed_stride(StrideAct{}, cute::make_shape(int(rows), k, 1));
    arrays.stride_group_scale[e] =
        cutlass::make_cute_packed_stride(StrideGroupScale{}, cute::make_shape(n, k / kGroupSize, 1));
    arrays.stride_out[e] = cutlass::make_cute_packed_stride(StrideOut{}, cute::make_shape(n, int(rows), 1));
  }
}

}  // namespace

size_t expert_arrays_bytes(int num_experts) {
  ExpertArrays arrays{};
  return place_arrays(arrays, 0, num_experts);
}

ExpertArrays carve_expert_arrays(void* workspace, GroupedGemmParams const& params) {
  ExpertArrays arrays{};
  place_arrays(arrays, reinterpret_cast<uintptr_t>(workspace), params.shape.num_experts);
  arrays.weight_layout =
      reinterpret_cast<LayoutWeightReordered*>(const_cast<uint8_t*>(params.packed) + params.sections.layouts);
  return arrays;
}

cudaError_t launch_build_expert_arrays(GroupedGemmParams const& params, ExpertArrays const& arrays,
                                       cudaStream_t stream) {
  constexpr int kThreads = 128;
  int const blocks = (params.shape.num_experts + kThreads - 1) / kThreads;
  return launch_with_pdl(build_expert_arrays, blocks, kThreads, 0, stream, arrays, params.shape.num_experts,
                         params.shape.n, params.shape.k, params.total_rows, params.expert_offsets, params.packed,
                         params.sections, static_cast<ElementAct const*>(params.act), params.token_scales,
                         static_cast<uint8_t*>(params.out));
}

}  // namespace w4a8moe::gemm
