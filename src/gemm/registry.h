// The table of registered grouped GEMM kernels, built from configs.def. No CUTLASS types.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "gemm/gemm_config.h"
#include "gemm/grouped_params.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

struct GemmKernelEntry {
  GemmConfig config;
  std::string name;
  // CUTLASS's own workspace for num_experts experts on a device with sm_count SMs (both output types).
  size_t (*cutlass_workspace_bytes)(int num_experts, int sm_count);
  // Fills the per-expert arrays at the start of `workspace` on the device (unless params.arrays_built), then
  // launches the kernel.
  Status (*run)(GroupedGemmParams const& params, void* workspace, size_t workspace_bytes);
};

std::vector<GemmKernelEntry> const& gemm_registry();

// nullptr if no registered config has this name.
GemmKernelEntry const* find_gemm_kernel(std::string const& name);

// A config a caller names (argument `what`) for weights of `layout` (argument `layout_what`): kNotSupported if no
// config has the name, kInvalidArgument if it reads another layout.
Status validate_config_name(std::string const& name, char const* what, PackedLayout layout, char const* layout_what);

// Per-config entry points, defined in the generated instances/ translation units.
#define W4A8_GEMM_FN(tm, tn, cm, cn, sched, what) w4a8_gemm_##tm##x##tn##_##cm##x##cn##_##sched##_##what
#define W4A8_GEMM_CONFIG(tm, tn, cm, cn, sched)                                              \
  size_t W4A8_GEMM_FN(tm, tn, cm, cn, sched, workspace)(int num_experts, int sm_count);      \
  Status W4A8_GEMM_FN(tm, tn, cm, cn, sched, run)(GroupedGemmParams const& params, void* workspace, \
                                                  size_t workspace_bytes);
#include "w4a8_gemm_configs.def"  // configs.def as filtered by CMake (W4A8_GEMM_CONFIGS)
#undef W4A8_GEMM_CONFIG

}  // namespace w4a8moe::gemm
