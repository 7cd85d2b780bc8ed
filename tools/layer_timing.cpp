#include "layer_timing.h"

#include <algorithm>
#include <string>

namespace w4a8moe::tools {
namespace {

Status cuda_error(cudaError_t error, char const* what) {
  return Status(StatusCode::kCudaError, std::string(what) + ": " + cudaGetErrorName(error));
}

}  // namespace

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

cudaError_t replay_flushed(cudaGraphExec_t exec, int replays, L2Flush flush, void* buffer, size_t bytes,
                           cudaStream_t stream,
                           std::function<cudaError_t(cudaEvent_t start, cudaEvent_t stop)> const& on_replay) {
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaError_t error = cudaEventCreate(&start);
  if (error == cudaSuccess) error = cudaEventCreate(&stop);
  for (int i = 0; i < replays + 3 && error == cudaSuccess; ++i) {
    if ((error = flush_l2(flush, buffer, bytes, i, stream)) != cudaSuccess ||
        (error = cudaEventRecord(start, stream)) != cudaSuccess ||
        (error = cudaGraphLaunch(exec, stream)) != cudaSuccess ||
        (error = cudaEventRecord(stop, stream)) != cudaSuccess || (error = cudaEventSynchronize(stop)) != cudaSuccess) {
      break;
    }
    if (i >= 3) error = on_replay(start, stop);  // after 3 warm-up replays
  }
  if (start != nullptr) cudaEventDestroy(start);
  if (stop != nullptr) cudaEventDestroy(stop);
  return error;
}

Status time_layer(MoeForwardArgs args, int replays, LayerTiming* timing, L2Flush l2_flush, size_t flush_bytes) {
  // Every replay starts with a cold L2, as a decode step does after the rest of the model's layers: the weights of
  // a small batch's experts (Qwen3-30B-A3B at 1 token: 19 MB) would otherwise stay in L2 between replays. Unless
  // told not to flush (L2Flush::kNone, the warm floor), which needs no buffer.
  flush_bytes = l2_flush_buffer_bytes(flush_bytes);
  void* flush = nullptr;
  if (l2_flush != L2Flush::kNone) {
    if (cudaError_t const e = cudaMalloc(&flush, flush_bytes); e != cudaSuccess) {
      return cuda_error(e, "L2 flush buffer");
    }
  }
  std::vector<cudaEvent_t> events(kMoeStageCount + 1);
  for (auto& e : events) cudaEventCreate(&e);
  auto cleanup = [&] {
    for (auto& e : events) cudaEventDestroy(e);
    cudaFree(flush);
  };
  Status status = moe_forward(args);  // warm-up, outside the graph
  if (!status.ok()) return cleanup(), status;
  // Two graphs: without the stage events for the total (each event node costs a little), with them for the stages.
  std::vector<std::vector<double>> stage(kMoeStageCount);
  std::vector<double> total;
  cudaError_t error = cudaSuccess;
  for (bool with_events : {false, true}) {
    args.stage_events = with_events ? events.data() : nullptr;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    if ((error = cudaStreamBeginCapture(args.stream, cudaStreamCaptureModeThreadLocal)) != cudaSuccess) break;
    status = moe_forward(args);
    error = cudaStreamEndCapture(args.stream, &graph);
    if (!status.ok()) return cleanup(), status;
    if (error != cudaSuccess) break;
    if ((error = cudaGraphInstantiate(&exec, graph, 0)) != cudaSuccess) {
      cudaGraphDestroy(graph);
      break;
    }
    if (!with_events) cudaGraphGetNodes(graph, nullptr, &timing->graph_nodes);
    // After each replay: the plain graph's total, or the stages between the other graph's event nodes.
    auto const read_replay = [&](cudaEvent_t start, cudaEvent_t stop) {
      float ms = 0;
      cudaError_t e = cudaSuccess;
      if (!with_events) {
        if ((e = cudaEventElapsedTime(&ms, start, stop)) == cudaSuccess) total.push_back(1e3 * ms);
        return e;
      }
      for (int st = 0; st < kMoeStageCount && e == cudaSuccess; ++st) {
        e = cudaEventElapsedTime(&ms, events[st], events[st + 1]);
        stage[st].push_back(1e3 * ms);
      }
      return e;
    };
    error = replay_flushed(exec, replays, l2_flush, flush, flush_bytes, args.stream, read_replay);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    if (error != cudaSuccess) break;
  }
  cleanup();
  if (error != cudaSuccess) return cuda_error(error, "timing graph");
  timing->stage_us.clear();
  double stages = 0, gemms = 0;
  for (int st = 0; st < kMoeStageCount; ++st) {
    timing->stage_us.push_back(median(stage[st]));
    stages += timing->stage_us.back();
    if (st == 2 || st == 4) gemms += timing->stage_us.back();
  }
  timing->total_us = median(total);
  timing->outside_gemms = stages > 0 ? 1.0 - gemms / stages : 0.0;
  return Status::Ok();
}

}  // namespace w4a8moe::tools
