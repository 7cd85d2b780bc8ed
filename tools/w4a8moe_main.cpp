// w4a8moe: the project's command-line program.
//
//   w4a8moe run --model qwen3-30b-a3b --tokens 8192          a layer with random weights quantised the real way
//   w4a8moe run --checkpoint DIR --layer 3 --tokens 64       one layer of a compressed-tensors W4A8 checkpoint
//   w4a8moe run --model gpt-oss-120b --tokens 16             gpt-oss: MXFP4 experts, its SwiGLU and biases
//   w4a8moe quantize IN OUT [--config config.json]           bf16/fp16/fp32 MoE safetensors -> W4A8 checkpoint
//   w4a8moe list-configs                                      the grouped GEMM kernels
//
// `run` builds the layer on the GPU, runs it, checks a sample of tokens against the CPU reference, and prints a
// per-stage time table, the total, tokens per second and the kernels chosen; --json FILE writes the same numbers.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "cli_args.h"
#include "run_command.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::tools {
namespace {

// --- quantize, list-configs ------------------------------------------------------------------------------------------

int quantize_command(Args const& args) {
  char const* const help =
      "usage: w4a8moe quantize INPUT OUTPUT_DIR [--config config.json] [--shard-bytes N]\n"
      "  INPUT: a safetensors file, a directory with model.safetensors(.index.json), or an index file.\n"
      "  OUTPUT_DIR: created if missing; must not hold a checkpoint already (old and new files would mix).\n"
      "  Routed expert weights (bf16/fp16/fp32) become compressed-tensors W4A8 (RTN, symmetric, group 128);\n"
      "  every other tensor is copied; config.json gets the quantization_config.\n";
  if (args.has("help") || args.positional().size() != 2) {
    std::printf("%s", help);
    return args.has("help") ? 0 : 1;
  }
  args.reject_unknown({"config", "shard-bytes", "help"});
  QuantizeOptions options;
  options.input = args.positional()[0];
  options.output_dir = args.positional()[1];
  options.input_config = args.get("config");
  int64_t shard_bytes = 0;  // 0: one file
  check(args.integer_in("shard-bytes", 0, 0, std::numeric_limits<int64_t>::max(), &shard_bytes), "arguments");
  options.max_shard_bytes = uint64_t(shard_bytes);
  QuantizeSummary summary;
  auto const start = std::chrono::steady_clock::now();
  check(quantize_checkpoint(options, &summary), "quantize");
  std::printf("w4a8moe quantize: %lld expert weights quantised, %lld tensors copied, %zu files written in %.1f s\n",
              static_cast<long long>(summary.expert_weights_quantized), static_cast<long long>(summary.tensors_copied),
              summary.files_written.size(), seconds_since(start));
  for (auto const& file : summary.files_written) std::printf("  %s\n", file.c_str());
  return 0;
}

// Each config with the packed layout it reads.
int list_configs_command() {
  for (PackedLayout layout : {PackedLayout::kLookupTable, PackedLayout::kExactScales, PackedLayout::kMxfp4}) {
    for (auto const& name : gemm_config_names(layout)) {
      std::printf("%-20s %s\n", name.c_str(), packed_layout_name(layout));
    }
  }
  return 0;
}

}  // namespace
}  // namespace w4a8moe::tools

int main(int argc, char** argv) {
  using namespace w4a8moe::tools;
  std::string const command = argc > 1 ? argv[1] : "";
  // The layer's host buffers (weights, tokens x hidden inputs, the reference's) can outgrow the host's memory for
  // arguments every rule accepts: a clear message and exit status 1, not std::terminate's abort.
  try {
    if (command == "run") return run_command(Args(argc, argv, 2));
    if (command == "quantize") return quantize_command(Args(argc, argv, 2));
  } catch (std::bad_alloc const&) {
    die("out of host memory: the " + command + " command's host buffers do not fit (fewer --tokens or a smaller "
        "layer need less)");
  } catch (std::length_error const& error) {
    die("out of host memory: the " + command + " command asked for a buffer past the largest size (" +
        error.what() + ")");
  }
  if (command == "list-configs") return list_configs_command();
  std::printf(
      "usage: w4a8moe <command> [options]\n"
      "  run           build a W4A8 MoE layer on the GPU, run it, time each stage, check it against the reference\n"
      "  quantize      write a compressed-tensors W4A8 checkpoint from bf16/fp16/fp32 safetensors\n"
      "  list-configs  the grouped GEMM kernel configs and the packed layout each reads\n"
      "`w4a8moe <command> --help` for a command's options.\n");
  return command.empty() || command == "--help" || command == "help" ? 0 : 1;
}
