// Shared by the benchmark programs: fatal-error helpers, the timing loop (CUDA graph replays of many launches that
// rotate through weight copies), list arguments and result-file naming.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "method.h"

namespace w4a8moe::bench {

// Prints "<program>: message" and exits; benchmarks stop at the first CUDA error.
[[noreturn]] void fail(std::string const& message);
void check_cuda(cudaError_t error, char const* what);
void set_program_name(char const* name);

struct Timing {
  double us = 0;      // median time per launch
  std::string error;  // non-empty if preparing or running failed
};

// Copies of all experts' weights for a case's launches to rotate through, so that its active experts' weights (of the
// method's format) never sit in L2: at least 3 x L2 / active bytes, and no more than 16 GB of copies.
int weight_sets_past_l2(Method const& method, BenchCase const& c, size_t l2_bytes);

// How a method's launches are timed.
//  - kBackToBack: a graph of enough launches to take ~300 us, rotating through the weight copies; the median over
//    the replays of graph time / launches. A launch's throughput: where the library's kernels let the next launch
//    start under their tail (PDL, common/pdl.cuh), its start (and the decode kernel's search and first loads) hide
//    under the launch before, which CUTLASS's baselines, launched without PDL, do not (bench/NOTES.md §123).
//  - kAlone: a graph of one launch on weight copy 0, replayed after an L2 flush (tools/layer_timing.h's replay, as
//    the layer's stages are timed); the median of the replays, the graph's launch included. One call's latency,
//    every method alike.
// Either graph first replays for at least 50 ms, for the clocks to settle (bench/NOTES.md §79).
enum class LaunchTiming { kBackToBack, kAlone };

// Prepares the method for the case, warms up over every weight copy, then times its launches as `how` says.
Timing time_method(Method& method, BenchCase const& c, int replays, cudaStream_t stream,
                   LaunchTiming how = LaunchTiming::kBackToBack);

// "a,b,c" -> {"a", "b", "c"}: the benchmarks' list arguments.
std::vector<std::string> split(std::string const& list);

// --out DIR: created (with its parents) before any case runs, so that a long run cannot end with nowhere to write
// its results; fails naming the folder if it cannot be. Nothing for an empty name.
void make_output_dir(std::string const& dir);

// "h100-80gb-hbm3" from "NVIDIA H100 80GB HBM3"; today's date as YYYY-MM-DD (UTC).
std::string card_slug(std::string name);
std::string today();

}  // namespace w4a8moe::bench
