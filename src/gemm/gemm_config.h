// Kernel configs of the grouped GEMM: one type, one canonical name, used by the registry, the heuristic, the
// override, logs and benchmark rows.
#pragma once

#include <string>

#include "w4a8moe/types.h"

namespace w4a8moe::gemm {

// kDecode and kStream are not CUTLASS: the streaming mma.sync kernel of decode_gemm.cu (tile_m 16 channels, tile_n 8
// or 16 rows) and the streaming wgmma kernel of stream_gemm.cu (tile_m 64, tile_n 8 to 64 rows; it splits K over a
// thread-block cluster it sizes per call, so its name carries no cluster); kSplitKStream the same kernel splitting K
// over the four workers of one block instead ("64x8_splitk_stream"). kExact: the exact-scale layout's kernel
// (block_stream_kernel.cuh; tile_m 64 or 128 channels, tile_n 8 to 128 rows), the only one that reads that layout;
// kMxfp4: the same kernel on the MXFP4 layout (tile_m 64, tile_n 8 to 32 rows).
enum class Schedule { kCooperative, kPingpong, kDecode, kStream, kSplitKStream, kExact, kMxfp4 };

struct GemmConfig {
  int tile_m = 0;     // GEMM M = output channels
  int tile_n = 0;     // GEMM N = tokens
  int cluster_m = 1;
  int cluster_n = 1;
  Schedule schedule = Schedule::kCooperative;

  // "128x16_1x1_coop", "128x64_2x1_pp", "16x8_1x1_decode", "64x8_stream", "64x8_splitk_stream", "128x64_exact",
  // "64x8_mxfp4"
  std::string name() const;
  PackedLayout layout() const {
    return schedule == Schedule::kExact   ? PackedLayout::kExactScales
           : schedule == Schedule::kMxfp4 ? PackedLayout::kMxfp4
                                          : PackedLayout::kLookupTable;
  }
  bool operator==(GemmConfig const& other) const {
    return tile_m == other.tile_m && tile_n == other.tile_n && cluster_m == other.cluster_m &&
           cluster_n == other.cluster_n && schedule == other.schedule;
  }
};

}  // namespace w4a8moe::gemm
