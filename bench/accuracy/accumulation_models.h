// CPU models of how the GPU sums fp8 products, for the kernel part of the report.
//
// Hopper's fp8 tensor cores (wgmma, e4m3 inputs, fp32 accumulator) are modelled as public probes of the H100
// describe them: one instruction step adds a block of exact products and the running accumulator in a multi-term
// adder that aligns every addend to the largest one's exponent, keeps 13 fraction bits below it and truncates the
// bits shifted out (round toward zero); the sum is truncated to the same width. This is a model, not the hardware:
// the report checks it against the kernel's own output before using it.
//
// The kernel (CUTLASS's mixed-input mainloop) keeps one such accumulator over all of K: "fast accumulation".
// The alternative (TensorRT-LLM's fork of the mainloop) converts int4 to e4m3 exactly, starts a fresh accumulator for
// each 128-wide K chunk, then multiplies the chunk's sum by the group scale and adds it to an fp32 accumulator
// (one fp32 FMA per chunk).
#pragma once

#include <cstdint>

namespace w4a8moe::accuracy {

inline constexpr int kTensorCoreFractionBits = 13;

// accumulator + sum(products[0, count)) through the modelled tensor-core adder.
float tensor_core_add(float accumulator, float const* products, int count);

// sum_k products[k] with one modelled tensor-core accumulator, `block` products per step (the current kernel).
float fast_accumulation_sum(float const* products, int64_t k, int block);

// sum_g chunk_sum(g) * group_scales[g] with fp32 FMAs over chunks of `chunk` products (the alternative path). Each
// chunk is summed by the tensor-core model in steps of `block` products, or, with block == 0, exactly and rounded
// once to fp32.
float chunked_scaled_sum(float const* products, float const* group_scales, int64_t k, int chunk, int block);

}  // namespace w4a8moe::accuracy
