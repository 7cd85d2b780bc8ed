// W4A8 grouped GEMM over experts on Hopper (sm_90a):
//
//   out[m, n] = token_scales[m] * sc[e, n] * sum_k act[m, k] * e4m3(q[e, n, k] * t[e, n, k / 128])
//
// for every row m of expert e, i.e. expert_offsets[e] <= m < expert_offsets[e + 1], t the lookup tables' step
// (ScaleFormat in prepack.h: s / (sc / 8) / 8 from bf16 checkpoint scales, else the caller's e4m3 sg); fp32
// accumulation, bf16 or fp16 out. Weights come from prepack_weights(). In the exact-scale layout
// (PackedLayout::kExactScales) the product q * sg is not rounded: each 128-K group's sum is scaled by its sg (the bf16
// s) in fp32. In the MXFP4 layout
// (PackedLayout::kMxfp4) W is e2m1 * 2^(s - 127) with an e8m0 s per 32 inputs (sc = 1), each 32-K sum scaled in
// fp32. Per-expert problem sizes and pointers are built on the device from expert_offsets, so a call never waits for
// the host and can be captured in a CUDA graph; experts with no rows cost nothing. The caller owns all memory:
// nothing is allocated inside a call.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe {

struct GroupedGemmArgs {
  ExpertWeightShape shape;              // of the packed weights: E experts of [N, K]
  void const* packed_weights = nullptr;  // device, from prepack_weights() for this shape
  PackedLayout layout = PackedLayout::kLookupTable;  // the layout packed_weights was packed in

  int64_t total_rows = 0;               // rows of act/out; expert_offsets[E] must not exceed it
  // device, e4m3 [total_rows, padded_k(K)], rows grouped by expert, 16-byte aligned; columns K.. of a row must be
  // zero (the MoE layer's quantisation writes them so)
  void const* act = nullptr;
  float const* token_scales = nullptr;  // device, fp32 [total_rows]
  int64_t const* expert_offsets = nullptr;  // device, int64 [E + 1], non-decreasing, offsets[E] <= total_rows
  // kExactScales only: device, activation_group_sums_bytes(total_rows, K) bytes from compute_activation_group_sums()
  // on act with rows = total_rows (the rows set the sums' group stride), or the MoE layer's quantisation; 16-byte
  // aligned.
  float const* act_group_sums = nullptr;
  // Optional, PackedLayout::kMxfp4 only: device fp32 [E, N], expert e's bias added to each of its output rows
  // (gpt-oss's expert biases), 4-byte aligned.
  float const* bias = nullptr;
  void* out = nullptr;                  // device, [total_rows, N] of out_type, 16-byte aligned; rows outside
  OutputType out_type = OutputType::kBF16;  //   [offsets[0], offsets[E]) are not written

  void* workspace = nullptr;            // device, grouped_gemm_workspace_bytes(E) bytes, 256-byte aligned
  size_t workspace_bytes = 0;

  // Optional. A config name from gemm_config_names() forces that kernel; empty picks one by heuristic.
  std::string config;
  // Optional hints for the heuristic, which cannot see the device offsets: the largest number of rows any expert
  // holds (0: assume uniform routing), and a host copy of expert_offsets (E + 1 values), which is also validated.
  int64_t max_rows_per_expert_hint = 0;
  int64_t const* host_expert_offsets = nullptr;
  // Optional: the rows the experts are expected to hold in total, when fewer than total_rows (for example an
  // expert-parallel rank, which holds about total_rows * local / global experts). 0: total_rows.
  int64_t expected_rows_hint = 0;

  cudaStream_t stream = nullptr;
};

// Workspace bytes a call with num_experts experts needs on the current device (any config).
size_t grouped_gemm_workspace_bytes(int num_experts);

// The exact-scale layout's second input: per row m and 128-K group g, 2^-6 * sum_k act[m, 128 g + k] (fp32,
// group-major, rows padded to a multiple of 4). Bytes for `rows` rows of K inputs (padded_k(K) / 128 groups), and
// the kernel that computes them on `stream` (act as in GroupedGemmArgs).
size_t activation_group_sums_bytes(int64_t rows, int k);
Status compute_activation_group_sums(void const* act, int64_t rows, int k, float* sums, cudaStream_t stream);

// Enqueues the GEMM on args.stream. Returns an error, and launches nothing, if an argument breaks a rule.
Status grouped_gemm(GroupedGemmArgs const& args);

// Canonical names of the registered kernel configs, e.g. "128x16_1x1_coop" (GEMM M = channels x GEMM N = tokens,
// cluster, schedule).
std::vector<std::string> gemm_config_names(PackedLayout layout = PackedLayout::kLookupTable);

// The config the heuristic picks for these arguments (what grouped_gemm() runs when args.config is empty).
std::string select_gemm_config(GroupedGemmArgs const& args);

}  // namespace w4a8moe
