// A grouped GEMM implementation as the benchmark drives it: allocate for a case once, then run one launch at a
// time against one of several weight copies (rotated so that nothing is served from L2). No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace w4a8moe::bench {

struct BenchCase {
  int num_experts = 0;
  int n = 0;  // output channels
  int k = 0;
  std::vector<int64_t> rows_per_expert;  // host copy of the routing
  int weight_sets = 1;                   // copies of all experts' weights to rotate through
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // Bytes of weights and scales of one expert in this method's format (for effective bandwidth).
  virtual double weight_bytes_per_expert(int n, int k) const = 0;
  // Allocates and fills everything the case needs; returns an error message, or "" on success.
  virtual std::string prepare(BenchCase const& bench_case) = 0;
  // Enqueues one launch on `stream` against weight copy `weight_set`; returns an error message, or "".
  virtual std::string run(int weight_set, cudaStream_t stream) = 0;
};

// Baselines (bench/baselines/): W8A8 fp8 x fp8 CUTLASS pointer-array grouped GEMM with per-token and per-channel
// scales; W4A16 CUTLASS int4 x bf16 grouped GEMM from the same mixed-input collective as W4A8; BF16 through
// cuBLAS's grouped GEMM.
std::vector<std::string> w8a8_config_names();
std::unique_ptr<Method> make_w8a8_method(std::string const& config);
std::vector<std::string> w4a16_config_names();
std::unique_ptr<Method> make_w4a16_method(std::string const& config);
std::unique_ptr<Method> make_bf16_cublas_method();

// Streaming read bandwidth of the device in bytes per second (a plain kernel reading `bytes`, median of runs).
double measure_hbm_read_bandwidth(size_t bytes);

}  // namespace w4a8moe::bench
