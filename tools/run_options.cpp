// `w4a8moe run`'s options (run_options.h).
#include "run_options.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "common/status_message.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::tools {
namespace {

constexpr int kIntMax = std::numeric_limits<int>::max();

// An int option in [min, max] (`fallback` when absent): read as int64 and narrowed only once it is in range.
Status read_int(Args const& args, char const* name, int fallback, int min, int max, int* value) {
  int64_t wide = 0;
  W4A8_RETURN_IF_ERROR(args.integer_in(name, fallback, min, max, &wide));
  *value = static_cast<int>(wide);
  return Status::Ok();
}

// The layer's source: exactly one of a preset, a custom shape and a checkpoint, or the others would be ignored.
Status read_layer_source(Args const& args, RunOptions* o) {
  std::vector<std::string> const shape_options{"experts", "topk", "hidden", "inter"};
  o->custom = std::any_of(shape_options.begin(), shape_options.end(), [&](auto const& n) { return args.has(n); });
  std::vector<std::string> given;
  if (args.has("model")) given.push_back("--model");
  if (o->custom) given.push_back("--experts/--topk/--hidden/--inter");
  if (args.has("checkpoint")) given.push_back("--checkpoint");
  if (given.size() != 1) {
    return invalid_argument(given.empty() ? "choose a layer" : concat("choose one layer, not ", given[0], " and ",
                                                                      given[1]),
                            ": --model NAME, --experts E --topk K --hidden H --inter I, or --checkpoint DIR --layer N");
  }
  if (args.has("checkpoint")) {
    // A checkpoint's layer runs with all its experts local and the shape its config.json gives.
    for (char const* name : {"ep-ranks", "rank"}) {
      if (args.has(name)) {
        return invalid_argument("--", name, " does not apply to --checkpoint (its layer runs with all experts local)");
      }
    }
    if (!args.has("layer")) return invalid_argument("--checkpoint needs --layer N (a MoE layer of the model)");
    o->checkpoint = args.get("checkpoint");
    return read_int(args, "layer", -1, 0, kIntMax, &o->layer);
  }
  if (args.has("layer")) return invalid_argument("--layer goes with --checkpoint");
  int ep_ranks = 1;
  if (args.has("model")) {
    std::string const name = args.get("model");
    o->preset = find_model_preset(name);
    if (o->preset == nullptr) return invalid_argument("--model=", name, ": unknown model (", model_preset_names(), ")");
    o->shape = o->preset->shape;
    o->gpt_oss = o->preset->gpt_oss;
    ep_ranks = o->preset->default_ep_ranks;
  } else {
    for (auto const& name : shape_options) {
      if (!args.has(name)) return invalid_argument("--experts, --topk, --hidden and --inter go together: --", name,
                                                   " is missing");
    }
    MoeShape& s = o->shape;
    W4A8_RETURN_IF_ERROR(read_int(args, "experts", 0, 1, kIntMax, &s.num_experts));
    W4A8_RETURN_IF_ERROR(read_int(args, "topk", 0, 1, kIntMax, &s.top_k));
    W4A8_RETURN_IF_ERROR(read_int(args, "hidden", 0, 1, kIntMax, &s.hidden));
    W4A8_RETURN_IF_ERROR(read_int(args, "inter", 0, 1, kIntMax, &s.inter));
  }
  W4A8_RETURN_IF_ERROR(read_int(args, "ep-ranks", ep_ranks, 1, kIntMax, &o->ep_ranks));
  if (o->shape.num_experts % o->ep_ranks != 0) {
    return invalid_argument("--ep-ranks=", o->ep_ranks, ": must divide the ", o->shape.num_experts, " experts");
  }
  W4A8_RETURN_IF_ERROR(read_int(args, "rank", 0, 0, o->ep_ranks - 1, &o->rank));
  o->shape.num_local_experts = o->shape.num_experts / o->ep_ranks;
  return validate_moe_shape(o->shape);
}

}  // namespace

std::string run_help() {
  return "usage: w4a8moe run [--model NAME | --experts E --topk K --hidden H --inter I | --checkpoint DIR --layer N]\n"
         "                   [--tokens T] [--ep-ranks R --rank r] [--dtype bf16|fp16] [--no-renormalize]\n"
         "                   [--iters 20] [--check-tokens 8 | --no-check] [--gemm1-config NAME] [--gemm2-config NAME]\n"
         "                   [--path auto|staged|one_launch] [--layout lookup|exact|mxfp4] [--seed S] [--json FILE]\n"
         "models: " + model_preset_names() + " (deepseek-v3: 8 expert-parallel ranks by default)\n"
         "--ep-ranks, --rank: with --model or a custom shape; a checkpoint's layer runs with all its experts.\n"
         "--path: the layer's stages, or one launch (1..8 tokens); auto picks (a GEMM config stages it).\n"
         "--layout: the packed layout (include/w4a8moe/types.h PackedLayout): lookup (default) or exact for int4\n"
         "  experts; gpt-oss's MXFP4 experts (its presets and checkpoints) always run the mxfp4 layout.\n";
}

Status check_run_tokens(int64_t tokens, MoeShape const& shape) {
  if (rows_fit(tokens, shape.top_k)) return Status::Ok();
  return invalid_argument("--tokens=", tokens, ": tokens * top_k (", shape.top_k,
                          ") must stay below 2^31 (the rows one call of the layer holds)");
}

Status parse_run_options(Args const& args, RunOptions* options) {
  W4A8_RETURN_IF_ERROR(args.check_known({"model", "experts", "topk", "hidden", "inter", "checkpoint", "layer",
                                         "tokens", "ep-ranks", "rank", "dtype", "no-renormalize", "iters",
                                         "check-tokens", "no-check", "gemm1-config", "gemm2-config", "path",
                                         "layout", "seed", "json", "help"}));
  RunOptions o;
  W4A8_RETURN_IF_ERROR(read_layer_source(args, &o));
  // `run` times a forward pass, so it needs tokens; how many a call holds is the library's rule.
  W4A8_RETURN_IF_ERROR(args.integer_in("tokens", o.tokens, 1, std::numeric_limits<int64_t>::max(), &o.tokens));
  if (o.checkpoint.empty()) W4A8_RETURN_IF_ERROR(check_run_tokens(o.tokens, o.shape));

  std::string const dtype = args.get("dtype", "bf16");
  if (dtype != "bf16" && dtype != "fp16") return invalid_argument("--dtype=", dtype, ": must be bf16 or fp16");
  o.fp16 = dtype == "fp16";
  o.renormalize = !args.has("no-renormalize");
  W4A8_RETURN_IF_ERROR(read_int(args, "iters", o.iters, 1, kIntMax, &o.iters));
  // The check is what makes the exit status mean something: skipping it takes --no-check, not a count of 0.
  if (args.has("no-check")) {
    if (args.has("check-tokens")) return invalid_argument("--check-tokens and --no-check: give one of them");
    o.check_tokens = 0;
  } else {
    W4A8_RETURN_IF_ERROR(read_int(args, "check-tokens", o.check_tokens, 1, kIntMax, &o.check_tokens));
  }
  o.gemm1_config = args.get("gemm1-config");
  o.gemm2_config = args.get("gemm2-config");
  W4A8_RETURN_IF_ERROR(parse_moe_path(args.get("path", "auto").c_str(), &o.path, "--path"));
  o.layout_given = args.has("layout");
  W4A8_RETURN_IF_ERROR(parse_packed_layout(args.get("layout", "lookup").c_str(), &o.layout, "--layout"));
  int64_t seed = 1;
  W4A8_RETURN_IF_ERROR(args.integer_in("seed", seed, std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::max(), &seed));
  o.seed = static_cast<uint64_t>(seed);
  o.json = args.get("json");
  *options = o;
  return Status::Ok();
}

}  // namespace w4a8moe::tools
