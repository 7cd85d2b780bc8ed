// W4A8 grouped GEMM benchmark: for each (model, GEMM, tokens, routing) case, the W4A8 kernel the heuristic picks,
// the naive fixed 128x16 W4A8 config, and in the same process and run the baselines: W8A8 (best of its configs),
// W4A16 (best of its configs), BF16 (cuBLAS grouped) and the card's streaming read bandwidth.
//
// Timing: each launch reads one of several copies of all experts' weights, rotated so that the active experts'
// weights never sit in L2 (copies >= 3 x L2 / active bytes); a CUDA graph of many launches is replayed after a
// warm-up, and the median over replays of (graph time / launches) is reported: a throughput, under which the
// library's launches start early (PDL) and the baselines' do not. --alone times one launch a graph replay after an
// L2 flush instead, every method alike (bench_timing.h, LaunchTiming).
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
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "baselines/bench_fill.h"
#include "bench_timing.h"
#include "w4a8_method.h"
#include "common/device_buffer.h"
#include "json_output.h"
#include "method.h"
#include "model_presets.h"
#include "reference/routing.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::bench {
namespace {

std::vector<int64_t> const kAllTokens = {1, 4, 16, 64, 128, 512, 1024, 4096, 8192};

// --- Cases and results ---------------------------------------------------------------------------------------------

struct Options {
  std::vector<std::string> models = {"qwen3-30b-a3b"};
  std::vector<int64_t> tokens = {16, 128, 1024, 8192};
  std::vector<std::string> routings = {"uniform"};
  std::vector<int> gemms = {1, 2};
  bool sweep = false;
  std::vector<std::string> configs;  // configs to time besides the heuristic's (--sweep: the lookup layout's)
  bool baselines = true;
  bool exact = false;  // also time the exact-scale layout's streaming kernel
  bool mxfp4 = false;  // also time the MXFP4 layout's configs (K a multiple of 32)
  int replays = 25;
  bool alone = false;  // each launch timed alone (LaunchTiming::kAlone), not back to back
  std::string out_dir;
};

struct Row {
  std::string model, routing, method, config;
  int gemm = 0, experts = 0, n = 0, k = 0, active = 0;
  int64_t tokens = 0, rows = 0;
  double us = 0, tflops = 0, weight_gbps = 0;
};

// The config grouped_gemm() picks on the exact-scale layout for this case, knowing only the row count (as
// W4A8Method's pick on the lookup-table layout).
std::string exact_layout_pick(BenchCase const& c, int64_t total_rows) {
  GroupedGemmArgs args;
  args.shape = {c.num_experts, c.n, c.k, 128};
  args.layout = PackedLayout::kExactScales;
  args.total_rows = total_rows;
  return select_gemm_config(args);
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
        for (auto const& m : tools::benchmark_models()) o.models.push_back(m.name);
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
    } else if (arg == "--configs") {
      o.configs = split(value());
    } else if (arg == "--exact") {
      o.exact = true;
    } else if (arg == "--mxfp4") {
      o.mxfp4 = true;
    } else if (arg == "--no-baselines") {
      o.baselines = false;
    } else if (arg == "--alone") {
      o.alone = true;
    } else if (arg == "--replays") {
      o.replays = std::stoi(value());
    } else if (arg == "--out") {
      o.out_dir = value();
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: w4a8moe_gemm_bench [--models qwen3-30b-a3b,deepseek-v3-ep8,mixtral-8x7b|all] [--tokens 1,16|all]\n"
          "                          [--routing uniform,skewed] [--gemm 1,2] [--sweep | --configs A,B]\n"
          "                          [--no-baselines] [--exact] [--mxfp4] [--alone] [--replays 25] [--out DIR]\n"
          "  models: the benchmark models, or any preset of the w4a8moe program (gpt-oss-120b: all experts local)\n"
          "  configs: of any layout; --exact / --mxfp4: all of the exact-scale / MXFP4 layout's\n"
          "  --alone: each launch timed alone (a graph of one launch after an L2 flush), not back to back\n");
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
  make_output_dir(o.out_dir);
  return o;
}

tools::BenchModel find_model(std::string const& name) {
  if (tools::BenchModel const* model = tools::find_benchmark_model(name)) return *model;
  if (tools::ModelPreset const* preset = tools::find_model_preset(name)) return {preset->name, preset->shape};
  fail("unknown model '" + name + "'");
}

// Rows per local expert: tokens route over all global experts; this rank holds the first local experts of them.
std::vector<int64_t> routing_counts(MoeShape const& s, int64_t tokens, std::string const& routing) {
  std::mt19937_64 rng(uint64_t(tokens) * 7919 + s.num_experts);
  auto counts = routing == "uniform"
                    ? reference::uniform_routing_counts(s.num_experts, tokens, s.top_k, rng)
                    : reference::skewed_routing_counts(s.num_experts, tokens, s.top_k, 4, 20.0, rng);
  counts.resize(s.num_local_experts);
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  set_program_name("w4a8moe_gemm_bench");
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

  std::vector<std::string> w4a8_configs = options.configs;
  if (options.sweep) w4a8_configs = gemm_config_names();
  // The exact-scale and MXFP4 layouts' configs: all of a layout's with --exact / --mxfp4, and those named in --configs.
  std::vector<std::string> block_layout_configs;
  for (PackedLayout layout : {PackedLayout::kExactScales, PackedLayout::kMxfp4}) {
    for (auto const& config : gemm_config_names(layout)) {
      bool const all = layout == PackedLayout::kExactScales ? options.exact : options.mxfp4;
      if (all || std::find(options.configs.begin(), options.configs.end(), config) != options.configs.end()) {
        block_layout_configs.push_back(config);
      }
    }
  }
  std::vector<Row> rows;
  std::printf("%-16s %4s %6s %-8s | %-18s %9s %7s %6s %5s | %9s %9s %9s %9s %9s\n", "model", "gemm", "tokens",
              "routing", "w4a8 config", "us", "TFLOP/s", "GB/s", "%HBM", "naive/x", "w8a8/x", "w4a16/x", "bf16/x",
              "best/x");
  for (auto const& model_name : options.models) {
    MoeShape const model = find_model(model_name).shape;
    for (auto const& routing : options.routings) {
      for (int64_t tokens : options.tokens) {
        auto const counts = routing_counts(model, tokens, routing);
        for (int gemm : options.gemms) {
          BenchCase c;
          c.num_experts = model.num_local_experts;
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
            c.weight_sets = options.alone ? 1 : weight_sets_past_l2(method, c, prop.l2CacheSize);
            Timing const t = time_method(method, c, options.replays, stream,
                                         options.alone ? LaunchTiming::kAlone : LaunchTiming::kBackToBack);
            Row row{model_name, routing, method.name(), config, gemm, c.num_experts, c.n, c.k, active, tokens,
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
          auto chosen = make_w4a8_method("");
          Row const main = measure(*chosen, "");
          std::string const chosen_config = w4a8_chosen_config(*chosen);
          rows.back().config = chosen_config;
          auto naive = make_w4a8_method("128x16_1x1_coop");
          double const naive_us = measure(*naive, "128x16_1x1_coop").us;
          double best_w4a8 = main.us;
          std::string best_config = chosen_config;
          for (auto const& config : w4a8_configs) {
            bool const block_layout =
                std::find(block_layout_configs.begin(), block_layout_configs.end(), config) != block_layout_configs.end();
            if (block_layout) continue;  // timed below, on its own layout's packing
            auto m = make_w4a8_method(config);
            double const us = measure(*m, config).us;
            if (us < best_w4a8) best_w4a8 = us, best_config = config;
            if (!options.configs.empty()) std::printf("    %-20s %9.2f us\n", config.c_str(), us);
          }
          std::string const exact_pick = options.exact ? exact_layout_pick(c, total_rows) : std::string();
          for (auto const& config : block_layout_configs) {
            auto m = make_exact_method(config);
            Row const row = measure(*m, m->name());
            std::printf("    %-20s %9.2f us  %7.0f GB/s%s\n", m->name().c_str(), row.us, row.weight_gbps,
                        config == exact_pick ? "  (the exact layout's pick)" : "");
            if (config == exact_pick) {  // the row an engine on the exact-scale layout gets, under its own name
              rows.push_back(row);
              rows.back().method = "w4a8_exact";
              rows.back().config = config;
            }
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
          double const gbps = active * chosen->weight_bytes_per_expert(c.n, c.k) / (main.us * 1e3);
          std::printf("%-16s %4d %6lld %-8s | %-18s %9.2f %7.1f %6.0f %5.0f | %9.2f %9.2f %9.2f %9.2f %9.2f%s\n",
                      model_name.c_str(), gemm, static_cast<long long>(tokens), routing.c_str(),
                      chosen_config.c_str(), main.us, flops / (main.us * 1e6), gbps, 100.0 * gbps * 1e9 / hbm,
                      naive_us / main.us, w8a8 / main.us, w4a16 / main.us, bf16 / main.us, best_w4a8 / main.us,
                      options.sweep ? (" (best " + best_config + ")").c_str() : "");
          std::fflush(stdout);
        }
      }
    }
  }

  if (!options.out_dir.empty()) {
    std::string const stem = options.out_dir + "/" + today() + "-" + card_slug(prop.name);
    tools::Json doc = {{"device", prop.name},
                       {"sm_count", prop.multiProcessorCount},
                       {"hbm_read_gbps", hbm / 1e9},
                       {"launch_timing", options.alone ? "alone" : "back_to_back"},
                       {"rows", tools::Json::array()}};
    for (auto const& r : rows) {
      doc["rows"].push_back({{"model", r.model},           {"gemm", r.gemm},
                             {"tokens", r.tokens},         {"routing", r.routing},
                             {"experts", r.experts},       {"active_experts", r.active},
                             {"n", r.n},                   {"k", r.k},
                             {"rows", r.rows},             {"method", r.method},
                             {"config", r.config},         {"us", std::isnan(r.us) ? -1.0 : r.us},
                             {"tflops", r.tflops},         {"weight_gbps", r.weight_gbps}});
    }
    if (!tools::write_json(doc, stem + ".json")) fail("cannot write " + stem + ".json");
    std::printf("wrote %s.json\n", stem.c_str());
  }
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace w4a8moe::bench

int main(int argc, char** argv) { return w4a8moe::bench::main(argc, argv); }
