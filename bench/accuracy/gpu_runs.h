// The library on device 0, through its public API only (prepack_weights, grouped_gemm, moe_forward). Each call
// throws std::runtime_error naming the step that failed.
#pragma once

#include <string>
#include <vector>

#include "gemm_numerics.h"
#include "layer_numerics.h"

namespace w4a8moe::accuracy {

// The device's name, e.g. "NVIDIA H100 80GB HBM3"; throws unless device 0 is a Hopper GPU.
std::string hopper_device_name();

struct KernelOutput {
  std::string config;
  std::vector<float> out;  // [rows, N], the bf16 output as floats
};

// The grouped GEMM on the problem once per registered config, the heuristic's pick first.
std::vector<KernelOutput> run_grouped_gemm_every_config(GemmProblem const& problem);

// moe_forward on the problem's hidden states with its top-k as precomputed routing: [T, H], the bf16 output.
std::vector<float> run_moe_forward(LayerProblem const& problem);

}  // namespace w4a8moe::accuracy
