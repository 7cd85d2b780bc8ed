// Times the MoE layer the way an engine runs it: a CUDA graph of moe_forward(), replayed. The total comes from events
// around each replay of a plain graph; the per-stage times from a second graph with events between the stages. The L2
// is flushed before every replay, outside the timed events (l2_flush.h: by writing unless told otherwise).
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "l2_flush.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

struct LayerTiming {
  std::vector<double> stage_us;  // [kMoeStageCount] medians
  double total_us = 0;           // median per replay, graph launch included
  double outside_gemms = 0;      // share of the stages' time outside GEMM1 and GEMM2
  size_t graph_nodes = 0;        // of the plain graph: the layer's launches and memsets
};

// args.stream must be a stream other than the legacy default stream (graph capture). flush_bytes: the buffer the
// flush reads or writes, at least twice the L2 (0: twice). Returns an error status if a call fails; a CUDA error is
// reported with its name.
Status time_layer(MoeForwardArgs args, int replays, LayerTiming* timing, L2Flush flush = L2Flush::kRead,
                  size_t flush_bytes = 0);

}  // namespace w4a8moe::tools
