#include "layer_timing.h"

#include <algorithm>
#include <string>

namespace w4a8moe::tools {
namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

Status cuda_error(cudaError_t error, char const* what) {
  return Status(StatusCode::kCudaError, std::string(what) + ": " + cudaGetErrorName(error));
}

}  // namespace

Status time_layer(MoeForwardArgs args, int replays, LayerTiming* timing) {
  std::vector<cudaEvent_t> events(kMoeStageCount + 1);
  cudaEvent_t start, stop;
  for (auto& e : events) cudaEventCreate(&e);
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  auto cleanup = [&] {
    for (auto& e : events) cudaEventDestroy(e);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  };
  Status status = moe_forward(args);  // warm-up, outside the graph
  if (!status.ok()) return cleanup(), status;
  args.stage_events = events.data();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cudaError_t error = cudaStreamBeginCapture(args.stream, cudaStreamCaptureModeThreadLocal);
  if (error != cudaSuccess) return cleanup(), cuda_error(error, "cudaStreamBeginCapture");
  status = moe_forward(args);
  error = cudaStreamEndCapture(args.stream, &graph);
  if (!status.ok()) return cleanup(), status;
  if (error != cudaSuccess) return cleanup(), cuda_error(error, "cudaStreamEndCapture");
  if ((error = cudaGraphInstantiate(&exec, graph, 0)) != cudaSuccess) {
    cudaGraphDestroy(graph);
    return cleanup(), cuda_error(error, "cudaGraphInstantiate");
  }
  cudaGraphGetNodes(graph, nullptr, &timing->graph_nodes);
  std::vector<std::vector<double>> stage(kMoeStageCount);
  std::vector<double> total;
  for (int i = 0; i < replays + 3 && error == cudaSuccess; ++i) {
    cudaEventRecord(start, args.stream);
    cudaGraphLaunch(exec, args.stream);
    cudaEventRecord(stop, args.stream);
    if ((error = cudaEventSynchronize(stop)) != cudaSuccess) break;
    if (i < 3) continue;  // warm-up replays
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    total.push_back(1e3 * ms);
    for (int st = 0; st < kMoeStageCount; ++st) {
      cudaEventElapsedTime(&ms, events[st], events[st + 1]);
      stage[st].push_back(1e3 * ms);
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cleanup();
  if (error != cudaSuccess) return cuda_error(error, "graph replay");
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
