#include "gemm/registry.h"

#include "common/status_message.h"
#include "gemm/decode_gemm.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/stream_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::gemm {

namespace {

// The streaming kernels find their rows in expert_offsets themselves.
size_t no_workspace_bytes(int, int) { return 0; }

template <int kRows, int kConsumers>
Status run_exact(GroupedGemmParams const& params, void*, size_t) {
  return run_exact_stream_gemm<kRows, kConsumers>(params);
}

template <int kRows, int kConsumers>
Status run_mxfp4(GroupedGemmParams const& params, void*, size_t) {
  return run_mxfp4_stream_gemm<kRows, kConsumers>(params);
}

}  // namespace

std::string GemmConfig::name() const {
  if (schedule == Schedule::kStream) return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_stream";
  if (schedule == Schedule::kSplitKStream) {
    return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_splitk_stream";
  }
  if (schedule == Schedule::kExact) return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_exact";
  if (schedule == Schedule::kMxfp4) return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "_mxfp4";
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
    // The kernels of our own need no workspace.
    auto const add = [&](GemmConfig const& config, auto run) {
      entries.push_back({config, config.name(), &no_workspace_bytes, run});
    };
    // The decode kernel (not CUTLASS): 8 or 16 rows per chunk.
    add({16, 8, 1, 1, Schedule::kDecode}, &run_decode_gemm<1>);
    add({16, 16, 1, 1, Schedule::kDecode}, &run_decode_gemm<2>);
    // The wgmma streaming kernel, 8, 16 and 32 rows per chunk (the heuristic takes 16 from 6 rows an expert,
    // bench/NOTES.md §57, and 32 as §78 says), and with 8 its K slices in one block (§58).
    add({64, 8, 1, 1, Schedule::kStream}, &run_stream_gemm<8>);
    add({64, 16, 1, 1, Schedule::kStream}, &run_stream_gemm<16>);
    add({64, 32, 1, 1, Schedule::kStream}, &run_stream_gemm<32>);
    add({64, 8, 1, 1, Schedule::kSplitKStream}, &run_stream_gemm<8, true>);
    // The block layouts' kernel: channels x rows of an item, a consumer warpgroup per 64 channels.
    add({64, 8, 1, 1, Schedule::kExact}, &run_exact<8, 1>);
    add({64, 16, 1, 1, Schedule::kExact}, &run_exact<16, 1>);
    add({64, 32, 1, 1, Schedule::kExact}, &run_exact<32, 1>);
    add({64, 48, 1, 1, Schedule::kExact}, &run_exact<48, 1>);
    add({128, 64, 1, 1, Schedule::kExact}, &run_exact<64, 2>);
    add({128, 128, 1, 1, Schedule::kExact}, &run_exact<128, 2>);
    add({64, 8, 1, 1, Schedule::kMxfp4}, &run_mxfp4<8, 1>);
    add({64, 16, 1, 1, Schedule::kMxfp4}, &run_mxfp4<16, 1>);
    add({64, 32, 1, 1, Schedule::kMxfp4}, &run_mxfp4<32, 1>);
    add({64, 48, 1, 1, Schedule::kMxfp4}, &run_mxfp4<48, 1>);
    add({64, 64, 1, 1, Schedule::kMxfp4}, &run_mxfp4<64, 1>);
    add({128, 64, 1, 1, Schedule::kMxfp4}, &run_mxfp4<64, 2>);
    add({128, 128, 1, 1, Schedule::kMxfp4}, &run_mxfp4<128, 2>);
    add({128, 256, 1, 1, Schedule::kMxfp4}, &run_mxfp4<256, 2>);
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

Status validate_config_name(std::string const& name, char const* what, PackedLayout layout, char const* layout_what) {
  GemmKernelEntry const* entry = find_gemm_kernel(name);
  if (entry == nullptr) return not_supported(what, "='", name, "': no such config (see gemm_config_names())");
  if (entry->config.layout() != layout) {
    return invalid_argument(what, "='", name, "' reads the \"", packed_layout_name(entry->config.layout()),
                            "\" layout, not ", layout_what, "=\"", packed_layout_name(layout),
                            "\" (see gemm_config_names(layout))");
  }
  return Status::Ok();
}

}  // namespace w4a8moe::gemm
