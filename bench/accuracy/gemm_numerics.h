// The grouped GEMM's own numerics: one projection's experts on realistic data, and CPU computations of the same
// product with different weight representations and summation orders, to set beside the kernel's output.
//
// Every path uses the same per-token fp8 activations a * st. The target is the exact result of the checkpoint's
// weights, W = q * s_bf16 (float64), so activation quantisation is left out and what remains is the kernel's own
// error: the lookup tables' weights e4m3(q * s / sc) * sc and the summation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/quantized_experts.h"

namespace w4a8moe::accuracy {

struct GemmCase {
  std::string name;
  int n = 0;  // output channels
  int k = 0;
  bool down_projection = false;  // inputs are SiLU(gate) * up states rather than hidden states
};

struct GemmProblem {
  GemmCase gemm_case;
  reference::QuantizedExperts experts;  // RTN q and the split scales
  std::vector<uint16_t> bf16_scales;    // [E, N, K/128], the RTN scales themselves
  std::vector<int64_t> offsets;         // [E + 1], rows grouped by expert
  std::vector<uint8_t> act;             // e4m3 bits [rows, K]
  std::vector<float> token_scales;      // [rows]

  int64_t rows() const { return offsets.back(); }
};

GemmProblem make_gemm_problem(GemmCase const& gemm_case, int experts, int rows_per_expert, uint64_t seed);

// Outputs [rows, N], float64 (the modelled kernels' values are bf16, as the kernel writes them).

// st * sum_k a q s_bf16, exact: the target.
std::vector<double> exact_bf16_weight_output(GemmProblem const& problem);
// st * sc * sum_k a q sg, exact, sg = e4m3(s / sc): an e4m3 group scale's rounding alone.
std::vector<double> split_scale_exact_qsg_output(GemmProblem const& problem);
// st * sc * sum_k a e4m3(q s / sc), exact: the project's float64 reference (reference::grouped_gemm), i.e. the
// kernel's math without its accumulation error.
std::vector<double> fp64_reference_output(GemmProblem const& problem);
// st * sc * sum_k a e4m3(q sg), exact: the tables before bench/NOTES.md §51, rounded twice (sg = e4m3(s / sc)).
std::vector<double> double_rounding_lut_output(GemmProblem const& problem);
// The kernel as modelled: e4m3(q s / sc) products in one tensor-core accumulator, `block` products per step, then
// st * sc in fp32 and bf16 out.
std::vector<double> modelled_kernel_output(GemmProblem const& problem, int block);
// The alternative path: a * q (q exact in e4m3) summed per 128-wide chunk (tensor-core model in steps of `block`,
// or exactly with block == 0), times s_bf16 into an fp32 accumulator, then st in fp32 and bf16 out.
std::vector<double> modelled_chunked_output(GemmProblem const& problem, int block);

}  // namespace w4a8moe::accuracy
