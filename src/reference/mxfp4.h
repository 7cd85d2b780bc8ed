// MXFP4 numerics on the host (OCP Microscaling formats v1.0): e2m1 codes with one e8m0 power-of-two scale per 32
// values, in gpt-oss's checkpoint byte order. The CPU side of gpt-oss's experts: checkpoint tests, and the fp32
// reference of the dequantised weights that MXFP4 kernels are held to (reference/gpt_oss.h).
#pragma once

#include <cstdint>
#include <vector>

namespace w4a8moe::reference {

inline constexpr int kMxfp4BlockSize = 32;                       // values per e8m0 scale
inline constexpr int kMxfp4BlockBytes = kMxfp4BlockSize / 2;     // two e2m1 codes a byte
inline constexpr int kE8m0Bias = 127;
inline constexpr uint8_t kE8m0Nan = 0xFF;

// The value of a 4-bit e2m1 code: sign bit 3, then {0, 0.5, 1, 1.5, 2, 3, 4, 6} (exponent bits 2..1, mantissa 0).
float e2m1_value(uint8_t code);

// 2^(bits - 127) for bits 0..254 (2^-127 .. 2^127, exact in double); NaN for 0xFF.
double e8m0_value(uint8_t bits);

// W [rows, k] (k a multiple of 32) from gpt-oss's MXFP4 arrays: blocks [rows, k/32, 16] bytes, byte j of block b
// holding the codes of k = 32 b + 2 j (low nibble) and 32 b + 2 j + 1 (high nibble); scales [rows, k/32] e8m0.
// W[r, c] = e2m1(code) * 2^(scale - 127), exact in float except where the scale is outside float's range (a
// scale below 2^-126 makes subnormals or zero, above 2^127 infinity) or NaN.
std::vector<float> dequantize_mxfp4(uint8_t const* blocks, uint8_t const* scales, int64_t rows, int64_t k);

// The inverse, for tests and synthetic checkpoints: per 32 values the OCP MX scale 2^(floor(log2 amax) - 2) (e2m1's
// largest exponent is 2), each value divided by it and rounded to the nearest e2m1 value (ties to the even code),
// magnitudes past 6 clamped to 6; an all-zero block gets scale 2^-127 and zero codes. Values exactly representable
// with the block's scale come back exactly. Non-finite inputs are the caller's to refuse.
void quantize_mxfp4(float const* w, int64_t rows, int64_t k, uint8_t* blocks, uint8_t* scales);

}  // namespace w4a8moe::reference
