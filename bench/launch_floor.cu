// What a layer's CUDA graph costs before any of its work: graphs of near-empty kernels timed exactly as the layer
// benchmark times the layer (tools/layer_timing.cpp: L2 and the instruction caches flushed, events around the graph
// launch, medians of the replays). The floors the decode targets sit on (bench/NOTES.md §111):
//   one_empty        one kernel of one block that does nothing
//   idle_rank        one kernel of one block that reads a token's router logits (256 fp32) and writes its zero
//                    output row (7168 bf16): what an expert-parallel rank with no local rows must do at least
//   chain_pdl_N      N one-block kernels chained by PDL as the staged layer's (common/pdl.cuh: each waits on the one
//                    before and lets the next launch right after)
//   chain_plain_N    the same N kernels launched without PDL
//   links_*          six kernels shaped as an idle rank's staged layer: a one-block "routing" that writes the
//                    expert offsets, then five of three 256-thread blocks an SM (as the decode GEMMs' grids):
//     links_wide         the five do nothing but wait and let the next launch
//     links_search       each block first reads the offsets through L2 and sums them across the block (the decode
//                        kernel's chunk search), then waits, then lets the next launch (common/pdl.cuh's rule)
//     links_search_early the same, but the third to sixth kernels let the next launch as they start
// Writes launch_floor.json and launch_floor.md into --out (default .).
//   w4a8moe_launch_floor [--replays 200] [--out DIR]
#include <cuda_bf16.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/device_buffer.h"
#include "cli_args.h"
#include "common/pdl.cuh"
#include "l2_flush.h"
#include "layer_timing.h"

namespace w4a8moe::bench {
namespace {

constexpr int kLogits = 256, kHidden = 7168;
// The links_* kernels: a layer's expert offsets (Qwen3-30B-A3B's 128 experts), threads and shared memory of a block
// so that three share an SM, as the decode GEMM's blocks do.
constexpr int kOffsets = 129, kLinkThreads = 256, kLinkBlocksPerSm = 3;
constexpr size_t kLinkSharedBytes = 70 * 1024;

__global__ void empty_kernel() {}

__global__ void chained_kernel() {
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
}

// The routing's stand-in: writes the offsets the next kernels search.
__global__ void write_offsets_kernel(int64_t* offsets) {
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  for (int i = int(threadIdx.x); i < kOffsets; i += int(blockDim.x)) offsets[i] = 0;
}

// A decode GEMM's block on an idle rank: (search) the offsets read through L2 before the wait and summed across the
// block, then the wait; the next kernel may launch after the wait or (early) as the block starts.
__global__ void __launch_bounds__(kLinkThreads) link_kernel(int64_t const* offsets, int* sink, bool search,
                                                            bool early) {
  __shared__ unsigned long long total;
  if (early) pdl_allow_next_grid();
  if (search) {
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    int64_t const own = int(threadIdx.x) < kOffsets ? __ldcg(offsets + threadIdx.x) : 0;
    atomicAdd(&total, static_cast<unsigned long long>(own));
    __syncthreads();
  }
  pdl_wait_for_previous_grid();
  if (!early) pdl_allow_next_grid();
  if (search && threadIdx.x == 0 && total != 0) *sink = 1;  // never: the offsets are zeros, but the sum is used
}

// The least an idle rank does: read the logits (their top-k would say no expert is local), write zeros.
__global__ void idle_rank_kernel(float const* logits, __nv_bfloat16* out) {
  float const x = logits[threadIdx.x % kLogits];
  __nv_bfloat16 const zero = __float2bfloat16(x * 0.0f);
  for (int i = int(threadIdx.x); i < kHidden; i += int(blockDim.x)) out[i] = zero;
}

struct Floor {
  std::string name;
  double median_us = 0.0;
};

// Captures `enqueue` into a graph and times its replays as the layer benchmark does (tools::replay_flushed).
double time_graph(std::function<cudaError_t(cudaStream_t)> const& enqueue, int replays, void* flush,
                  size_t flush_bytes, cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return -1.0;
  cudaError_t const enqueued = enqueue(stream);
  if (cudaStreamEndCapture(stream, &graph) != cudaSuccess || enqueued != cudaSuccess ||
      cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return -1.0;
  }
  std::vector<double> us;
  auto const read_replay = [&](cudaEvent_t start, cudaEvent_t stop) {
    float ms = 0.0f;
    cudaError_t const e = cudaEventElapsedTime(&ms, start, stop);
    us.push_back(1e3 * ms);
    return e;
  };
  cudaError_t const error =
      tools::replay_flushed(exec, replays, tools::L2Flush::kRead, flush, flush_bytes, stream, read_replay);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return error == cudaSuccess ? tools::median(us) : -1.0;
}

int run(int argc, char** argv) {
  tools::Args const args(argc, argv, 1);
  int64_t replays = 200;
  Status status = args.check_known({"replays", "out"});
  if (status.ok()) status = args.integer_in("replays", replays, 1, 1 << 20, &replays);
  if (!status.ok() || !args.positional().empty()) {
    std::fprintf(stderr, "w4a8moe_launch_floor: %s; usage: [--replays 200] [--out DIR]\n",
                 status.ok() ? "unexpected argument" : status.message().c_str());
    return 2;
  }
  std::string const out_dir = args.get("out", ".");
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    std::fprintf(stderr, "w4a8moe_launch_floor: no CUDA device\n");
    return 1;
  }
  size_t const flush_bytes = tools::l2_flush_buffer_bytes(0);
  DeviceBuffer flush(flush_bytes), logits(kLogits * sizeof(float)), out(kHidden * sizeof(__nv_bfloat16)),
      offsets(kOffsets * sizeof(int64_t)), sink(sizeof(int));
  if (!flush.ok() || !logits.ok() || !out.ok() || !offsets.ok() || !sink.ok() ||
      cudaMemset(logits.get(), 0, logits.bytes()) != cudaSuccess) {
    std::fprintf(stderr, "w4a8moe_launch_floor: cannot allocate the buffers\n");
    return 1;
  }
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);

  std::vector<Floor> floors;
  auto add = [&](std::string name, std::function<cudaError_t(cudaStream_t)> const& enqueue) {
    floors.push_back({std::move(name), time_graph(enqueue, int(replays), flush.get(), flush_bytes, stream)});
  };
  add("one_empty", [](cudaStream_t s) {
    empty_kernel<<<1, 32, 0, s>>>();
    return cudaGetLastError();
  });
  add("idle_rank", [&](cudaStream_t s) {
    idle_rank_kernel<<<1, 256, 0, s>>>(logits.as<float>(), out.as<__nv_bfloat16>());
    return cudaGetLastError();
  });
  for (int kernels : {2, 4, 6}) {
    add("chain_pdl_" + std::to_string(kernels), [kernels](cudaStream_t s) {
      for (int k = 0; k < kernels; ++k) {
        if (cudaError_t e = launch_with_pdl(chained_kernel, dim3(1), dim3(32), 0, s); e != cudaSuccess) return e;
      }
      return cudaSuccess;
    });
    add("chain_plain_" + std::to_string(kernels), [kernels](cudaStream_t s) {
      for (int k = 0; k < kernels; ++k) empty_kernel<<<1, 32, 0, s>>>();
      return cudaGetLastError();
    });
  }
  // links_*: the routing's stand-in, then five kernels of three blocks an SM; `early`: the third to sixth kernels let
  // the next launch as they start.
  struct Links {
    char const* name;
    bool search, early;
  };
  unsigned const link_blocks = unsigned(kLinkBlocksPerSm * prop.multiProcessorCount);
  for (Links const links : {Links{"links_wide", false, false}, Links{"links_search", true, false},
                            Links{"links_search_early", true, true}}) {
    add(links.name, [&, links](cudaStream_t s) {
      cudaError_t e = launch_with_pdl(write_offsets_kernel, dim3(1), dim3(128), 0, s, offsets.as<int64_t>());
      for (int k = 1; k < 6 && e == cudaSuccess; ++k) {
        e = launch_with_pdl(link_kernel, dim3(link_blocks), dim3(kLinkThreads), kLinkSharedBytes, s,
                            static_cast<int64_t const*>(offsets.as<int64_t>()), sink.as<int>(), links.search,
                            links.early && k >= 2);
      }
      return e;
    });
  }
  cudaStreamDestroy(stream);

  nlohmann::json rows = nlohmann::json::array();
  std::string table = "# Launch floors (" + std::string(prop.name) +
                      ")\n\nw4a8moe_launch_floor: graphs timed as the layer benchmark times the layer (L2 and "
                      "instruction caches flushed, events around the graph launch), medians of " +
                      std::to_string(replays) + " replays.\n\n| graph | us |\n|---|---|\n";
  bool ok = true;
  for (auto const& f : floors) {
    ok = ok && f.median_us > 0.0;
    rows.push_back({{"graph", f.name}, {"us", f.median_us}});
    char line[96];
    std::snprintf(line, sizeof(line), "| %s | %.2f |\n", f.name.c_str(), f.median_us);
    table += line;
  }
  nlohmann::json const doc = {{"device", prop.name}, {"replays", replays}, {"rows", rows}};
  std::ofstream(out_dir + "/launch_floor.json") << doc.dump(1) << "\n";
  std::ofstream(out_dir + "/launch_floor.md") << table;
  std::fputs(table.c_str(), stdout);
  if (!ok) std::fprintf(stderr, "w4a8moe_launch_floor: a graph failed to capture or run\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace w4a8moe::bench

int main(int argc, char** argv) { return w4a8moe::bench::run(argc, argv); }
