// TMA tensor maps of the activations, for kernels that load them with the bulk tensor copy engine.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// A map of the row-major byte matrix [rows, cols] at `base` (16-byte aligned, cols a multiple of 16) whose copies
// move boxes of box_rows x 128 bytes into shared memory in the 128-byte swizzle wgmma reads (K-major, rows 128
// bytes apart, 16-byte chunks XORed with the row within 8). Rows past `rows` arrive as zeros.
Status make_activation_tensor_map(void const* base, int64_t rows, int64_t cols, int box_rows, CUtensorMap* map);

}  // namespace w4a8moe::gemm
