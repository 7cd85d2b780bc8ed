// Host-side conversions between fp32 and the 8/16-bit formats, written out independently of CUDA and CUTLASS so the
// CPU reference does not share code with the kernels it checks.
#pragma once

#include <cstdint>

namespace w4a8moe {

inline constexpr float kE4M3Max = 448.0f;

// fp32 -> e4m3 (the "fn" variant: no infinities, 0x7F/0xFF are NaN), round to nearest even, saturating finite
// values (and infinities) to +-448 as cvt.rn.satfinite does.
uint8_t float_to_e4m3(float value);
float e4m3_to_float(uint8_t bits);

// fp32 -> bf16, round to nearest even (NaN stays NaN).
uint16_t float_to_bf16(float value);
float bf16_to_float(uint16_t bits);

float fp16_to_float(uint16_t bits);
// fp32 -> fp16, round to nearest even, overflow to infinity.
uint16_t float_to_fp16(float value);

}  // namespace w4a8moe
