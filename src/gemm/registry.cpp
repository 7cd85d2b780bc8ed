#include "gemm/registry.h"

#include "gemm/decode_gemm.h"

namespace w4a8moe::gemm {

std::string GemmConfig::name() const {
  char const* const suffix = schedule == Schedule::kCooperative ? "_coop"
                             : schedule == Schedule::kPingpong  ? "_pp"
                                                                : "_decode";
  return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_" + std::to_string(cluster_m) + "x" +
         std::to_string(cluster_n) + suffix;
}

std::vector<GemmKernelEntry> const& gemm_registry() {
  static std::vector<GemmKernelEntry> const registry = [] {
    std::vector<GemmKernelEntry> entries;
#define W4A8_GEMM_CONFIG(tm, tn, cm, cn, sched)                                                     \
  {                                                                                                 \
    GemmConfig const config{tm, tn, cm, cn, Schedule::k##sched};                                    \
    entries.push_back({config, config.name(), &W4A8_GEMM_FN(tm, tn, cm, cn, sched, workspace),      \
                       &W4A8_GEMM_FN(tm, tn, cm, cn, sched, run)});                                 \
  }
#include "w4a8_gemm_configs.def"  // configs.def as filtered by CMake (W4A8_GEMM_CONFIGS)
#undef W4A8_GEMM_CONFIG
    // The decode kernel (not CUTLASS): 8 or 16 rows per chunk.
    for (int rows : {8, 16}) {
      GemmConfig const config{16, rows, 1, 1, Schedule::kDecode};
      entries.push_back({config, config.name(), &decode_gemm_workspace_bytes,
                         rows == 8 ? &run_decode_gemm<1> : &run_decode_gemm<2>});
    }
    return entries;
  }();
  return registry;
}

GemmKernelEntry const* find_gemm_kernel(std::string const& name) {
  for (auto const& entry : gemm_registry()) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace w4a8moe::gemm
