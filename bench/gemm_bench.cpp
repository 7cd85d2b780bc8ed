// W4A8 grouped GEMM benchmark: for each (model, GEMM, tokens, routing) case, the W4A8 kernel the heuristic picks,
// the naive fixed 128x16 W4A8 config, and in the same process and run the baselines: W8A8 (best of its configs),
// W4A16 (best of its configs), BF16 (cuBLAS grouped) and the card's streaming read bandwidth.
//
// Timing: each launch reads one of several copies of all experts' weights, rotated so that the active experts'
// weights never sit in L2 (copies >= 3 x L2 / active bytes); a CUDA graph of many launches is replayed after a
// warm-up, and the median over replays of (graph time / launches) is reported.
//
//   w4a8moe_gemm_bench                                   Qwen3-30B-A3B at 16, 128, 1024, 8192 tokens
//   w4a8moe_gemm_bench --models all --tokens all --routing uniform,skewed --sweep --out bench/results
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "baselines/bench_fill.h"
#include "common/device_buffer.h"
#include "method.h"
#include "reference/routing.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::bench {
namespace {

struct Model {
  std::string name;
  int global_experts, local_experts, top_k, hidden, inter;
};

std::vector<Model> const kModels = {
    {"qwen3-30b-a3b", 128, 128, 8, 2048, 768},
    {"deepseek-v3-ep8", 256, 32, 8, 7168, 2048},  // 8-way expert parallelism: 32 local experts of 256
    {"mixtral-8x7b", 8, 8, 2, 4096, 14336},
};
std::vector<int64_t> const kAllTokens = {1, 4, 16, 64, 128, 512, 1024, 4096, 8192};

void fail(std::string const& message) {
  std::fprintf(stderr, "w4a8moe_gemm_bench: %s\n", message.c_str());
  std::exit(1);
}

void check_cuda(cudaError_t error, char const* what) {
  if (error != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorName(error) + " " + cudaGetErrorString(error));
}

// --- The W4A8 kernel, through the public API --------------------------------------------------------------------

class W4A8Method final : public Method {
 public:
  explicit W4A8Method(std::string config) : config_(std::move(config)) {}
  std::string name() const override { return config_.empty() ? "w4a8" : "w4a8_" + config_; }
  double weight_bytes_per_expert(int n, int k) const override {
    return double(n) * k / 2 + 8.0 * n * (k / 128) + 4.0 * n;  // int4 + 8-byte lookup tables + channel scales
  }
  std::string const& chosen_config() const { return chosen_; }

  std::string prepare(BenchCase const& c) override {
    ExpertWeightShape const shape{c.num_experts, c.n, c.k, 128};
    int64_t rows = 0;
    std::vector<int64_t> offsets{0};
    for (int64_t r : c.rows_per_expert) offsets.push_back(rows += r);
    {
      DeviceBuffer words(size_t(c.num_experts) * c.n * c.k / 2), scales(size_t(c.num_experts) * c.n * (c.k / 128) * 2);
      if (!words.ok() || !scales.ok()) return "out of device memory";
      fill_random_bytes(words.get(), words.bytes(), 31);
      fill_uniform_bf16(scales.get(), scales.bytes() / 2, 0.001f, 0.01f, 32);
      size_t const bytes = packed_weights_bytes(shape);
      packed_.clear();
      for (int set = 0; set < c.weight_sets; ++set) {
        packed_.emplace_back(bytes);
        if (!packed_.back().ok()) return "out of device memory";
        if (set > 0) {
          check_cuda(cudaMemcpy(packed_[set].get(), packed_[0].get(), bytes, cudaMemcpyDeviceToDevice), "copy");
          continue;
        }
        PrepackArgs args;
        args.shape = shape;
        args.weights = words.get();
        args.group_scales = scales.get();
        args.packed = packed_[0].get();
        args.packed_bytes = bytes;
        Status const status = prepack_weights(args);
        if (!status.ok()) return status.to_string();
      }
    }
    act_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.k);
    token_scales_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * 4);
    out_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.n * 2);
    offsets_ = DeviceBuffer(offsets);
    workspace_ = DeviceBuffer(grouped_gemm_workspace_bytes(c.num_experts));
    for (auto* b : {&act_, &token_scales_, &out_, &offsets_, &workspace_}) {
      if (!b->ok()) return "out of device memory";
    }
    fill_random_bytes(act_.get(), act_.bytes(), 33);
    fill_random_bytes_no_fp8_nan(act_.get(), act_.bytes());
    fill_uniform_floats(token_scales_.as<float>(), token_scales_.bytes() / 4, 0.001f, 0.01f, 34);

    args_ = GroupedGemmArgs{};
    args_.shape = shape;
    args_.total_rows = rows;
    args_.act = act_.get();
    args_.token_scales = token_scales_.as<float>();
    args_.expert_offsets = offsets_.as<int64_t>();
    args_.out = out_.get();
    args_.workspace = workspace_.get();
    args_.workspace_bytes = workspace_.bytes();
    args_.config = config_;
    args_.packed_weights = packed_[0].get();
    chosen_ = select_gemm_config(args_);  // what an engine gets: it knows only the row count, not the routing
    return "";
  }

  std::string run(int set, cudaStream_t stream) override {
    args_.packed_weights = packed_[set].get();
    args_.stream = stream;
    Status const status = grouped_gemm(args_);
    return status.ok() ? "" : status.to_string();
  }

 private:
  std::string config_, chosen_;
  std::vector<DeviceBuffer> packed_;
  DeviceBuffer act_, token_scales_, out_, offsets_, workspace_;
  GroupedGemmArgs args_;
};

// --- Timing -------------------------------------------------------------------------------------------------------

struct Timing {
  double us = 0;
  std::string error;
};

Timing time_method(Method& method, BenchCase const& c, int replays, cudaStream_t stream) {
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

  // Enough launches per graph to take ~300 us, a multiple of the weight copies.
  int launches = int(std::clamp(std::ceil(300.0 / eager_us), 1.0, 64.0));
  launches = int(std::ceil(double(std::max(launches, c.weight_sets)) / c.weight_sets)) * c.weight_sets;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < launches && timing.error.empty(); ++i) timing.error = method.run(i % c.weight_sets, stream);
  check_cuda(cudaStreamEndCapture(stream, &graph), "capture");
  if (!timing.error.empty()) return timing;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  check_cuda(cudaGraphLaunch(exec, stream), "graph warm-up");
  std::vector<double> per_launch_us;
  for (int r = 0; r < replays; ++r) {
    check_cuda(cudaEventRecord(start, stream), "record");
    check_cuda(cudaGraphLaunch(exec, stream), "graph");
    check_cuda(cudaEventRecord(stop, stream), "record");
    check_cuda(cudaEventSynchronize(stop), "replay");
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    per_launch_us.push_back(1e3 * ms / launches);
  }
  check_cuda(cudaGetLastError(), "replays");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(per_launch_us.begin(), per_launch_us.end());
  timing.us = per_launch_us[per_launch_us.size() / 2];
  return timing;
}

// --- Cases and results ---------------------------------------------------------------------------------------------

struct Options {
  std::vector<std::string> models = {"qwen3-30b-a3b"};
  std::vector<int64_t> tokens = {16, 128, 1024, 8192};
  std::vector<std::string> routings = {"uniform"};
  std::vector<int> gemms = {1, 2};
  bool sweep = false;
  bool baselines = true;
  int replays = 25;
  std::string out_dir;
};

struct Row {
  std::string model, routing, method, config;
  int gemm = 0, experts = 0, n = 0, k = 0, active = 0;
  int64_t tokens = 0, rows = 0;
  double us = 0, tflops = 0, weight_gbps = 0;
};

std::vector<std::string> split(std::string const& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string const arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--models") {
      std::string const v = value();
      o.models.clear();
      if (v == "all") {
        for (auto const& m : kModels) o.models.push_back(m.name);
      } else {
        o.models = split(v);
      }
    } else if (arg == "--tokens") {
      std::string const v = value();
      o.tokens.clear();
      if (v == "all") {
        o.tokens = kAllTokens;
      } else {
        for (auto const& t : split(v)) o.tokens.push_back(std::stoll(t));
      }
    } else if (arg == "--routing") {
      o.routings = split(value());
    } else if (arg == "--gemm") {
      o.gemms.clear();
      for (auto const& g : split(value())) o.gemms.push_back(std::stoi(g));
    } else if (arg == "--sweep") {
      o.sweep = true;
    } else if (arg == "--no-baselines") {
      o.baselines = false;
    } else if (arg == "--replays") {
      o.replays = std::stoi(value());
    } else if (arg == "--out") {
      o.out_dir = value();
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: w4a8moe_gemm_bench [--models qwen3-30b-a3b,deepseek-v3-ep8,mixtral-8x7b|all] [--tokens 1,16|all]\n"
          "                          [--routing uniform,skewed] [--gemm 1,2] [--sweep] [--no-baselines]\n"
          "                          [--replays 25] [--out DIR]\n");
      std::exit(0);
    } else {
      fail("unknown argument " + arg + " (see --help)");
    }
  }
  for (auto const& r : o.routings) {
    if (r != "uniform" && r != "skewed") fail("--routing: unknown routing '" + r + "'");
  }
  for (int g : o.gemms) {
    if (g != 1 && g != 2) fail("--gemm: GEMM 1 or 2");
  }
  return o;
}

Model const& find_model(std::string const& name) {
  for (auto const& m : kModels) {
    if (m.name == name) return m;
  }
  fail("unknown model '" + name + "'");
  return kModels[0];
}

// Rows per local expert: tokens route over all global experts; this rank holds the first local_experts of them.
std::vector<int64_t> routing_counts(Model const& m, int64_t tokens, std::string const& routing) {
  std::mt19937_64 rng(uint64_t(tokens) * 7919 + m.global_experts);
  auto counts = routing == "uniform"
                    ? reference::uniform_routing_counts(m.global_experts, tokens, m.top_k, rng)
                    : reference::skewed_routing_counts(m.global_experts, tokens, m.top_k, 4, 20.0, rng);
  counts.resize(m.local_experts);
  return counts;
}

std::string card_slug(std::string name) {
  for (std::string const prefix : {"NVIDIA "}) {
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  }
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

}  // namespace

int main(int argc, char** argv) {
  Options const options = parse(argc, argv);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "w4a8moe_gemm_bench: no CUDA device found; the benchmark needs a Hopper GPU (H100/H200)\n");
    return 2;
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "device properties");
  if (prop.major != 9 || prop.minor != 0) {
    std::fprintf(stderr, "w4a8moe_gemm_bench: device '%s' is not a Hopper GPU (sm_90); the kernels need one\n",
                 prop.name);
    return 2;
  }
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  // The streaming read also brings the clocks up before the first timed case.
  double const hbm = measure_hbm_read_bandwidth(size_t(4) << 30);
  std::printf("device: %s, %d SMs, L2 %d MB; streaming read %.0f GB/s\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, hbm / 1e9);

  std::vector<std::string> w4a8_configs;
  if (options.sweep) w4a8_configs = gemm_config_names();
  std::vector<Row> rows;
  std::printf("%-16s %4s %6s %-8s | %-18s %9s %7s %6s %5s | %9s %9s %9s %9s %9s\n", "model", "gemm", "tokens",
              "routing", "w4a8 config", "us", "TFLOP/s", "GB/s", "%HBM", "naive/x", "w8a8/x", "w4a16/x", "bf16/x",
              "best/x");
  for (auto const& model_name : options.models) {
    Model const& model = find_model(model_name);
    for (auto const& routing : options.routings) {
      for (int64_t tokens : options.tokens) {
        auto const counts = routing_counts(model, tokens, routing);
        for (int gemm : options.gemms) {
          BenchCase c;
          c.num_experts = model.local_experts;
          c.n = gemm == 1 ? 2 * model.inter : model.hidden;
          c.k = gemm == 1 ? model.hidden : model.inter;
          c.rows_per_expert = counts;
          int64_t total_rows = 0;
          int active = 0;
          for (int64_t r : counts) {
            total_rows += r;
            active += r > 0;
          }
          double const flops = 2.0 * double(total_rows) * c.n * c.k;
          auto measure = [&](Method& method, std::string const& config) {
            double const active_bytes = std::max(1.0, active * method.weight_bytes_per_expert(c.n, c.k));
            double const all_bytes = c.num_experts * method.weight_bytes_per_expert(c.n, c.k);
            c.weight_sets = int(std::clamp(std::ceil(3.0 * prop.l2CacheSize / active_bytes), 1.0,
                                           std::max(1.0, std::floor(16e9 / all_bytes))));
            Timing const t = time_method(method, c, options.replays, stream);
            Row row{model.name, routing, method.name(), config, gemm, c.num_experts, c.n, c.k, active, tokens,
                    total_rows};
            if (!t.error.empty()) {
              std::fprintf(stderr, "  %s: %s\n", method.name().c_str(), t.error.c_str());
              row.us = NAN;
            } else {
              row.us = t.us;
              row.tflops = flops / (t.us * 1e6);
              row.weight_gbps = active * method.weight_bytes_per_expert(c.n, c.k) / (t.us * 1e3);
            }
            rows.push_back(row);
            return row;
          };
          W4A8Method chosen("");
          Row const main = measure(chosen, "");
          rows.back().config = chosen.chosen_config();
          W4A8Method naive("128x16_1x1_coop");
          double const naive_us = measure(naive, "128x16_1x1_coop").us;
          double best_w4a8 = main.us;
          std::string best_config = chosen.chosen_config();
          for (auto const& config : w4a8_configs) {
            W4A8Method m(config);
            double const us = measure(m, config).us;
            if (us < best_w4a8) best_w4a8 = us, best_config = config;
          }
          double w8a8 = NAN, w4a16 = NAN, bf16 = NAN;
          if (options.baselines) {
            for (auto const& config : w8a8_config_names()) {
              auto m = make_w8a8_method(config);
              double const us = measure(*m, config).us;
              if (!(us >= w8a8)) w8a8 = us;
            }
            for (auto const& config : w4a16_config_names()) {
              auto m = make_w4a16_method(config);
              double const us = measure(*m, config).us;
              if (!(us >= w4a16)) w4a16 = us;
            }
            auto m = make_bf16_cublas_method();
            bf16 = measure(*m, "").us;
          }
          double const gbps = active * chosen.weight_bytes_per_expert(c.n, c.k) / (main.us * 1e3);
          std::printf("%-16s %4d %6lld %-8s | %-18s %9.2f %7.1f %6.0f %5.0f | %9.2f %9.2f %9.2f %9.2f %9.2f%s\n",
                      model.name.c_str(), gemm, static_cast<long long>(tokens), routing.c_str(),
                      chosen.chosen_config().c_str(), main.us, flops / (main.us * 1e6), gbps, 100.0 * gbps * 1e9 / hbm,
                      naive_us / main.us, w8a8 / main.us, w4a16 / main.us, bf16 / main.us, best_w4a8 / main.us,
                      options.sweep ? (" (best " + best_config + ")").c_str() : "");
          std::fflush(stdout);
        }
      }
    }
  }

  if (!options.out_dir.empty()) {
    std::string const stem = options.out_dir + "/" + today() + "-" + card_slug(prop.name);
    std::ofstream json(stem + ".json");
    json << "{\n  \"device\": \"" << prop.name << "\",\n  \"sm_count\": " << prop.multiProcessorCount
         << ",\n  \"hbm_read_gbps\": " << hbm / 1e9 << ",\n  \"rows\": [\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      auto const& r = rows[i];
      json << "    {\"model\": \"" << r.model << "\", \"gemm\": " << r.gemm << ", \"tokens\": " << r.tokens
           << ", \"routing\": \"" << r.routing << "\", \"experts\": " << r.experts << ", \"active_experts\": "
           << r.active << ", \"n\": " << r.n << ", \"k\": " << r.k << ", \"rows\": " << r.rows << ", \"method\": \""
           << r.method << "\", \"config\": \"" << r.config << "\", \"us\": " << (std::isnan(r.us) ? -1.0 : r.us)
           << ", \"tflops\": " << r.tflops << ", \"weight_gbps\": " << r.weight_gbps << "}"
           << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    json << "  ]\n}\n";
    std::printf("wrote %s.json\n", stem.c_str());
  }
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace w4a8moe::bench

int main(int argc, char** argv) { return w4a8moe::bench::main(argc, argv); }
