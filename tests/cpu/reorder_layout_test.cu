// The CPU reference's reorder formula must be the CuTe layout the kernel reads, element for element. Host code only
// (compiled by nvcc for the CuTe headers); runs without a GPU.
#include <gtest/gtest.h>

#include "gemm/w4a8_types.cuh"
#include "prepack/packed_format.h"

namespace w4a8moe {
namespace {

TEST(ReorderLayout, FormulaMatchesCuteLayout) {
  for (auto [n, k] : {std::pair{16, 128}, {16, 384}, {48, 384}, {128, 256}, {2048, 768}, {4096, 1536}}) {
    auto const layout = gemm::make_reordered_weight_layout(n, k);
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < k; ++c) {
        ASSERT_EQ(int64_t(layout(r, c, 0)), prepack::reorder_atom_offset(r, c, n)) << "N=" << n << " K=" << k
                                                                                  << " at (" << r << "," << c << ")";
      }
    }
  }
}

TEST(ReorderLayout, LayoutFitsItsSlot) {
  EXPECT_EQ(sizeof(gemm::LayoutWeightReordered), prepack::kLayoutSlotBytes);  // read as an array by the kernel
  EXPECT_EQ(gemm::kReorderAtomRows, 16);
  EXPECT_EQ(gemm::kReorderAtomK, 32);
}

}  // namespace
}  // namespace w4a8moe
