// Device-side random fills for benchmark inputs (contents only need to be realistic, not reproducible on the host).
#pragma once

#include <cstddef>
#include <cstdint>

namespace w4a8moe::bench {

void fill_random_bytes(void* data, size_t bytes, uint64_t seed);
// Random e4m3 codes without NaN: NaN inputs could change the tensor cores' speed.
void fill_random_bytes_no_fp8_nan(void* data, size_t bytes);
void fill_uniform_floats(float* data, size_t count, float low, float high, uint64_t seed);
void fill_uniform_bf16(void* data, size_t count, float low, float high, uint64_t seed);

}  // namespace w4a8moe::bench
