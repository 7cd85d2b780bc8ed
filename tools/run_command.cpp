// `w4a8moe run`: builds a MoE layer on the GPU (random weights of a model preset, or a checkpoint's layer), runs it
// as an engine would (a CUDA graph, timed stage by stage), checks sampled tokens against the CPU reference and
// prints or writes the numbers.
#include "run_command.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli_args.h"
#include "common/device_buffer.h"
#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "gpt_oss_layer.h"
#include "layer_timing.h"
#include "json_output.h"
#include "layer_weights.h"
#include "model_presets.h"
#include "reference/moe_reference.h"
#include "run_options.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::tools {
namespace {

struct RunSetup {
  std::string description;
  MoeShape shape;
  bool renormalize = true;
  LayerExperts experts;             // int4 experts
  bool gpt_oss = false;             // gpt-oss: MXFP4 experts in mxfp4_experts, its SwiGLU and biases
  Mxfp4LayerExperts mxfp4_experts;
  double swiglu_limit = kGptOssSwigluLimit;
  std::vector<int32_t> expert_map;  // empty without expert parallelism
};

// The layer the options name, its weights built or read. The tokens are checked against the layer's top_k (the
// library's row rule) as soon as the shape is known, before any weights are drawn or gathered.
RunSetup setup_layer(RunOptions const& o) {
  RunSetup setup;
  int const threads = host_threads();
  if (!o.checkpoint.empty()) {
    std::string const& dir = o.checkpoint;
    ModelConfig config;
    check(read_model_config(dir + "/config.json", &config), "config.json");
    if (!config.w4a8 && !config.mxfp4) {
      die(dir + "/config.json: no W4A8 or MXFP4 quantization_config (quantize it first: w4a8moe quantize)");
    }
    setup.shape = {config.moe.num_experts, config.moe.num_experts, config.moe.experts_per_token,
                   config.moe.hidden_size, config.moe.intermediate_size};
    check(validate_moe_shape(setup.shape), "config.json's layer shape");
    check(check_run_tokens(o.tokens, setup.shape), "arguments");
    Checkpoint checkpoint;
    check(Checkpoint::open(dir, &checkpoint), "checkpoint");
    auto const start = std::chrono::steady_clock::now();
    setup.gpt_oss = config.mxfp4;
    if (setup.gpt_oss) {
      check(gather_mxfp4_layer_experts(checkpoint, config, o.layer, &setup.mxfp4_experts), "gathering the layer");
      if (config.moe.swiglu_limit > 0) setup.swiglu_limit = config.moe.swiglu_limit;
    } else {
      check(gather_layer_experts(checkpoint, config, o.layer, &setup.experts), "gathering the layer's experts");
    }
    setup.renormalize = config.moe.norm_topk_prob && o.renormalize;
    std::ostringstream text;
    text << dir << " layer " << o.layer << " (" << config.moe.model_type << "; read in " << seconds_since(start)
         << " s";
    if (config.moe.scoring != RouterScoring::kSoftmax || config.moe.num_expert_groups > 1) {
      text << "; NOTE: the model routes with sigmoid/group-limited scores, this run uses softmax top-k";
    }
    text << ")";
    setup.description = text.str();
    return setup;
  }
  setup.shape = o.shape;  // parse_run_options checked it and the tokens
  setup.gpt_oss = o.gpt_oss;
  setup.renormalize = o.renormalize;
  auto const start = std::chrono::steady_clock::now();
  if (setup.gpt_oss) {
    make_random_gpt_oss_layer(setup.shape, o.seed, threads, &setup.mxfp4_experts);
  } else {
    check(make_random_layer(setup.shape, o.seed, threads, &setup.experts), "random weights");
  }
  std::ostringstream text;
  text << (o.preset != nullptr ? o.preset->name : std::string("custom")) << " (random weights, "
       << (setup.gpt_oss ? "MXFP4" : "RTN W4A8 g128") << ", quantised in " << seconds_since(start) << " s)";
  setup.description = text.str();
  if (o.ep_ranks > 1) {
    setup.expert_map.assign(setup.shape.num_experts, -1);
    int const local = setup.shape.num_local_experts;
    for (int i = 0; i < local; ++i) setup.expert_map[o.rank * local + i] = i;
  }
  return setup;
}

DeviceBuffer prepack(std::vector<int32_t> const& weights, std::vector<uint16_t> const& scales,
                     ExpertWeightShape const& shape, PackedLayout layout) {
  DeviceBuffer d_weights(weights), d_scales(scales), packed;
  if (!d_weights.ok() || !d_scales.ok()) die("out of device memory for the weights");
  check(prepack_to_new_buffer(d_weights.get(), d_scales.get(), shape, &packed, layout), "prepack");
  return packed;
}


}  // namespace

int run_command(Args const& args) {
  if (args.has("help")) {
    std::printf("%s", run_help().c_str());
    return 0;
  }
  RunOptions o;
  check(parse_run_options(args, &o), "arguments");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    die("no CUDA device found: `run` needs a Hopper GPU (H100/H200)", 2);
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "device properties");
  if (prop.major != 9 || prop.minor != 0) {
    die(std::string("device '") + prop.name + "' is not a Hopper GPU (sm_90): the kernels need an H100/H200", 2);
  }
  int64_t const tokens = o.tokens;
  bool const fp16 = o.fp16;
  char const* const dtype = fp16 ? "fp16" : "bf16";
  int const iters = o.iters;
  PackedLayout layout = o.layout;

  RunSetup setup = setup_layer(o);
  if (setup.gpt_oss) {  // MXFP4 experts have one layout
    if (o.layout_given && layout != PackedLayout::kMxfp4) die("gpt-oss's MXFP4 experts run --layout mxfp4");
    layout = PackedLayout::kMxfp4;
  } else if (layout == PackedLayout::kMxfp4) {
    die("--layout mxfp4 takes MXFP4 experts: --model gpt-oss-20b or gpt-oss-120b, or a gpt-oss checkpoint");
  }
  MoeShape const& s = setup.shape;
  std::printf("w4a8moe run: %s\n", setup.description.c_str());
  std::printf("  layer: E=%d (local %d), top-%d, H=%d, I=%d; %lld tokens, %s, %s layout, %s\n", s.num_experts,
              s.num_local_experts, s.top_k, s.hidden, s.inter, static_cast<long long>(tokens), dtype,
              packed_layout_name(layout), prop.name);

  PackedGptOssLayer packed;  // int4 experts: the two GEMMs' buffers alone, no biases
  if (setup.gpt_oss) {
    check(pack_gpt_oss_layer(setup.mxfp4_experts, &packed), "prepack");
  } else {
    packed.gemm1 =
        prepack(setup.experts.gemm1_weights, setup.experts.gemm1_scales, setup.experts.gemm1_shape(), layout);
    packed.gemm2 =
        prepack(setup.experts.gemm2_weights, setup.experts.gemm2_scales, setup.experts.gemm2_shape(), layout);
  }
  DeviceBuffer const& gemm1 = packed.gemm1;
  DeviceBuffer const& gemm2 = packed.gemm2;
  double const packed_gb = double(gemm1.bytes() + gemm2.bytes()) / 1e9;

  // Inputs: hidden states N(0, 1) with a few outlier channels, router logits N(0, 1).
  std::mt19937_64 rng(o.seed + 17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint16_t> hidden_bits(size_t(tokens) * s.hidden);
  std::vector<float> hidden(hidden_bits.size()), logits(size_t(tokens) * s.num_experts);
  for (size_t i = 0; i < hidden.size(); ++i) {
    float const x = normal(rng) * ((i % 61 == 0) ? 6.0f : 1.0f);
    hidden_bits[i] = fp16 ? float_to_fp16(x) : float_to_bf16(x);
    hidden[i] = fp16 ? fp16_to_float(hidden_bits[i]) : bf16_to_float(hidden_bits[i]);
  }
  for (auto& x : logits) x = normal(rng);
  DeviceBuffer d_hidden(hidden_bits), d_logits(logits), d_out(size_t(tokens) * s.hidden * 2);
  DeviceBuffer d_map(setup.expert_map.empty() ? std::vector<int32_t>{0} : setup.expert_map);
  DeviceBuffer workspace(moe_workspace_bytes(s, tokens));
  for (auto* b : {&d_hidden, &d_logits, &d_out, &d_map, &workspace}) {
    if (!b->ok()) die("out of device memory for the activations and workspace");
  }

  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  MoeForwardArgs fa;
  fa.shape = s;
  fa.gemm1_weights = gemm1.get();
  fa.gemm2_weights = gemm2.get();
  fa.weight_layout = layout;
  if (setup.gpt_oss) {
    fa.activation = MoeActivation::kGptOssSwiglu;
    fa.swiglu_limit = float(setup.swiglu_limit);
    fa.gemm1_bias = packed.gemm1_bias.as<float>();
    fa.gemm2_bias = packed.gemm2_bias.as<float>();
  }
  fa.num_tokens = tokens;
  fa.hidden = d_hidden.get();
  fa.act_type = fp16 ? ActivationType::kFP16 : ActivationType::kBF16;
  fa.router_logits = d_logits.get();
  fa.renormalize = setup.renormalize;
  fa.expert_map = setup.expert_map.empty() ? nullptr : d_map.as<int32_t>();
  fa.out = d_out.get();
  fa.workspace = workspace.get();
  fa.workspace_bytes = workspace.bytes();
  fa.gemm1_config = o.gemm1_config;
  fa.gemm2_config = o.gemm2_config;
  fa.path = o.path;
  fa.stream = stream;
  MoeForwardKernels const kernels = moe_forward_kernels(fa);
  std::string const& config1 = kernels.gemm1_config;
  std::string const& config2 = kernels.gemm2_config;

  // Timed as an engine runs it: a CUDA graph of the whole forward, replayed, with events between the stages.
  LayerTiming timing;
  check(time_layer(fa, iters, &timing), "timing the layer");
  check(moe_forward(fa), "moe_forward");  // the output checked below, from a plain call
  check_cuda(cudaStreamSynchronize(stream), "moe_forward");

  bool const one_launch = timing.graph_nodes == 1;
  if (one_launch) {
    std::printf("  weights: %.2f GB packed; kernels: the one-launch layer (staged path: gemm1 %s, gemm2 %s)\n",
                packed_gb, config1.c_str(), config2.c_str());
  } else {
    std::printf("  weights: %.2f GB packed; kernels: gemm1 %s, gemm2 %s\n", packed_gb, config1.c_str(),
                config2.c_str());
  }
  double stages_total = 0;
  for (double us : timing.stage_us) stages_total += us;
  std::printf("\n  %-18s %10s %8s   (CUDA graph replays, median of %d%s)\n", "stage", "us", "share", iters,
              one_launch ? "; the staged path's stages" : "");
  for (int st = 0; st < kMoeStageCount; ++st) {
    std::printf("  %-18s %10.1f %7.1f%%\n", moe_stage_name(st), timing.stage_us[st],
                100.0 * timing.stage_us[st] / stages_total);
  }
  std::printf("  %-18s %10.1f   outside the GEMMs: %.1f%%; %.0f tokens/s; %zu graph nodes\n", "total", timing.total_us,
              100.0 * timing.outside_gemms, double(tokens) / (timing.total_us * 1e-6), timing.graph_nodes);

  // Check a sample of tokens against the CPU reference.
  int const check_tokens = int(std::min<int64_t>(tokens, o.check_tokens));  // a sample, at most every token
  double worst = 0.0;
  bool passed = true;
  if (check_tokens > 0) {
    auto const bits = d_out.to_host<uint16_t>();
    auto const topk = reference::topk_softmax(logits, tokens, s.num_experts, s.top_k, setup.renormalize);
    std::vector<int64_t> sample;
    for (int i = 0; i < check_tokens; ++i) sample.push_back(int64_t(i) * tokens / check_tokens);
    std::vector<float> ref;  // [sample.size(), H]
    if (setup.gpt_oss) {
      ref = gpt_oss_reference_tokens(setup.mxfp4_experts, hidden, topk, s.top_k, setup.swiglu_limit, fp16, sample,
                                     setup.expert_map);
    } else {
      reference::MoeLayerWeights weights;
      weights.gemm1 = unpack_for_reference(setup.experts.gemm1_weights, setup.experts.gemm1_scales,
                                           setup.experts.gemm1_shape());
      weights.gemm2 = unpack_for_reference(setup.experts.gemm2_weights, setup.experts.gemm2_scales,
                                           setup.experts.gemm2_shape());
      if (layout == PackedLayout::kExactScales) {  // the checkpoint's bf16 scales as they are, products unrounded
        reference::hold_exact_scales(&weights.gemm1, setup.experts.gemm1_scales);
        reference::hold_exact_scales(&weights.gemm2, setup.experts.gemm2_scales);
      }
      ref = reference::moe_layer(hidden, topk, s.top_k, weights, setup.expert_map, false, fp16, sample,
                                 host_threads());
    }
    for (size_t i = 0; i < sample.size(); ++i) {
      double err = 0, norm = 0;
      for (int c = 0; c < s.hidden; ++c) {
        uint16_t const b = bits[size_t(sample[i]) * s.hidden + c];
        double const g = fp16 ? fp16_to_float(b) : bf16_to_float(b), r = ref[i * s.hidden + c];
        if (!std::isfinite(g)) passed = false;
        err += (g - r) * (g - r);
        norm += r * r;
      }
      double const relative = norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
      if (std::isnan(relative) || relative > worst) worst = relative;  // a NaN stays, and fails the check
    }
    passed = passed && worst <= 6e-2;  // fp8 fast accumulation; see tests/gpu/moe_gpu_test.cu for the tolerance
    std::printf("\n  check: %d tokens against the CPU reference: worst relative error %.2e (limit 6e-2): %s\n",
                check_tokens, worst, passed ? "OK" : "FAILED");
  }

  if (!o.json.empty()) {
    tools::Json const doc = {{"device", prop.name},
                             {"layer", setup.description},
                             {"experts", s.num_experts},
                             {"local_experts", s.num_local_experts},
                             {"top_k", s.top_k},
                             {"hidden", s.hidden},
                             {"inter", s.inter},
                             {"tokens", tokens},
                             {"dtype", dtype},
                             {"layout", packed_layout_name(layout)},
                             {"gemm1_config", config1},
                             {"gemm2_config", config2},
                             {"one_launch", one_launch},
                             {"stages_us", tools::stage_times(timing.stage_us)},
                             {"total_us", timing.total_us},
                             {"outside_gemms_share", timing.outside_gemms},
                             {"graph_nodes", timing.graph_nodes},
                             {"tokens_per_s", double(tokens) / (timing.total_us * 1e-6)},
                             {"check_tokens", check_tokens},
                             {"check_worst_relative_error", worst},
                             {"check_passed", passed}};
    // One line: runs append to a JSON Lines file (scripts/gpu-check.sh).
    if (!tools::write_json(doc, o.json, /*one_line=*/true)) die("cannot write " + o.json);
    std::printf("  wrote %s\n", o.json.c_str());
  }
  cudaStreamDestroy(stream);
  return passed ? 0 : 3;
}

}  // namespace w4a8moe::tools
