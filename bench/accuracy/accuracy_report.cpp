// Accuracy report: how far W4A8 as this project computes it lands from the bf16 layer, beside W4A16 and W8A8, and
// what the grouped GEMM's own numerics (fp8 fast accumulation, the split scales) add. Two parts:
//
//   layer   One MoE layer per model shape (a few experts, softmax top-k routing, a few hundred tokens) on
//           realistic weights and hidden states (realistic_data.h), computed on the CPU under each number format
//           of layer_numerics.h with the kernels' roundings, against the bf16 layer (bf16 weights and activations,
//           float64 sums). Measure: per-token relative L2 error of the layer output, mean / p99 / max over tokens.
//           The "w4a8" format is checked against the project's own reference (reference::moe_layer) on a few
//           tokens. With --gpu, moe_forward on the device is measured the same way.
//
//   kernel  The library's grouped GEMM on a Hopper GPU at K = 2048, 7168, 14336, every registered config, against
//           the exact result of the checkpoint's weights W = q * s_bf16 on the same fp8 activations, beside CPU
//           computations that separate the terms (gemm_numerics.h): the float64 reference of the kernel's math
//           (isolates the fp8 fast accumulation), an e4m3 group scale alone, the lookup tables rounded twice as
//           they were before bench/NOTES.md §51, and the alternative accumulation of TensorRT-LLM's fork (exact int4
//           -> fp8, per-128-chunk sums, group scale in fp32) through a tensor-core model (accumulation_models.h)
//           checked bit for bit against the kernel's own output.
//
//   w4a8moe_accuracy layer  [--models qwen3-30b-a3b,deepseek-v3,mixtral-8x7b] [--tokens 256] [--numerics LIST]
//                           [--gpu] [--seed 1] [--threads N] [--json FILE]
//       (--numerics: names from layer_numerics(); a format's same-weights baseline, w4a16 or mxfp4_a16, is added)
//   w4a8moe_accuracy kernel [--k 2048,7168,14336] [--experts 4] [--rows-per-expert 64] [--cpu-only] [--seed 1]
//                           [--threads N] [--json FILE]
//
// Markdown tables go to stdout, progress to stderr, the raw numbers to --json.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "accumulation_models.h"
#include "common/float_formats.h"
#include "error_stats.h"
#include "gemm_numerics.h"
#include "gpu_runs.h"
#include "json_output.h"
#include "layer_numerics.h"
#include "parallel.h"
#include "realistic_data.h"

namespace w4a8moe::accuracy {
namespace {

using nlohmann::ordered_json;

// Layer shapes: the models' H and I with a few experts; top-k as the model has it, capped at half the experts so
// that routing still chooses.
std::vector<MoeModel> const kModels = {
    {"qwen3-30b-a3b", 8, 4, 2048, 768},
    {"deepseek-v3", 8, 4, 7168, 2048},
    {"mixtral-8x7b", 8, 2, 4096, 14336},
};

// The GEMMs of those models at the three K of interest.
std::vector<GemmCase> const kGemmCases = {
    {"qwen3-30b-a3b gemm1", 1536, 2048, false},
    {"deepseek-v3 gemm1", 4096, 7168, false},
    {"mixtral-8x7b gemm2", 4096, 14336, true},
};

constexpr int kMirrorCheckTokens = 8;
constexpr int kModelBlocks[] = {16, 32};  // tensor-core steps tried: 16 or 32 products (one fp8 wgmma has K = 32)

struct Options {
  std::string mode;
  std::vector<std::string> models, numerics;
  std::vector<int> ks;
  int64_t tokens = 256;
  int experts = 4, rows_per_expert = 64;
  bool gpu = false, cpu_only = false;
  uint64_t seed = 1;
  std::string json_path;
};

[[noreturn]] void usage(std::string const& problem) {
  std::fprintf(stderr,
               "w4a8moe_accuracy: %s\n"
               "usage: w4a8moe_accuracy layer [--models LIST] [--tokens N] [--numerics LIST] [--gpu] [--seed S]"
               " [--threads N] [--json FILE]\n"
               "       w4a8moe_accuracy kernel [--k LIST] [--experts E] [--rows-per-expert R] [--cpu-only]"
               " [--seed S] [--threads N] [--json FILE]\n",
               problem.c_str());
  std::exit(2);
}

std::vector<std::string> split_list(std::string const& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

bool contains(std::vector<std::string> const& list, std::string const& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

// Every name given to `flag` must be one of `known`.
void check_names(std::vector<std::string> const& given, std::vector<std::string> const& known, char const* flag) {
  for (auto const& name : given) {
    if (contains(known, name)) continue;
    std::string list;
    for (auto const& k : known) list += (list.empty() ? "" : ", ") + k;
    usage(std::string(flag) + ": unknown '" + name + "' (known: " + list + ")");
  }
}

int64_t parse_integer(std::string const& text, char const* flag) {
  try {
    size_t used = 0;
    long long const value = std::stoll(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (std::exception const&) {
  }
  usage(std::string(flag) + " needs a positive integer, got '" + text + "'");
}

Options parse_options(int argc, char** argv) {
  if (argc < 2) usage("no mode given");
  Options o;
  o.mode = argv[1];
  if (o.mode != "layer" && o.mode != "kernel") usage("unknown mode '" + o.mode + "'");
  for (int i = 2; i < argc; ++i) {
    std::string const flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--models") o.models = split_list(value());
    else if (flag == "--numerics") o.numerics = split_list(value());
    else if (flag == "--tokens") o.tokens = parse_integer(value(), "--tokens");
    else if (flag == "--k") {
      for (auto const& k : split_list(value())) o.ks.push_back(int(parse_integer(k, "--k")));
    } else if (flag == "--experts") o.experts = int(parse_integer(value(), "--experts"));
    else if (flag == "--rows-per-expert") o.rows_per_expert = int(parse_integer(value(), "--rows-per-expert"));
    else if (flag == "--gpu") o.gpu = true;
    else if (flag == "--cpu-only") o.cpu_only = true;
    else if (flag == "--seed") o.seed = uint64_t(parse_integer(value(), "--seed"));
    else if (flag == "--threads") worker_threads() = int(parse_integer(value(), "--threads"));
    else if (flag == "--json") o.json_path = value();
    else usage("unknown option '" + flag + "'");
  }
  std::vector<std::string> model_names, numerics_names, ks;
  for (auto const& model : kModels) model_names.push_back(model.name);
  for (size_t i = 1; i < layer_numerics().size(); ++i) numerics_names.push_back(layer_numerics()[i].name);
  for (auto const& c : kGemmCases) ks.push_back(std::to_string(c.k));
  check_names(o.models, model_names, "--models");
  check_names(o.numerics, numerics_names, "--numerics");
  std::vector<std::string> given_ks;
  for (int k : o.ks) given_ks.push_back(std::to_string(k));
  check_names(given_ks, ks, "--k");
  return o;
}

class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void progress(std::string const& what, Stopwatch const& watch) {
  std::fprintf(stderr, "  %-64s %7.1f s\n", what.c_str(), watch.seconds());
}

ordered_json to_json(ErrorStats const& s) { return {{"mean", s.mean}, {"p99", s.p99}, {"max", s.max}}; }

std::string percent(double x) {
  char text[32];
  std::snprintf(text, sizeof text, x < 0.1 ? "%.3f" : "%.2f", 100.0 * x);
  return text;
}

// "mean / p99" in percent.
std::string cell(ErrorStats const& s) { return percent(s.mean) + " / " + percent(s.p99); }

// The raw numbers in the layout of every JSON the tools write (tools/json_output.h).
void write_json(ordered_json const& doc, std::string const& path) {
  if (!path.empty() && !tools::write_json(doc, path)) throw std::runtime_error("cannot write " + path);
}

// --- layer ----------------------------------------------------------------------------------------------------

struct LayerRow {
  std::string name, description;
  std::map<std::string, ErrorStats> vs_bf16, vs_same_weights;  // by model; the latter against same_weights_baseline
};

bool uses_int4(LayerNumerics const& numerics) {
  return numerics.weights != WeightNumerics::kBF16 && numerics.weights != WeightNumerics::kFP8PerChannel &&
         numerics.weights != WeightNumerics::kMxfp4;
}

// The format a format's own share of the error is measured against, on the same quantised weights ("" none): W4A16
// for the int4 formats, MXFP4 with bf16 activations for MXFP4 with fp8 ones.
std::string same_weights_baseline(LayerNumerics const& numerics) {
  if (numerics.weights == WeightNumerics::kMxfp4) {
    return numerics.activations == ActivationNumerics::kBF16 ? "" : "mxfp4_a16";
  }
  return uses_int4(numerics) && numerics.name != "w4a16" ? "w4a16" : "";
}

void print_layer_table(std::vector<LayerRow> const& rows, std::vector<MoeModel> const& models,
                       std::map<std::string, ErrorStats> LayerRow::*column) {
  std::printf("| numerics |");
  for (auto const& model : models) std::printf(" %s |", model.name.c_str());
  std::printf(" what |\n|---|");
  for (size_t i = 0; i < models.size(); ++i) std::printf("---|");
  std::printf("---|\n");
  for (auto const& row : rows) {
    auto const& by_model = row.*column;
    if (by_model.empty()) continue;
    std::printf("| %s |", row.name.c_str());
    for (auto const& model : models) {
      auto const found = by_model.find(model.name);
      std::printf(" %s |", found == by_model.end() ? "-" : cell(found->second).c_str());
    }
    std::printf(" %s |\n", row.description.c_str());
  }
}

void run_layer(Options const& o) {
  std::vector<MoeModel> models;
  for (auto const& model : kModels) {
    if (o.models.empty() || contains(o.models, model.name)) models.push_back(model);
  }
  // Measured against layer_numerics()[0], the bf16 layer. A format's same-weights baseline (W4A16 for the int4
  // formats, mxfp4_a16 for mxfp4_a8) is computed whenever the format is, so that its extra error over the weights'
  // own rounding can be measured too.
  auto wanted = [&](LayerNumerics const& numerics) { return o.numerics.empty() || contains(o.numerics, numerics.name); };
  std::vector<std::string> baselines;
  if (o.gpu) baselines.push_back("w4a16");
  for (auto const& numerics : layer_numerics()) {
    if (wanted(numerics) && !same_weights_baseline(numerics).empty()) {
      baselines.push_back(same_weights_baseline(numerics));
    }
  }
  std::vector<LayerNumerics> selected;
  for (size_t i = 1; i < layer_numerics().size(); ++i) {
    auto const& numerics = layer_numerics()[i];
    if (wanted(numerics) || contains(baselines, numerics.name)) selected.push_back(numerics);
  }
  std::string const device = o.gpu ? hopper_device_name() : "";

  std::vector<LayerRow> rows;
  for (auto const& numerics : selected) rows.push_back({numerics.name, numerics.description, {}, {}});
  if (o.gpu) rows.push_back({"w4a8_gpu", "moe_forward on " + device + " (bf16 output)", {}, {}});

  ordered_json doc;
  doc["part"] = "layer";
  doc["measure"] = "per-token relative L2 error of the layer output; mean, p99, max over tokens";
  doc["device"] = o.gpu ? ordered_json(device) : ordered_json(nullptr);
  doc["threads"] = worker_threads();
  doc["seed"] = o.seed;
  doc["weights"] = weight_statistics_description();
  doc["hidden_states"] = hidden_state_statistics_description();
  doc["quantizer"] = "RoundToNearestQuantizer: int4 symmetric, group 128, scale = bf16(max|w| / 7)";
  doc["numerics"] = ordered_json::array();
  for (auto const& n : layer_numerics()) doc["numerics"].push_back({{"name", n.name}, {"description", n.description}});
  doc["models"] = ordered_json::array();

  for (auto const& model : models) {
    std::fprintf(stderr, "%s: E=%d top-%d H=%d I=%d, %lld tokens, %d threads\n", model.name.c_str(), model.experts,
                 model.top_k, model.hidden, model.inter, static_cast<long long>(o.tokens), worker_threads());
    Stopwatch watch;
    LayerProblem const problem = make_layer_problem(model, o.tokens, o.seed);
    progress("weights, RTN, hidden states, routing", watch);
    auto const bf16 = layer_output(problem, layer_numerics()[0]);
    progress("bf16 layer", watch);

    ordered_json entry = {{"name", model.name},   {"experts", model.experts}, {"top_k", model.top_k},
                          {"hidden", model.hidden}, {"inter", model.inter},   {"tokens", o.tokens}};
    ordered_json vs_bf16 = ordered_json::object(), vs_same_weights = ordered_json::object();
    std::map<std::string, std::vector<double>> baseline_outputs;
    std::vector<double> cpu_w4a8;
    auto measure = [&](LayerRow& row, auto const& out, std::string const& baseline) {
      row.vs_bf16[model.name] = relative_l2_by_row(out, bf16, o.tokens, model.hidden);
      vs_bf16[row.name] = to_json(row.vs_bf16[model.name]);
      if (!baseline.empty()) {
        row.vs_same_weights[model.name] =
            relative_l2_by_row(out, baseline_outputs.at(baseline), o.tokens, model.hidden);
        vs_same_weights[row.name] = to_json(row.vs_same_weights[model.name]);
      }
    };
    for (size_t i = 0; i < selected.size(); ++i) {  // layer_numerics() lists each baseline before its formats
      auto const out = layer_output(problem, selected[i]);
      if (contains(baselines, selected[i].name)) baseline_outputs[selected[i].name] = out;
      if (selected[i].name == "w4a8") cpu_w4a8 = out;
      measure(rows[i], out, same_weights_baseline(selected[i]));
      progress(selected[i].name, watch);
    }
    if (o.gpu) {
      auto const gpu = run_moe_forward(problem);
      measure(rows.back(), gpu, "w4a16");
      if (!cpu_w4a8.empty()) {
        entry["w4a8_gpu_vs_cpu_w4a8"] = to_json(relative_l2_by_row(gpu, cpu_w4a8, o.tokens, model.hidden));
      }
      progress("moe_forward on the GPU", watch);
    }
    entry["vs_bf16"] = vs_bf16;
    entry["vs_same_weights"] = vs_same_weights;
    if (!cpu_w4a8.empty()) {
      // The report's w4a8 must be the project's: compare with reference::moe_layer, which differs only by its final
      // bf16 cast (and its fp32 sum over the k experts).
      std::vector<int64_t> tokens;
      for (int64_t t = 0; t < std::min<int64_t>(kMirrorCheckTokens, o.tokens); ++t) tokens.push_back(t);
      auto const project = project_reference_output(problem, tokens);
      std::vector<double> const mine(cpu_w4a8.begin(), cpu_w4a8.begin() + tokens.size() * model.hidden);
      ErrorStats const mirror = relative_l2_by_row(mine, project, int64_t(tokens.size()), model.hidden);
      entry["w4a8_vs_project_reference"] = {{"tokens", tokens.size()}, {"relative_l2", to_json(mirror)}};
      progress("w4a8 against reference::moe_layer", watch);
    }
    doc["models"].push_back(entry);
    write_json(doc, o.json_path);  // after every model, so a long run leaves what it finished
  }

  std::printf("Per-token relative L2 error of the layer output against the bf16 layer, mean / p99 over %lld tokens "
              "(%%):\n\n",
              static_cast<long long>(o.tokens));
  print_layer_table(rows, models, &LayerRow::vs_bf16);
  std::printf("\nEach quantised format against the same weights with bf16 activations (W4A16 for int4, mxfp4_a16 for "
              "MXFP4): what each adds on top of the weights' rounding (%%):\n\n");
  print_layer_table(rows, models, &LayerRow::vs_same_weights);
  std::printf("\n");
  for (auto const& entry : doc["models"]) {
    std::string const name = entry["name"].get<std::string>();
    if (entry.contains("w4a8_vs_project_reference")) {
      auto const& check = entry["w4a8_vs_project_reference"];
      std::printf("%s: w4a8 against reference::moe_layer (%d tokens): max %s %%\n", name.c_str(),
                  check["tokens"].get<int>(), percent(check["relative_l2"]["max"].get<double>()).c_str());
    }
    if (entry.contains("w4a8_gpu_vs_cpu_w4a8")) {
      std::printf("%s: moe_forward against the CPU w4a8 layer: mean %s %%, max %s %%\n", name.c_str(),
                  percent(entry["w4a8_gpu_vs_cpu_w4a8"]["mean"].get<double>()).c_str(),
                  percent(entry["w4a8_gpu_vs_cpu_w4a8"]["max"].get<double>()).c_str());
    }
  }
}

// --- kernel ---------------------------------------------------------------------------------------------------

// Fraction of elements where two bf16 outputs are the same value.
double identical_fraction(std::vector<double> const& model, std::vector<float> const& gpu) {
  size_t same = 0;
  for (size_t i = 0; i < gpu.size(); ++i) same += model[i] == double(gpu[i]);
  return gpu.empty() ? 0.0 : double(same) / double(gpu.size());
}

std::vector<double> rounded_to_bf16(std::vector<double> const& values) {
  std::vector<double> rounded(values.size());
  for (size_t i = 0; i < values.size(); ++i) rounded[i] = bf16_to_float(float_to_bf16(float(values[i])));
  return rounded;
}

void run_kernel(Options const& o) {
  std::vector<GemmCase> cases;
  for (auto const& c : kGemmCases) {
    if (o.ks.empty() || std::find(o.ks.begin(), o.ks.end(), c.k) != o.ks.end()) cases.push_back(c);
  }
  std::string const device = o.cpu_only ? "" : hopper_device_name();

  ordered_json doc;
  doc["part"] = "kernel";
  doc["measure"] = "per-row relative L2 error; mean, p99, max over rows";
  doc["target"] = "exact float64 result of the checkpoint's weights W = q * s_bf16 on the same fp8 activations";
  doc["device"] = o.cpu_only ? ordered_json(nullptr) : ordered_json(device);
  doc["threads"] = worker_threads();
  doc["seed"] = o.seed;
  doc["weights"] = weight_statistics_description();
  doc["hidden_states"] = hidden_state_statistics_description();
  doc["down_projection_inputs"] = intermediate_statistics_description();
  doc["tensor_core_model"] = "blocks of B products plus the accumulator aligned to the largest exponent, " +
                             std::to_string(kTensorCoreFractionBits) + " fraction bits, truncation";
  doc["cases"] = ordered_json::array();

  struct TableRow {
    GemmCase gemm_case;
    ordered_json summary;
  };
  std::vector<TableRow> table;
  for (auto const& gemm_case : cases) {
    std::fprintf(stderr, "%s: N=%d K=%d, %d experts x %d rows, %d threads\n", gemm_case.name.c_str(), gemm_case.n,
                 gemm_case.k, o.experts, o.rows_per_expert, worker_threads());
    Stopwatch watch;
    GemmProblem const p = make_gemm_problem(gemm_case, o.experts, o.rows_per_expert, o.seed);
    int64_t const rows = p.rows();
    int const n = gemm_case.n;
    auto stats = [&](auto const& got, auto const& want) { return relative_l2_by_row(got, want, rows, n); };
    progress("weights, RTN, activations", watch);

    auto const exact = exact_bf16_weight_output(p);
    auto const split_exact = split_scale_exact_qsg_output(p);
    auto const reference = fp64_reference_output(p);
    auto const double_rounding = double_rounding_lut_output(p);
    progress("exact, split-scale, float64 reference and double-rounding GEMMs", watch);
    std::map<int, std::vector<double>> kernel_model, chunked_model;
    for (int block : kModelBlocks) {
      kernel_model[block] = modelled_kernel_output(p, block);
      chunked_model[block] = modelled_chunked_output(p, block);
    }
    auto const chunked_exact = modelled_chunked_output(p, 0);
    progress("modelled kernel and alternative path", watch);

    ordered_json entry = {{"name", gemm_case.name}, {"n", n}, {"k", gemm_case.k}, {"experts", o.experts},
                          {"rows", rows}, {"inputs", gemm_case.down_projection ? "down_projection" : "hidden"}};
    ordered_json vs_exact = {
        {"fp64_reference", to_json(stats(reference, exact))},
        {"split_scales_exact_qsg", to_json(stats(split_exact, exact))},
        {"double_rounding_lut", to_json(stats(double_rounding, exact))},
        {"alternative_exact_chunks", to_json(stats(chunked_exact, exact))},
    };
    ordered_json vs_reference = {{"bf16_output_rounding", to_json(stats(rounded_to_bf16(reference), reference))}};
    for (int block : kModelBlocks) {
      std::string const b = std::to_string(block);
      vs_exact["model_kernel_block" + b] = to_json(stats(kernel_model[block], exact));
      vs_exact["alternative_model_block" + b] = to_json(stats(chunked_model[block], exact));
      vs_reference["model_kernel_block" + b] = to_json(stats(kernel_model[block], reference));
    }

    // The model block that reproduces the GPU best stands for the hardware in the summary; without a GPU, 32.
    int chosen_block = 32;
    if (!o.cpu_only) {
      auto const outputs = run_grouped_gemm_every_config(p);
      progress("grouped_gemm, " + std::to_string(outputs.size()) + " configs", watch);
      auto const& kernel = outputs.front().out;
      ordered_json configs = ordered_json::array();
      bool all_identical = true;
      for (auto const& output : outputs) {
        bool const identical = output.out == kernel;
        all_identical = all_identical && identical;
        configs.push_back({{"config", output.config},
                           {"identical_to_heuristic_pick", identical},
                           {"vs_exact", to_json(stats(output.out, exact))}});
      }
      entry["heuristic_config"] = outputs.front().config;
      entry["configs"] = configs;
      entry["all_configs_identical"] = all_identical;
      vs_exact["kernel"] = to_json(stats(kernel, exact));
      vs_reference["kernel"] = to_json(stats(kernel, reference));
      ordered_json agreement = ordered_json::object();
      double best = -1;
      for (int block : kModelBlocks) {
        double const same = identical_fraction(kernel_model[block], kernel);
        agreement["block" + std::to_string(block)] = {{"identical_fraction", same},
                                                      {"relative_l2", to_json(stats(kernel_model[block], kernel))}};
        if (same > best) best = same, chosen_block = block;
      }
      entry["model_vs_kernel"] = agreement;
    }
    entry["vs_exact"] = vs_exact;
    entry["vs_fp64_reference"] = vs_reference;
    entry["model_block_in_summary"] = chosen_block;
    doc["cases"].push_back(entry);
    table.push_back({gemm_case, entry});
    write_json(doc, o.json_path);
  }

  auto stat_cell = [](ordered_json const& s) {
    ErrorStats e;
    e.mean = s["mean"].get<double>();
    e.p99 = s["p99"].get<double>();
    e.max = s["max"].get<double>();
    return cell(e);
  };
  std::printf("Grouped GEMM numerics%s: per-row relative L2 error, mean / p99 over rows (%%).\n"
              "Against exact W = q * s_bf16 on the same fp8 activations unless the column says otherwise.\n\n",
              o.cpu_only ? " (CPU only)" : (" on " + device).c_str());
  std::printf("| GEMM | N x K | kernel | fp64 ref: e4m3(q*s/sc)*sc | q*sg*sc (e4m3 sg only) |"
              " e4m3(q*sg)*sc (tables before §51) | kernel vs fp64 ref | bf16 rounding of fp64 ref |"
              " model = kernel (bitwise) | alternative, model chunks | alternative, exact chunks |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto const& row : table) {
    auto const& e = row.summary;
    std::string const b = std::to_string(e["model_block_in_summary"].get<int>());
    bool const has_gpu = e["vs_exact"].contains("kernel");
    std::printf("| %s | %d x %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.gemm_case.name.c_str(),
                row.gemm_case.n, row.gemm_case.k, has_gpu ? stat_cell(e["vs_exact"]["kernel"]).c_str() : "-",
                stat_cell(e["vs_exact"]["fp64_reference"]).c_str(),
                stat_cell(e["vs_exact"]["split_scales_exact_qsg"]).c_str(),
                stat_cell(e["vs_exact"]["double_rounding_lut"]).c_str(),
                has_gpu ? stat_cell(e["vs_fp64_reference"]["kernel"]).c_str() : "-",
                stat_cell(e["vs_fp64_reference"]["bf16_output_rounding"]).c_str(),
                has_gpu ? (percent(e["model_vs_kernel"]["block" + b]["identical_fraction"].get<double>()) +
                           " (block " + b + ")").c_str()
                        : "-",
                stat_cell(e["vs_exact"]["alternative_model_block" + b]).c_str(),
                stat_cell(e["vs_exact"]["alternative_exact_chunks"]).c_str());
  }
}

}  // namespace
}  // namespace w4a8moe::accuracy

int main(int argc, char** argv) {
  using namespace w4a8moe::accuracy;
  Options const options = parse_options(argc, argv);
  try {
    if (options.mode == "layer") run_layer(options);
    else run_kernel(options);
  } catch (std::exception const& error) {
    std::fprintf(stderr, "w4a8moe_accuracy: %s\n", error.what());
    return 1;
  }
  return 0;
}
