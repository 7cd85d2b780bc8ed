// Validated arguments of one grouped GEMM call, as the launchers see them. No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "prepack/packed_format.h"
#include "w4a8moe/types.h"

namespace w4a8moe::gemm {

struct GroupedGemmParams {
  ExpertWeightShape shape;
  uint8_t const* packed = nullptr;
  prepack::PackedSections sections;
  int64_t total_rows = 0;
  void const* act = nullptr;
  float const* token_scales = nullptr;
  int64_t const* expert_offsets = nullptr;  // [E + 1]
  void* out = nullptr;
  OutputType out_type = OutputType::kBF16;
  bool arrays_built = false;  // the per-expert arrays are already in the workspace (see ExpertArraysSource)
  int sm_count = 0;
  int device_id = 0;
  cudaStream_t stream = nullptr;
};

// Bytes of the per-expert argument arrays (expert_arrays.cuh) at the start of the workspace.
size_t expert_arrays_bytes(int num_experts);

// What the per-expert arrays of one call are built from: its workspace (the arrays sit at its start) and its
// arguments. A kernel that knows the expert offsets can fill them itself (expert_arrays.cuh: fill_expert_arrays), as
// the MoE layer's one-block routing does, and the call then skips its own build launch (arrays_built).
struct ExpertArraysSource {
  void* workspace = nullptr;
  int num_experts = 0, n = 0, k = 0;
  int64_t total_rows = 0;
  uint8_t const* packed = nullptr;
  prepack::PackedSections sections;
  void const* act = nullptr;
  float const* token_scales = nullptr;
  void* out = nullptr;
};

ExpertArraysSource expert_arrays_source(GroupedGemmParams const& params, void* workspace);

}  // namespace w4a8moe::gemm
