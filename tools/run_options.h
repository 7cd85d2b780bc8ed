// `w4a8moe run`'s options, read and checked before any work on the device or the host, so that a mistyped option
// costs nothing and every refusal names the option. What the layer itself must satisfy (its shape, tokens * top_k)
// are the library's rules: validate_moe_shape and rows_fit (check_run_tokens) state them.
#pragma once

#include <cstdint>
#include <string>

#include "cli_args.h"
#include "model_presets.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe::tools {

struct RunOptions {
  // The layer: a model preset, a custom shape, or one layer of a checkpoint (exactly one of them).
  ModelPreset const* preset = nullptr;  // --model
  bool custom = false;                  // --experts, --topk, --hidden, --inter (all four)
  std::string checkpoint;               // --checkpoint DIR, with --layer
  int layer = -1;
  // A preset's or custom layer: its shape (num_local_experts = num_experts / ep_ranks) and expert parallelism; a
  // checkpoint's layer runs whole, its shape read from its config.json.
  MoeShape shape;
  bool gpt_oss = false;  // a gpt-oss preset (a checkpoint's config says so for itself)
  int ep_ranks = 1;
  int rank = 0;

  int64_t tokens = 16;
  bool fp16 = false;
  bool renormalize = true;
  int iters = 20;
  int check_tokens = 8;  // tokens sampled for the check against the CPU reference; 0 with --no-check
  std::string gemm1_config, gemm2_config;
  MoePath path = MoePath::kAuto;
  PackedLayout layout = PackedLayout::kLookupTable;
  bool layout_given = false;
  uint64_t seed = 1;
  std::string json;  // --json FILE; empty: none
};

// Reads and checks the options (all but --help, which the caller answers first); an error naming the option and
// the rule otherwise. For a preset or custom layer this includes the library's shape rules and check_run_tokens.
Status parse_run_options(Args const& args, RunOptions* options);

// The library's 32-bit row rule (rows_fit) for `tokens` tokens of a layer with shape.top_k, as an error naming
// --tokens: checked before the host buffers of tokens x hidden values are allocated.
Status check_run_tokens(int64_t tokens, MoeShape const& shape);

// The options `run` takes.
std::string run_help();

}  // namespace w4a8moe::tools
