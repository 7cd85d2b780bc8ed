// Times the MoE layer the way an engine runs it: a CUDA graph of moe_forward(), replayed. The total comes from events
// around each replay of a plain graph; the per-stage times from a second graph with events between the stages. The L2
// is flushed before every replay, outside the timed events (l2_flush.h: by writing unless told otherwise).
#pragma once

#include <cuda_runtime.h>

#include <functional>
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

// How every replay is timed (time_layer, and bench/launch_floor.cu's near-empty graphs): `exec` replayed replays + 3
// times on `stream`, the first 3 to warm up, each after flush_l2(flush, buffer, bytes) and between the events start
// and stop; after each of the other `replays`, on_replay(start, stop) reads what it times. The first error stops it.
cudaError_t replay_flushed(cudaGraphExec_t exec, int replays, L2Flush flush, void* buffer, size_t bytes,
                           cudaStream_t stream,
                           std::function<cudaError_t(cudaEvent_t start, cudaEvent_t stop)> const& on_replay);

// The middle value (the upper one of an even count); 0 for none.
double median(std::vector<double> values);

// args.stream must be a stream other than the legacy default stream (graph capture). flush_bytes: the buffer the
// flush reads or writes, at least twice the L2 (0: twice). Returns an error status if a call fails; a CUDA error is
// reported with its name.
Status time_layer(MoeForwardArgs args, int replays, LayerTiming* timing, L2Flush flush = L2Flush::kRead,
                  size_t flush_bytes = 0);

}  // namespace w4a8moe::tools
