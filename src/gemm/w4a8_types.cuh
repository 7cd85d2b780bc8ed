// CUTLASS/CuTe types shared by the W4A8 grouped kernel, its device-side setup and the weight prepack.
//
// Swapped operands: the int4 weights are the GEMM's A operand (GEMM M = output channels), because
// wgmma takes only A from registers and the int4 -> fp8 conversion happens in registers. The fp8 tokens are the
// GEMM's B operand (GEMM N = tokens), and the output [tokens, channels] is the transposed GEMM D.
//
//   A  weights      int4  [N, K]   K-contiguous, then reordered by kReorderAtom (see prepack)
//   S  group scales 8 x e4m3 [K/128, N] per expert (N-contiguous), the lookup table of {-8s, ..., -1s}
//   B  activations  e4m3  [m, K]   K-contiguous
//   D  output       bf16/fp16 [m, N] N-contiguous
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/float8.h>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/integer_subbyte.h>
#include <cutlass/layout/matrix.h>
// NOTE: the mixed-input helpers need the collective builder's headers first (CUTLASS 4.2).
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/util/mixed_dtype_utils.hpp>

namespace w4a8moe::gemm {

using ElementWeight = cutlass::int4b_t;
using ElementAct = cutlass::float_e4m3_t;
using ElementGroupScale = cutlass::Array<cutlass::float_e4m3_t, 8>;  // lookup table of one (group, channel)

// Layout tags of the unswapped problem (tokens x K) * (K x channels); the builder receives their transposes.
using LayoutActTag = cutlass::layout::RowMajor;        // tokens [m, K]
using LayoutWeightTag = cutlass::layout::ColumnMajor;  // weights [N, K] seen as K x N column-major
using LayoutOutTag = cutlass::layout::RowMajor;        // out [m, N]

// A pointer tag makes the batch stride _0, which the pointer-array kernels require.
using StrideAct = cute::remove_pointer_t<cutlass::detail::TagToStrideA_t<LayoutActTag*>>;
using StrideWeight = cute::remove_pointer_t<cutlass::detail::TagToStrideB_t<LayoutWeightTag*>>;

// The reorder atom places the values one thread of an fp8 wgmma consumes next to each other, so the mainloop reads
// its int4 fragment with one wide load. It covers 16 rows x 32 K; see prepack for the exact constraint this implies.
using ReorderAtom = decltype(cutlass::compute_memory_reordering_atom<ElementAct>());
using LayoutWeightReordered =
    decltype(cute::tile_to_shape(ReorderAtom{}, cute::Layout<cute::Shape<int, int, cute::Int<1>>, StrideWeight>{}));

inline constexpr int kReorderAtomRows = decltype(cute::size<0>(ReorderAtom{}))::value;
inline constexpr int kReorderAtomK = decltype(cute::size<1>(ReorderAtom{}))::value;

// The weight layout of one expert, as the mainloop reads it. Host and device.
CUTE_HOST_DEVICE LayoutWeightReordered make_reordered_weight_layout(int n, int k) {
  return cute::tile_to_shape(ReorderAtom{}, cute::make_shape(n, k, cute::Int<1>{}));
}

using StrideGroupScale = cute::Stride<cute::Int<1>, int64_t, int64_t>;  // (N, K/128, L), N-contiguous
// GEMM D (channels, tokens), channels fastest; batch stride _0 as the pointer-array epilogue wants.
using StrideOut = cute::remove_pointer_t<cutlass::detail::TagToStrideC_t<cutlass::layout::ColumnMajor*>>;

using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // (GEMM M, N, K) per expert
using UnderlyingProblemShape = ProblemShape::UnderlyingProblemShape;

}  // namespace w4a8moe::gemm
