#include "bench_timing.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "l2_flush.h"
#include "layer_timing.h"  // tools::median, tools::replay_flushed

namespace w4a8moe::bench {
namespace {

char const* program_name = "w4a8moe bench";

}  // namespace

void set_program_name(char const* name) { program_name = name; }

void fail(std::string const& message) {
  std::fprintf(stderr, "%s: %s\n", program_name, message.c_str());
  std::exit(1);
}

void check_cuda(cudaError_t error, char const* what) {
  if (error != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorName(error) + " " + cudaGetErrorString(error));
}

void make_output_dir(std::string const& dir) {
  if (dir.empty()) return;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || !std::filesystem::is_directory(dir)) {
    fail("--out " + dir + ": cannot create the folder" + (error ? ": " + error.message() : std::string()));
  }
}

int weight_sets_past_l2(Method const& method, BenchCase const& c, size_t l2_bytes) {
  int active = 0;
  for (int64_t rows : c.rows_per_expert) active += rows > 0;
  double const per_expert = method.weight_bytes_per_expert(c.n, c.k);
  double const active_bytes = std::max(1.0, active * per_expert), all_bytes = c.num_experts * per_expert;
  double const most = std::max(1.0, std::floor(16e9 / all_bytes));
  return int(std::clamp(std::ceil(3.0 * double(l2_bytes) / active_bytes), 1.0, most));
}

Timing time_method(Method& method, BenchCase const& c, int replays, cudaStream_t stream, LaunchTiming how) {
  Timing timing;
  if (timing.error = method.prepare(c); !timing.error.empty()) return timing;
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "event");
  check_cuda(cudaEventCreate(&stop), "event");
  // Eager warm-up over every weight copy, which also gives a first time per launch.
  check_cuda(cudaEventRecord(start, stream), "record");
  for (int set = 0; set < c.weight_sets; ++set) {
    if (timing.error = method.run(set, stream); !timing.error.empty()) return timing;
  }
  check_cuda(cudaEventRecord(stop, stream), "record");
  check_cuda(cudaEventSynchronize(stop), "warm-up");
  float eager_ms = 0;
  cudaEventElapsedTime(&eager_ms, start, stop);
  double const eager_us = std::max(1.0, 1e3 * eager_ms / c.weight_sets);

  // Back to back: enough launches per graph to take ~300 us, a multiple of the weight copies. Alone: one.
  int launches = 1;
  if (how == LaunchTiming::kBackToBack) {
    launches = int(std::clamp(std::ceil(300.0 / eager_us), 1.0, 64.0));
    launches = int(std::ceil(double(std::max(launches, c.weight_sets)) / c.weight_sets)) * c.weight_sets;
  }
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < launches && timing.error.empty(); ++i) timing.error = method.run(i % c.weight_sets, stream);
  check_cuda(cudaStreamEndCapture(stream, &graph), "capture");
  if (!timing.error.empty()) return timing;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  // Replays before timing, for at least kWarmUpMs: clocks settle after whatever ran before (a power-hungry baseline,
  // or the idle GPU while the host made the case's inputs). Three replays of ~300 us had left the first method of a
  // case (the heuristic's pick) up to 14 % slower than the same config timed right after it (bench/NOTES.md §79).
  constexpr float kWarmUpMs = 50.0f;
  float warm_ms = 0;
  check_cuda(cudaEventRecord(start, stream), "record");
  for (int i = 0; i < 3 || (warm_ms < kWarmUpMs && i < 1000); ++i) {
    check_cuda(cudaGraphLaunch(exec, stream), "graph warm-up");
    check_cuda(cudaEventRecord(stop, stream), "record");
    check_cuda(cudaEventSynchronize(stop), "graph warm-up");
    check_cuda(cudaEventElapsedTime(&warm_ms, start, stop), "warm-up time");
  }
  std::vector<double> per_launch_us;
  if (how == LaunchTiming::kAlone) {
    size_t const flush_bytes = tools::l2_flush_buffer_bytes(0);
    void* flush = nullptr;
    check_cuda(cudaMalloc(&flush, flush_bytes), "L2 flush buffer");
    check_cuda(tools::replay_flushed(exec, replays, tools::L2Flush::kRead, flush, flush_bytes, stream,
                                     [&](cudaEvent_t replay_start, cudaEvent_t replay_stop) {
                                       float ms = 0;
                                       cudaError_t const error = cudaEventElapsedTime(&ms, replay_start, replay_stop);
                                       per_launch_us.push_back(1e3 * ms);
                                       return error;
                                     }),
               "replays");
    cudaFree(flush);
  } else {
    for (int r = 0; r < replays; ++r) {
      check_cuda(cudaEventRecord(start, stream), "record");
      check_cuda(cudaGraphLaunch(exec, stream), "graph");
      check_cuda(cudaEventRecord(stop, stream), "record");
      check_cuda(cudaEventSynchronize(stop), "replay");
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      per_launch_us.push_back(1e3 * ms / launches);
    }
  }
  check_cuda(cudaGetLastError(), "replays");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  timing.us = tools::median(per_launch_us);
  return timing;
}

std::vector<std::string> split(std::string const& list) {
  std::vector<std::string> parts;
  std::stringstream in(list);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

std::string card_slug(std::string name) {
  if (name.rfind("NVIDIA ", 0) == 0) name = name.substr(7);
  std::string slug;
  for (char ch : name) slug += std::isalnum(static_cast<unsigned char>(ch)) ? char(std::tolower(ch)) : '-';
  return slug;
}

std::string today() {
  std::time_t const now = std::time(nullptr);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", std::gmtime(&now));
  return buffer;
}

}  // namespace w4a8moe::bench
