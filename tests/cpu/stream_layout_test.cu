// The streaming wgmma kernel's shared-memory activations and their descriptor, held against CuTe's canonical
// K-major layout with the 128-byte swizzle and its make_gmma_desc. Host code only (nvcc for the CuTe headers); no GPU.
// (CuTe cannot compute a shared-memory address on the host and prints an error for it, which the test captures; the
// start address is checked separately.)
#include <gtest/gtest.h>

#include <string>

#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

#include "gemm/stream_layout.h"

namespace w4a8moe::gemm {
namespace {

template <int kRows>
void expect_layout_and_descriptor_match_cute() {
  using namespace cute;
  auto const slot_layout = tile_to_shape(GMMA::Layout_K_SW128_Atom<float_e4m3_t>{}, Shape<Int<kRows>, _128>{});
  for (int row = 0; row < kRows; ++row) {
    for (int k = 0; k < 128; ++k) {
      ASSERT_EQ(uint32_t(slot_layout(row, k)), activation_slot_offset(row, k)) << "row " << row << " k " << k;
    }
  }
  alignas(1024) static float_e4m3_t storage[kRows * 128];
  auto const slot = make_tensor(make_smem_ptr(storage), slot_layout);
  for (int atom = 0; atom < 4; ++atom) {
    auto const atom_tensor = local_tile(slot, Shape<Int<kRows>, _32>{}, make_coord(0, atom));
    ::testing::internal::CaptureStdout();  // CuTe's host-side complaint about the shared address, kept off the log
    GmmaDescriptor const cute_desc = GMMA::make_gmma_desc<GMMA::Major::K>(atom_tensor);
    std::string const printed = ::testing::internal::GetCapturedStdout();
    EXPECT_TRUE(printed.empty() || printed.find("cast_smem_ptr_to_uint") != std::string::npos) << printed;
    GmmaDescriptor const ours(activation_descriptor(0, atom));
    EXPECT_EQ(int(ours.bitfield.layout_type_), int(cute_desc.bitfield.layout_type_));
    EXPECT_EQ(ours.bitfield.leading_byte_offset_, cute_desc.bitfield.leading_byte_offset_);
    if (kRows > 8) EXPECT_EQ(ours.bitfield.stride_byte_offset_, cute_desc.bitfield.stride_byte_offset_);  // else unused
    EXPECT_EQ(int(ours.bitfield.base_offset_), int(cute_desc.bitfield.base_offset_));
    // The atom starts where CuTe's tensor of it starts (its first element), in 16-byte units.
    EXPECT_EQ(uint32_t(ours.bitfield.start_address_) * 16,
              uint32_t(reinterpret_cast<uintptr_t>(raw_pointer_cast(atom_tensor.data())) -
                       reinterpret_cast<uintptr_t>(storage)));
  }
}

TEST(StreamLayout, SlotAndDescriptorMatchCuteSwizzledKMajorLayout) {
  expect_layout_and_descriptor_match_cute<8>();
  expect_layout_and_descriptor_match_cute<16>();
  expect_layout_and_descriptor_match_cute<32>();
  expect_layout_and_descriptor_match_cute<64>();
}

TEST(StreamLayout, DescriptorStartAddressCountsSixteenBytes) {
  cute::GmmaDescriptor const desc(activation_descriptor(0x1400, 1));
  EXPECT_EQ(desc.bitfield.start_address_, (0x1400 + 32) >> 4);
  EXPECT_LT((228u * 1024) >> 4, 1u << 14);  // every shared address fits the 14-bit field
}

}  // namespace
}  // namespace w4a8moe::gemm
