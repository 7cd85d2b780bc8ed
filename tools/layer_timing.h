// Times the MoE layer the way an engine runs it: one CUDA graph of moe_forward() with events between the stages,
// replayed; the per-stage times come from inside the graph, the total from events around each replay.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

struct LayerTiming {
  std::vector<double> stage_us;  // [kMoeStageCount] medians
  double total_us = 0;           // median per replay, graph launch included
  double outside_gemms = 0;      // share of the stages' time outside GEMM1 and GEMM2
  size_t graph_nodes = 0;
};

// args.stream must be a stream other than the legacy default stream (graph capture). Returns an error status if
// a call fails; a CUDA error is reported with its name.
Status time_layer(MoeForwardArgs args, int replays, LayerTiming* timing);

}  // namespace w4a8moe::tools
