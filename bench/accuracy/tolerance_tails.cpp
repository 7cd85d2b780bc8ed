// The per-token error tail that a GPU layer test's tolerance must cover, on the CPU. A test's layer (the tests' random
// experts and hidden states, test_data.h) is computed twice: by reference::moe_layer, and with GEMM1 summed as the
// exact-scale streaming kernel sums it (each 128-K group's u * 2^-9 * a products in a fresh accumulator through the
// tensor-core model of accumulation_models.h, 32 products a step, then acc += sg * (part - 2^-6 sum a) in fp32), every
// other step as the reference does it. The per-token relative L2 difference between the two, over many draws, is the
// tail a staged path that sums like that kernel shows against the reference (bench/NOTES.md §105). With --layout
// lookup, GEMM1 is summed as CUTLASS's mixed-input mainloop sums the lookup-table layout instead (the tables' e4m3
// weights, one tensor-core accumulator over all of K). The default shape is the one-launch tests' repeated-experts
// case: H 256, I 256, 16 experts, top-4, eight tokens a draw, every slot but slot 2 on one expert (--slots distinct:
// slot j on expert j); H and I in whole 128-groups.
//   w4a8moe_tolerance_tails [--draws N] [--hidden H] [--inter I] [--experts E] [--top-k K]
//                           [--slots repeated|distinct] [--layout exact|lookup] [--seed S] [--threads N] [--json FILE]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "accumulation_models.h"
#include "cli_args.h"
#include "common/float_formats.h"
#include "error_stats.h"
#include "json_output.h"
#include "parallel.h"
#include "reference/moe_reference.h"
#include "test_data.h"

namespace w4a8moe::accuracy {
namespace {

constexpr int kTokens = 8;

struct Options {
  int64_t draws = 200;
  int hidden = 256, inter = 256, experts = 16, top_k = 4;
  bool repeated_slots = true;
  bool exact_layout = true;  // else the lookup-table layout
  uint64_t seed = 1;
  std::string json_path;
};

constexpr char kUsage[] =
    "usage: w4a8moe_tolerance_tails [--draws N] [--hidden H] [--inter I] [--experts E] [--top-k K]"
    " [--slots repeated|distinct] [--layout exact|lookup] [--seed S] [--threads N] [--json FILE]";

Options parse_options(int argc, char** argv) {
  tools::Args const args(argc, argv, 1);
  if (args.has("help")) {
    std::printf("%s\n", kUsage);
    std::exit(0);
  }
  if (!args.positional().empty()) tools::die(kUsage, 2);
  args.reject_unknown({"draws", "hidden", "inter", "experts", "top-k", "slots", "layout", "seed", "threads", "json"});
  Options o;
  int64_t hidden = 0, inter = 0, experts = 0, top_k = 0, seed = 0, threads = 0;
  tools::check(args.integer_in("draws", o.draws, 1, 1 << 24, &o.draws), "--draws");
  tools::check(args.integer_in("hidden", o.hidden, 128, 1 << 16, &hidden), "--hidden");
  tools::check(args.integer_in("inter", o.inter, 128, 1 << 16, &inter), "--inter");
  tools::check(args.integer_in("experts", o.experts, 2, 1024, &experts), "--experts");
  tools::check(args.integer_in("top-k", o.top_k, 2, 64, &top_k), "--top-k");
  tools::check(args.integer_in("seed", int64_t(o.seed), 0, INT64_MAX, &seed), "--seed");
  tools::check(args.integer_in("threads", worker_threads(), 1, 1024, &threads), "--threads");
  // Whole 128-K groups only: the modelled rows do not pad K.
  if (hidden % 128 != 0) tools::die("--hidden=" + std::to_string(hidden) + ": must be a multiple of 128", 2);
  if (inter % 128 != 0) tools::die("--inter=" + std::to_string(inter) + ": must be a multiple of 128", 2);
  if (top_k > experts) tools::die("--top-k=" + std::to_string(top_k) + ": at most --experts", 2);
  std::string const slots = args.get("slots", "repeated");
  if (slots != "repeated" && slots != "distinct") tools::die("--slots=" + slots + ": repeated or distinct", 2);
  o.hidden = int(hidden);
  o.inter = int(inter);
  o.experts = int(experts);
  o.top_k = int(top_k);
  o.seed = uint64_t(seed);
  worker_threads() = int(threads);
  o.repeated_slots = slots == "repeated";
  std::string const layout = args.get("layout", "exact");
  if (layout != "exact" && layout != "lookup") tools::die("--layout=" + layout + ": exact or lookup", 2);
  o.exact_layout = layout == "exact";
  o.json_path = args.get("json");
  return o;
}

// One GEMM1 row of expert e as the exact-scale kernel sums it (the header's model), rounded to bf16.
void exact_layout_gemm1_row(reference::QuantizedExperts const& w, int e, uint8_t const* act, float token_scale,
                            float* out) {
  auto const& shape = w.shape;
  float products[128];
  for (int n = 0; n < shape.n; ++n) {
    float acc = 0.0f;
    for (int g = 0; g < shape.k / 128; ++g) {
      float activation_sum = 0.0f;
      for (int i = 0; i < 128; ++i) {
        int const k = g * 128 + i;
        float const a = e4m3_to_float(act[k]);
        products[i] = a * float(w.q[size_t(w.q_index(e, n, k))] + 8) * 0x1p-9f;  // exact: u * 2^-9 is e4m3
        activation_sum += a;
      }
      float const part = fast_accumulation_sum(products, 128, 32);
      acc = std::fma(w.exact_group_scale[size_t(w.scale_index(e, n, g))], part - 0x1p-6f * activation_sum, acc);
    }
    // acc is 2^-9 sum_g sg sum_k q a: times 2^9, the token scale and the channel scale.
    out[n] = reference::round_activation(acc * 512.0f * token_scale * w.channel_scale[size_t(e) * shape.n + n], false);
  }
}

// One GEMM1 row of expert e as CUTLASS's mixed-input mainloop sums it on the lookup-table layout: the products of
// the tables' e4m3 weights and the activations in one tensor-core accumulator over all of K, 32 a step, then the
// channel and token scales; rounded to bf16.
void lookup_layout_gemm1_row(reference::QuantizedExperts const& w, int e, uint8_t const* act, float token_scale,
                             float* out) {
  auto const& shape = w.shape;
  std::vector<float> products(size_t(shape.k));
  for (int n = 0; n < shape.n; ++n) {
    for (int k = 0; k < shape.k; ++k) {
      int64_t const scale = w.scale_index(e, n, k / 128);
      products[size_t(k)] = e4m3_to_float(act[k]) *  // exact: both factors are e4m3
                            reference::dequantized_weight(w.q[size_t(w.q_index(e, n, k))], w.step(scale));
    }
    float const sum = fast_accumulation_sum(products.data(), shape.k, 32);
    out[n] = reference::round_activation(sum * w.channel_scale[size_t(e) * shape.n + n] * token_scale, false);
  }
}

// The per-token errors of one draw (a fresh layer and eight tokens).
std::vector<double> draw_errors(Options const& o, uint64_t seed) {
  std::mt19937_64 rng(seed);
  reference::MoeLayerWeights weights;
  std::vector<uint16_t> bf16_scales;  // the lookup-table layout's tables come from bf16 scales, as in the tests
  weights.gemm1 = testing::random_experts({o.experts, 2 * o.inter, o.hidden, 128}, rng, &bf16_scales);
  weights.gemm2 = testing::random_experts({o.experts, o.hidden, o.inter, 128}, rng, &bf16_scales);
  if (o.exact_layout) {
    reference::hold_exact_scales(&weights.gemm1);
    reference::hold_exact_scales(&weights.gemm2);
  }

  std::vector<uint16_t> hidden_bits;
  std::vector<float> hidden;
  testing::random_hidden_states(size_t(kTokens) * o.hidden, /*fp16=*/false, rng, &hidden_bits, &hidden);
  std::uniform_real_distribution<float> unit(0.05f, 1.0f);
  reference::TopK topk;
  for (int t = 0; t < kTokens; ++t) {
    float sum = 0.0f;
    for (int j = 0; j < o.top_k; ++j) {
      topk.ids.push_back(o.repeated_slots ? (j == 2 ? 1 : 0) : j);  // repeated: all but slot 2 on expert 0
      topk.weights.push_back(unit(rng));
      sum += topk.weights.back();
    }
    for (int j = 0; j < o.top_k; ++j) topk.weights[size_t(t) * o.top_k + j] /= sum;
  }
  std::vector<int64_t> tokens(kTokens);
  for (int t = 0; t < kTokens; ++t) tokens[t] = t;
  auto const want = reference::moe_layer(hidden, topk, o.top_k, weights, {}, false, false, tokens);

  std::vector<uint8_t> act1(size_t(o.hidden)), act2(size_t(o.inter));
  std::vector<float> gemm1(2 * size_t(o.inter)), silu(size_t(o.inter));
  std::vector<std::vector<float>> expert_out(size_t(o.experts));  // a token's GEMM2 row of each expert it reaches
  std::vector<float> got(size_t(kTokens) * o.hidden, 0.0f);
  for (int t = 0; t < kTokens; ++t) {
    float token_scale;
    reference::quantize_row(hidden.data() + size_t(t) * o.hidden, o.hidden, act1.data(), &token_scale);
    for (auto& row : expert_out) row.clear();
    float* const sum = got.data() + size_t(t) * o.hidden;
    for (int j = 0; j < o.top_k; ++j) {
      int const e = topk.ids[size_t(t) * o.top_k + j];
      std::vector<float>& gemm2 = expert_out[size_t(e)];
      if (gemm2.empty()) {  // repeated slots of one expert share its row
        if (o.exact_layout) {
          exact_layout_gemm1_row(weights.gemm1, e, act1.data(), token_scale, gemm1.data());
        } else {
          lookup_layout_gemm1_row(weights.gemm1, e, act1.data(), token_scale, gemm1.data());
        }
        reference::silu_mul(gemm1.data(), o.inter, silu.data());
        float row_scale;
        reference::quantize_row(silu.data(), o.inter, act2.data(), &row_scale);
        gemm2.resize(size_t(o.hidden));
        reference::expert_gemm_row(weights.gemm2, e, act2.data(), row_scale, false, gemm2.data());
      }
      for (int c = 0; c < o.hidden; ++c) sum[c] += topk.weights[size_t(t) * o.top_k + j] * gemm2[c];
    }
    for (int c = 0; c < o.hidden; ++c) sum[c] = reference::round_activation(sum[c], false);
  }
  return relative_l2_per_row(got, want, kTokens, o.hidden);
}

void run(Options const& o) {
  std::vector<std::vector<double>> per_draw(size_t(o.draws));
  parallel_for(o.draws, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) per_draw[size_t(d)] = draw_errors(o, o.seed * 1000003 + uint64_t(d));
  });
  std::vector<double> tokens, worst_of_draw;
  for (auto const& errors : per_draw) {
    tokens.insert(tokens.end(), errors.begin(), errors.end());
    worst_of_draw.push_back(*std::max_element(errors.begin(), errors.end()));
  }
  std::sort(tokens.begin(), tokens.end());
  std::sort(worst_of_draw.begin(), worst_of_draw.end());
  double const median = quantile(tokens, 0.5), p99 = quantile(tokens, 0.99), p999 = quantile(tokens, 0.999);
  double const worst_median = quantile(worst_of_draw, 0.5), worst_p90 = quantile(worst_of_draw, 0.9);
  char const* const slots = o.repeated_slots ? "repeated" : "distinct";
  char const* const layout = o.exact_layout ? "exact" : "lookup";
  std::printf("%s layout, %s slots, H %d, I %d, top-%d of %d, %zu tokens: per token median %.2e p99 %.2e p99.9 %.2e"
              " max %.2e; worst of eight median %.2e p90 %.2e\n",
              layout, slots, o.hidden, o.inter, o.top_k, o.experts, tokens.size(), median, p99, p999, tokens.back(),
              worst_median, worst_p90);
  if (o.json_path.empty()) return;
  tools::Json const doc = {
      {"shape", {{"hidden", o.hidden}, {"inter", o.inter}, {"experts", o.experts}, {"top_k", o.top_k}}},
      {"slots", slots},
      {"layout", layout},
      {"draws", o.draws},
      {"seed", o.seed},
      {"tokens", tokens.size()},
      {"per_token", {{"median", median}, {"p99", p99}, {"p999", p999}, {"max", tokens.back()}}},
      {"worst_of_eight", {{"median", worst_median}, {"p90", worst_p90}}},
  };
  if (!tools::write_json(doc, o.json_path)) tools::die("cannot write " + o.json_path);
}

}  // namespace
}  // namespace w4a8moe::accuracy

int main(int argc, char** argv) {
  using namespace w4a8moe::accuracy;
  run(parse_options(argc, argv));
  return 0;
}
