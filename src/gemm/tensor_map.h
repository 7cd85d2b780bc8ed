// TMA tensor maps of the activations and the packed weights, for kernels that load them with the bulk tensor copy
// engine.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// A map of the row-major byte matrix [rows, cols] at `base` (16-byte aligned, cols a multiple of 16) whose copies
// move boxes of box_rows x 128 bytes into shared memory in the 128-byte swizzle wgmma reads (K-major, rows 128
// bytes apart, 16-byte chunks XORed with the row within 8). Rows past `rows` arrive as zeros.
Status make_activation_tensor_map(void const* base, int64_t rows, int64_t cols, int box_rows, CUtensorMap* map);

// A map of the packed weights at `base` (the weights section: experts x K atoms x N/16 stripes x 256-byte reorder
// atoms, prepack/packed_format.h) whose copies move a box of `tile_stripes` stripes x the 4 K atoms of a 128-K group
// (one tile's group) into shared memory as [atom][stripe][256 bytes]; stripes past N arrive as zeros.
Status make_weight_tensor_map(void const* base, int num_experts, int64_t n, int64_t k, int tile_stripes,
                              CUtensorMap* map);

}  // namespace w4a8moe::gemm
