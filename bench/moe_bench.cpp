// MoE layer benchmark: the total of the W4A8 layer (moe_forward) and its per-stage times, both from CUDA graph replays
// with the L2 flushed before each (tools/layer_timing.h), and the share of time outside the two GEMMs. Up to 8 tokens
// the layer can run as one launch, which has no stages: the stage times are always the staged path's, and there both
// paths' totals are timed ("staged", "1 launch"; "total" is the one MoePath::kAuto picks). In the same process and on
// the same routing, the same pipeline built from W8A8 grouped GEMMs (best of their configs): the staged total with its
// two W4A8 GEMMs (timed standalone the same way: launches back to back, as w4a8moe_gemm_bench times them, rotating
// through copies of the weights so that none is served from L2; a throughput, under which the library's launches start
// early and the W8A8 ones do not, bench_timing.h) swapped for the W8A8 ones; everything outside the GEMMs would be the
// same in a W8A8 pipeline. Also the launches (nodes of the layer's graph) and the read-once measure: the layer's time
// over the time to read its active experts' bytes once (int4 weights, one byte per group scale, fp32 channel scales,
// both GEMMs) at the streaming read bandwidth measured in the same run.
// gpt-oss-120b runs on its MXFP4 layout with its clamped SwiGLU and expert biases (random MXFP4 codes, block scales
// 2^-7..2^-2; read-once counts one e8m0 byte per 32 weights) whatever --layouts says; the int4 models skip "mxfp4".
//
// Before each layer replay L2 is flushed by reading (--l2-flush write: by writing) and the SMs' instruction caches are
// cleared; --l2-flush none leaves both warm (a diagnostic floor whose times the targets do not take; tools/l2_flush.h).
//
// --draws N times each case on N draws of the router's logits (draw 0 is the one every run times): an expert-parallel
// rank's count of local experts, and so its time, varies with the draw. --gemm1-config / --gemm2-config force the
// GEMMs' kernels (`w4a8moe list-configs`), in the layer and standalone; the layer is then staged.
//
//   w4a8moe_moe_bench                                     Qwen3-30B-A3B at 1, 16, 128, 1024, 8192 tokens
//   w4a8moe_moe_bench --models all --tokens 16,8192 --out bench/results
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "baselines/bench_fill.h"
#include "bench_timing.h"
#include "common/device_buffer.h"
#include "common/device_info.h"
#include "layer_timing.h"
#include "json_output.h"
#include "method.h"
#include "model_presets.h"
#include "moe/decode_layer.h"
#include "reference/moe_reference.h"
#include "w4a8_method.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::bench {
namespace {

struct Model {
  std::string name;
  MoeShape shape;
  bool idle = false;     // the router never picks a local expert: what a rank without local tokens pays
  bool gpt_oss = false;  // MXFP4 experts, gpt-oss's SwiGLU and biases
};

constexpr char kGptOssModel[] = "gpt-oss-120b";

// The benchmark models, the DeepSeek-V3 rank once more as an idle one, and gpt-oss-120b (every expert local).
std::vector<Model> const kModels = [] {
  std::vector<Model> models;
  for (auto const& m : tools::benchmark_models()) {
    models.push_back({m.name, m.shape});
    if (m.shape.num_local_experts < m.shape.num_experts) models.push_back({m.name + "-idle", m.shape, true});
  }
  models.push_back({kGptOssModel, tools::find_model_preset(kGptOssModel)->shape, false, true});
  return models;
}();

DeviceBuffer random_packed(ExpertWeightShape const& shape, uint64_t seed, PackedLayout layout) {
  DeviceBuffer words(size_t(shape.num_experts) * shape.n * shape.k / 2);
  DeviceBuffer scales(size_t(shape.num_experts) * shape.n * (shape.k / 128) * 2);
  if (!words.ok() || !scales.ok()) fail("out of device memory for the weights");
  fill_random_bytes(words.get(), words.bytes(), seed);
  fill_uniform_bf16(scales.get(), scales.bytes() / 2, 0.001f, 0.01f, seed + 1);
  DeviceBuffer packed;
  Status const status = prepack_to_new_buffer(words.get(), scales.get(), shape, &packed, layout);
  if (!status.ok()) fail("prepack: " + status.to_string());
  return packed;
}

// Random MXFP4 experts: any byte is two valid e2m1 codes; block scales 2^-7..2^-2 (e8m0 120..125), the range of a
// checkpoint's, so that the folded e4m3 weights stay finite as they do for real weights.
DeviceBuffer random_packed_mxfp4(ExpertWeightShape const& shape, uint64_t seed) {
  DeviceBuffer blocks(size_t(shape.num_experts) * shape.n * shape.k / 2);
  if (!blocks.ok()) fail("out of device memory for the weights");
  fill_random_bytes(blocks.get(), blocks.bytes(), seed);
  std::vector<uint8_t> scale_bytes(size_t(shape.num_experts) * shape.n * (shape.k / 32));
  std::mt19937_64 rng(seed + 1);
  for (auto& b : scale_bytes) b = uint8_t(120 + rng() % 6);
  DeviceBuffer scales(scale_bytes);
  if (!scales.ok()) fail("out of device memory for the block scales");
  DeviceBuffer packed;
  Status const status = prepack_to_new_buffer(blocks.get(), scales.get(), shape, &packed, PackedLayout::kMxfp4);
  if (!status.ok()) fail("prepack: " + status.to_string());
  return packed;
}

struct Result {
  std::string model, layout;
  int64_t tokens = 0;
  int draw = 0;
  std::vector<double> stage_us;
  double total_us = 0, outside_share = 0;
  // Both paths timed alike in the same process wherever the layer can run as one launch (else 0).
  double staged_total_us = 0, one_launch_total_us = 0;
  std::string gemm1_config, gemm2_config;
  double w4a8_gemm1 = 0, w4a8_gemm2 = 0, w8a8_gemm1 = 0, w8a8_gemm2 = 0, w8a8_pipeline = 0;
  size_t launches = 0;
  int active_experts = 0;
  double active_expert_bytes = 0, read_us = 0;  // read_us: active_expert_bytes at the measured bandwidth
};

// The bytes a layer must read per expert that receives rows: int4 weights, one byte per (group, channel) scale (MXFP4:
// per 32 weights, its e8m0 block scales) and the fp32 channel scales of both GEMMs.
double expert_bytes(MoeShape const& s, PackedLayout layout) {
  double const weights_per_scale = layout == PackedLayout::kMxfp4 ? 32 : 128;
  auto gemm = [&](double n, double k) { return n * k / 2 + n * k / weights_per_scale + 4 * n; };
  return gemm(2.0 * s.inter, s.hidden) + gemm(s.hidden, s.inter);
}

// Best time over the configs of a baseline family on this case, each launch on weights not in L2.
double best_time(std::vector<std::string> const& configs, std::unique_ptr<Method> (*make)(std::string const&),
                 BenchCase const& c, size_t l2_bytes, cudaStream_t stream) {
  double best = INFINITY;
  for (auto const& config : configs) {
    auto method = make(config);
    BenchCase rotated = c;
    rotated.weight_sets = weight_sets_past_l2(*method, c, l2_bytes);
    Timing const t = time_method(*method, rotated, 15, stream);
    if (t.error.empty()) best = std::min(best, t.us);
  }
  return best;
}

// The one-launch layer's timeline: each block's globaltimer stamps at the phase boundaries (moe/decode_layer.h),
// relative to the first block's start, median and latest over the blocks, from one launch after cold caches (L2 and
// the instruction caches, tools/l2_flush.h).
void print_phases(MoeForwardArgs const& a, cudaStream_t stream) {
  int const sm_count = current_device_sm_count();
  moe::DecodeLayerProblem p = moe::decode_layer_problem(a, moe::plan_workspace(a.shape, a.num_tokens));
  int const blocks = moe::decode_layer_blocks_per_sm(p) * sm_count;
  DeviceBuffer stamps(size_t(blocks) * moe::kDecodeLayerStamps * sizeof(unsigned long long));
  DeviceBuffer flush(size_t(256) << 20);
  p.stamps = stamps.as<unsigned long long>();
  check_cuda(cudaMemsetAsync(stamps.get(), 0, stamps.bytes(), stream), "stamps");
  check_cuda(tools::flush_l2(tools::L2Flush::kRead, flush.get(), flush.bytes(), 0, stream), "L2 flush");
  check_cuda(moe::launch_decode_layer(p, sm_count, stream), "one-launch layer");
  check_cuda(cudaStreamSynchronize(stream), "one-launch layer");
  auto const t = stamps.to_host<unsigned long long>();
  unsigned long long origin = ~0ull;
  for (int b = 0; b < blocks; ++b) origin = std::min(origin, t[size_t(b) * moe::kDecodeLayerStamps]);
  std::printf("  phases (us from the first start, median / latest block):");
  for (int i = 0; i < moe::kDecodeLayerStamps; ++i) {
    std::vector<double> at;
    for (int b = 0; b < blocks; ++b) {
      unsigned long long const v = t[size_t(b) * moe::kDecodeLayerStamps + i];
      if (v >= origin && v - origin < 1000000000ull) at.push_back(1e-3 * double(v - origin));  // stamped
    }
    if (at.empty()) continue;
    std::sort(at.begin(), at.end());
    std::printf(" %s %.1f/%.1f", moe::decode_layer_stamp_names()[i], at[at.size() / 2], at.back());
  }
  std::printf("\n");
}

// How every case is timed, from the command line and the device.
struct RunOptions {
  int iters = 20;
  bool phases = false;
  tools::L2Flush l2_flush = tools::L2Flush::kRead;
  size_t l2_flush_bytes = 0;
  double hbm_bytes_per_s = 0;  // measured in the same run
  size_t l2_bytes = 0;         // the card's L2, which the standalone GEMMs' weight copies rotate past
  // GEMM config overrides (gemm_config_names()), for the layer and its standalone GEMMs: the layer is then staged, and
  // the one-launch path not timed.
  std::string gemm1_config, gemm2_config;
};

// `draw` picks the routing: 0 is the draw every earlier run timed; others draw other logits, so that an
// expert-parallel rank gets other counts of local experts (the layer's time depends on them, not on the token count
// alone).
Result run_case(Model const& model, int64_t tokens, PackedLayout layout, int draw, RunOptions const& o,
                cudaStream_t stream) {
  MoeShape const& s = model.shape;
  Result r;
  r.model = model.name;
  r.layout = packed_layout_name(layout);
  r.tokens = tokens;
  r.draw = draw;

  // Routing from random logits; the host copy of the rows per expert feeds the standalone GEMM timings.
  std::mt19937_64 rng(uint64_t(tokens) * 31 + s.num_experts + uint64_t(draw) * 1000003);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(size_t(tokens) * s.num_experts);
  for (auto& x : logits) x = normal(rng);
  // Experts [0, num_local_experts) are this rank's; an idle rank's never win the top-k.
  if (model.idle) {
    for (int64_t t = 0; t < tokens; ++t) {
      for (int e = 0; e < s.num_local_experts; ++e) logits[size_t(t) * s.num_experts + e] = -1e4f;
    }
  }
  auto const topk = reference::topk_softmax(logits, tokens, s.num_experts, s.top_k, true);
  std::vector<int32_t> map;
  if (s.num_local_experts < s.num_experts) {
    map.assign(s.num_experts, -1);
    for (int i = 0; i < s.num_local_experts; ++i) map[i] = i;
  }
  auto const routing = reference::routing_data(topk.ids, tokens, s.top_k, s.num_experts, s.num_local_experts, map);
  std::vector<int64_t> counts(s.num_local_experts);
  for (int e = 0; e < s.num_local_experts; ++e) {
    counts[e] = routing.offsets[e + 1] - routing.offsets[e];
    r.active_experts += counts[e] > 0;
  }
  r.active_expert_bytes = r.active_experts * expert_bytes(s, layout);
  r.read_us = r.active_expert_bytes / o.hbm_bytes_per_s * 1e6;

  ExpertWeightShape const shape1{s.num_local_experts, 2 * s.inter, s.hidden, 128};
  ExpertWeightShape const shape2{s.num_local_experts, s.hidden, s.inter, 128};
  bool const mxfp4 = layout == PackedLayout::kMxfp4;
  DeviceBuffer gemm1 = mxfp4 ? random_packed_mxfp4(shape1, 101) : random_packed(shape1, 101, layout);
  DeviceBuffer gemm2 = mxfp4 ? random_packed_mxfp4(shape2, 202) : random_packed(shape2, 202, layout);
  DeviceBuffer hidden(size_t(tokens) * s.hidden * 2), d_logits(logits), out(size_t(tokens) * s.hidden * 2);
  DeviceBuffer d_map(map.empty() ? std::vector<int32_t>{0} : map);
  DeviceBuffer workspace(moe_workspace_bytes(s, tokens));
  // gpt-oss's expert biases, fp32 as moe_forward takes them (a word each where the model has none).
  DeviceBuffer bias1(model.gpt_oss ? size_t(s.num_local_experts) * 2 * s.inter * 4 : 4);
  DeviceBuffer bias2(model.gpt_oss ? size_t(s.num_local_experts) * s.hidden * 4 : 4);
  for (auto* b : {&hidden, &d_logits, &out, &d_map, &workspace, &bias1, &bias2}) {
    if (!b->ok()) fail("out of device memory");
  }
  fill_uniform_bf16(hidden.get(), size_t(tokens) * s.hidden, -2.0f, 2.0f, 303);

  MoeForwardArgs a;
  a.shape = s;
  a.gemm1_weights = gemm1.get();
  a.gemm2_weights = gemm2.get();
  a.weight_layout = layout;
  a.num_tokens = tokens;
  a.hidden = hidden.get();
  a.router_logits = d_logits.get();
  a.expert_map = map.empty() ? nullptr : d_map.as<int32_t>();
  a.out = out.get();
  a.workspace = workspace.get();
  a.workspace_bytes = workspace.bytes();
  a.stream = stream;
  if (model.gpt_oss) {
    fill_uniform_floats(bias1.as<float>(), bias1.bytes() / 4, -0.1f, 0.1f, 304);
    fill_uniform_floats(bias2.as<float>(), bias2.bytes() / 4, -0.1f, 0.1f, 305);
    a.activation = MoeActivation::kGptOssSwiglu;
    a.swiglu_limit = float(kGptOssSwigluLimit);
    a.gemm1_bias = bias1.as<float>();
    a.gemm2_bias = bias2.as<float>();
  }
  a.gemm1_config = o.gemm1_config;
  a.gemm2_config = o.gemm2_config;
  MoeForwardKernels const kernels = moe_forward_kernels(a);
  r.gemm1_config = kernels.gemm1_config;
  r.gemm2_config = kernels.gemm2_config;

  tools::LayerTiming timing;
  Status const status = tools::time_layer(a, o.iters, &timing, o.l2_flush, o.l2_flush_bytes);
  if (!status.ok()) fail("timing the layer: " + status.to_string());
  r.stage_us = timing.stage_us;
  r.total_us = timing.total_us;
  r.outside_share = timing.outside_gemms;
  r.launches = timing.graph_nodes;
  r.staged_total_us = r.total_us;
  bool const one_launch_runs = moe::decode_layer_runs(layout, a.activation, a.gemm1_bias != nullptr);
  bool const configs_given = !o.gemm1_config.empty() || !o.gemm2_config.empty();
  if (one_launch_runs && !configs_given && moe::decode_layer_fits(s, tokens, true)) {  // kAuto's other path beside it
    bool const one_launch = r.launches == 1;
    a.path = one_launch ? MoePath::kStaged : MoePath::kOneLaunch;
    tools::LayerTiming other;
    Status const other_status = tools::time_layer(a, o.iters, &other, o.l2_flush, o.l2_flush_bytes);
    if (!other_status.ok()) fail("timing the other path: " + other_status.to_string());
    r.staged_total_us = one_launch ? other.total_us : r.total_us;
    r.one_launch_total_us = one_launch ? r.total_us : other.total_us;
    a.path = MoePath::kAuto;
    if (o.phases) print_phases(a, stream);
  }

  // Standalone GEMM times on this routing, W4A8 (the layer's configs) and W8A8 (best config), timed alike. None
  // for an idle rank (no rows), nor for the exact-scale layout (gemm_bench --exact times its kernels).
  if (r.active_experts == 0 || layout != PackedLayout::kLookupTable) {
    r.w8a8_pipeline = r.staged_total_us;
    return r;
  }
  BenchCase c1{s.num_local_experts, 2 * s.inter, s.hidden, counts, 1};
  BenchCase c2{s.num_local_experts, s.hidden, s.inter, counts, 1};
  r.w4a8_gemm1 = best_time({r.gemm1_config}, make_w4a8_method, c1, o.l2_bytes, stream);
  r.w4a8_gemm2 = best_time({r.gemm2_config}, make_w4a8_method, c2, o.l2_bytes, stream);
  r.w8a8_gemm1 = best_time(w8a8_config_names(), make_w8a8_method, c1, o.l2_bytes, stream);
  r.w8a8_gemm2 = best_time(w8a8_config_names(), make_w8a8_method, c2, o.l2_bytes, stream);
  r.w8a8_pipeline = r.staged_total_us - r.w4a8_gemm1 - r.w4a8_gemm2 + r.w8a8_gemm1 + r.w8a8_gemm2;
  return r;
}

// The rows so far as JSON at `path`, rewritten after every case: a case that fails keeps the ones before it.
void write_results(std::string const& path, char const* device, RunOptions const& o,
                   std::vector<Result> const& results) {
  tools::Json doc = {{"device", device},
                     {"hbm_read_gbps", o.hbm_bytes_per_s / 1e9},
                     {"l2_flush", tools::l2_flush_name(o.l2_flush)},
                     {"l2_flush_bytes", o.l2_flush == tools::L2Flush::kNone ? 0 : o.l2_flush_bytes},
                     {"instruction_caches_flushed", o.l2_flush != tools::L2Flush::kNone},
                     {"rows", tools::Json::array()}};
  for (auto const& r : results) {
    doc["rows"].push_back({{"model", r.model},
                           {"tokens", r.tokens},
                           {"draw", r.draw},
                           {"layout", r.layout},
                           {"stages_us", tools::stage_times(r.stage_us)},
                           {"total_graph_us", r.total_us},
                           {"staged_total_graph_us", r.staged_total_us},
                           {"one_launch_total_graph_us", r.one_launch_total_us},
                           {"outside_gemms_share", r.outside_share},
                           {"gemm1_config", r.gemm1_config},
                           {"gemm2_config", r.gemm2_config},
                           {"w4a8_gemm1_us", r.w4a8_gemm1},
                           {"w4a8_gemm2_us", r.w4a8_gemm2},
                           {"w8a8_gemm1_us", r.w8a8_gemm1},
                           {"w8a8_gemm2_us", r.w8a8_gemm2},
                           {"w8a8_pipeline_us", r.w8a8_pipeline},
                           {"launches", r.launches},
                           {"active_experts", r.active_experts},
                           {"active_expert_bytes", r.active_expert_bytes},
                           {"read_once_us", r.read_us}});
  }
  if (!tools::write_json(doc, path)) fail("cannot write " + path);
}

// The rows of a layout other than the default are marked with its name.
std::string layout_mark(PackedLayout layout) {
  return layout == PackedLayout::kLookupTable ? "" : std::string(" ") + packed_layout_name(layout);
}

}  // namespace

int main(int argc, char** argv) {
  set_program_name("w4a8moe_moe_bench");
  std::vector<std::string> models{"qwen3-30b-a3b"};
  std::vector<int64_t> tokens{1, 16, 128, 1024, 8192};
  std::vector<PackedLayout> layouts{PackedLayout::kLookupTable};
  RunOptions o;  // o.l2_flush_bytes: at least twice the L2 (tools::l2_flush_buffer_bytes)
  int draws = 1;
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    std::string const arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--models") {
      std::string const v = value();
      models.clear();
      for (auto const& m : kModels) {
        if (v == "all") models.push_back(m.name);
      }
      if (v != "all") models = split(v);
    } else if (arg == "--tokens") {
      tokens.clear();
      for (auto const& t : split(value())) tokens.push_back(std::stoll(t));
    } else if (arg == "--iters") {
      o.iters = std::max(1, std::stoi(value()));
    } else if (arg == "--draws") {
      draws = std::stoi(value());
      if (draws < 1 || draws > 64) fail("--draws: must be 1..64");
    } else if (arg == "--gemm1-config") {
      o.gemm1_config = value();
    } else if (arg == "--gemm2-config") {
      o.gemm2_config = value();
    } else if (arg == "--layouts") {
      layouts.clear();
      for (auto const& name : split(value())) {
        PackedLayout layout;
        Status const status = parse_packed_layout(name.c_str(), &layout, "--layouts");
        if (!status.ok()) fail(status.to_string());
        layouts.push_back(layout);
      }
    } else if (arg == "--phases") {
      o.phases = true;
    } else if (arg == "--l2-flush") {
      Status const status = tools::parse_l2_flush(value().c_str(), &o.l2_flush, "--l2-flush");
      if (!status.ok()) fail(status.to_string());
    } else if (arg == "--l2-flush-mb") {
      int64_t const mb = std::stoll(value());
      if (mb < 1 || mb > (int64_t(1) << 16)) fail("--l2-flush-mb: must be 1..65536");
      o.l2_flush_bytes = size_t(mb) << 20;
    } else if (arg == "--out") {
      out_dir = value();
    } else {
      fail("unknown argument " + arg +
           "; usage: w4a8moe_moe_bench [--models qwen3-30b-a3b,deepseek-v3-ep8,deepseek-v3-ep8-idle,mixtral-8x7b,"
           "gpt-oss-120b|all] [--tokens 1,16] [--layouts lookup,exact] [--draws 1] [--gemm1-config NAME] "
           "[--gemm2-config NAME] [--iters 20] [--phases] [--l2-flush write|read|none] [--l2-flush-mb MB] [--out DIR]");
    }
  }
  make_output_dir(out_dir);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) fail("no CUDA device: needs a Hopper GPU");
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "device properties");
  o.l2_flush_bytes = tools::l2_flush_buffer_bytes(o.l2_flush_bytes);
  o.l2_bytes = size_t(prop.l2CacheSize);
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  o.hbm_bytes_per_s = measure_hbm_read_bandwidth(size_t(4) << 30);
  std::printf("device: %s, streaming read %.0f GB/s\n", prop.name, o.hbm_bytes_per_s / 1e9);
  std::printf("%-16s %6s | %7s %7s %8s %7s %8s %7s | %9s %9s %9s %6s %8s %6s | %8s %8s %9s %6s\n", "model",
              "tokens", "route", "permute", "gemm1", "silu", "gemm2", "unperm", "total us", "staged", "1 launch",
              "out%", "launches", "/read",
              "w8a8 g1", "w8a8 g2", "w8a8 pipe", "w8a8/x");
  std::string const json_path =
      out_dir.empty() ? "" : out_dir + "/" + today() + "-" + card_slug(prop.name) + "-moe-layer.json";
  std::vector<Result> results;
  for (auto const& name : models) {
    Model const* model = nullptr;
    for (auto const& m : kModels) {
      if (m.name == name) model = &m;
    }
    if (!model) fail("unknown model " + name);
    // gpt-oss's experts have one layout; the int4 models take the others.
    std::vector<PackedLayout> model_layouts;
    for (PackedLayout layout : layouts) {
      if (layout != PackedLayout::kMxfp4) model_layouts.push_back(layout);
    }
    if (model->gpt_oss) model_layouts = {PackedLayout::kMxfp4};
    for (int64_t t : tokens) {
      for (PackedLayout layout : model_layouts) {
        for (int draw = 0; draw < draws; ++draw) {
          Result const r = run_case(*model, t, layout, draw, o, stream);
          results.push_back(r);
          std::string const draw_mark =
              draws > 1 ? " draw " + std::to_string(draw) + ", " + std::to_string(r.active_experts) + " experts" : "";
          std::printf(
              "%-16s %6lld%s%s | %7.1f %7.1f %8.1f %7.1f %8.1f %7.1f | %9.1f %9.1f %9.1f %5.1f%% %8zu %6.2f | %8.1f "
              "%8.1f %9.1f %6.2f\n",
              r.model.c_str(), static_cast<long long>(t), layout_mark(layout).c_str(), draw_mark.c_str(),
              r.stage_us[0], r.stage_us[1], r.stage_us[2], r.stage_us[3], r.stage_us[4], r.stage_us[5], r.total_us,
              r.staged_total_us, r.one_launch_total_us, 100 * r.outside_share, r.launches,
              r.read_us > 0 ? r.total_us / r.read_us : 0.0, r.w8a8_gemm1, r.w8a8_gemm2, r.w8a8_pipeline,
              r.w8a8_pipeline / r.total_us);
          std::fflush(stdout);
          if (!json_path.empty()) write_results(json_path, prop.name, o, results);
        }
      }
    }
  }
  if (!json_path.empty()) std::printf("wrote %s\n", json_path.c_str());
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace w4a8moe::bench

int main(int argc, char** argv) { return w4a8moe::bench::main(argc, argv); }
