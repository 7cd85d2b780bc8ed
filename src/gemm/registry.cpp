#include "gemm/registry.h"

#include "gemm/decode_gemm.h"

namespace w4a8moe::gemm {

std::string GemmConfig::name() const {
  return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_" + std::to_string(cluster_m) + "x" +
         std::to_string(cluster_n) + (schedule == Schedule::kCooperative ? "_coop" : schedule == Schedule::kPingpong ? "_pp" : "_decode");
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
    for (GemmConfig const config : {GemmConfig{16, 8, 1, 1, Schedule::kDecode}, GemmConfig{16, 16, 1, 1, Schedule::kDecode}}) {
      entries.push_back({config, config.name(), &decode_gemm_workspace_bytes,
                         config.tile_n == 8 ? &run_decode_gemm<1> : &run_decode_gemm<2>});
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
