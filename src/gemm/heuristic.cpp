#include "gemm/heuristic.h"

#include <algorithm>
#include <cmath>

#include "gemm/stream_plan.h"

namespace w4a8moe::gemm {

std::vector<int64_t> estimate_rows_per_active_expert(HeuristicInput const& input) {
  std::vector<int64_t> rows;
  if (!input.rows_per_expert.empty()) {
    for (int64_t r : input.rows_per_expert) {
      if (r > 0) rows.push_back(r);
    }
    return rows;
  }
  if (input.total_rows <= 0 || input.num_experts <= 0) return rows;
  double const e = input.num_experts;
  double const draws = double(input.total_rows);
  // Expected number of distinct experts among `draws` uniform picks.
  int64_t active = int64_t(std::llround(e * (1.0 - std::pow(1.0 - 1.0 / e, draws))));
  active = std::clamp<int64_t>(active, 1, std::min<int64_t>(input.num_experts, input.total_rows));
  int64_t remaining = input.total_rows;
  if (input.max_rows_per_expert > 0 && input.max_rows_per_expert < input.total_rows && active > 1) {
    rows.push_back(input.max_rows_per_expert);
    remaining -= input.max_rows_per_expert;
    --active;
  }
  for (int64_t i = 0; i < active; ++i) {
    int64_t const share = remaining / (active - i);
    rows.push_back(std::max<int64_t>(share, 1));
    remaining -= share;
  }
  return rows;
}

double row_weighted_rows_per_expert(std::vector<int64_t> const& rows) {
  double sum = 0, sum_sq = 0;
  for (int64_t r : rows) {
    sum += double(r);
    sum_sq += double(r) * double(r);
  }
  return sum > 0 ? sum_sq / sum : 0.0;
}

// Thresholds from the H100 sweep of every config over Qwen3-30B-A3B, DeepSeek-V3 (EP8) and Mixtral-8x7B, GEMM1 and
// GEMM2, 1 to 8192 tokens, uniform and skewed routing (bench/results/2026-11-26-h100-80gb-hbm3-sweep.json): over
// those 108 cases this table's pick is on average 2.6 % slower than the best config (worst 38 %, a skewed routing
// it cannot see without hints). bench/NOTES.md has the analysis. The decode-kernel rule came later, from the
// 1-16 token runs of §6, three rules were refit where H200 sweeps of 1-256 tokens agree with it (§9g), and the
// streaming kernel's two rules on the H200 once its items were dealt per SM (§48).
GemmConfig select_config(HeuristicInput const& input) {
  std::vector<int64_t> const rows = estimate_rows_per_active_expert(input);
  double const m = row_weighted_rows_per_expert(rows);
  int64_t const active = std::max<int64_t>(1, int64_t(rows.size()));
  // Tiles of 128 and 256 channels over the active experts, against one wave of CTAs.
  double const tiles_128 = double(active) * std::ceil(input.n / 128.0);
  double const tiles_256 = double(active) * std::ceil(input.n / 256.0);
  double const wave = std::max(1, input.sm_count);
  // Short K: the ping-pong schedule hides each tile's epilogue behind the other warp group's mainloop.
  bool const short_k = input.k <= 1024;

  auto const coop = Schedule::kCooperative;
  auto const pp = Schedule::kPingpong;
  // The wgmma streaming kernel (stream_gemm.cu) up to 26 rows per expert wherever its items need no K split, whatever
  // K and the expert's size, since its items are dealt per SM: 8-row chunks to 2 rows, 16-row chunks to 10, 32-row
  // chunks above, since a chunk streams the experts with more rows than it holds twice. Up to two rows on H200s
  // (bench/NOTES.md §48, against the CUTLASS pick: Qwen3-30B-A3B GEMM1 at 16 tokens 46.5 against 54.4 us,
  // DeepSeek-V3 EP8 GEMM1 at 16 tokens 63.3 against 70.8, Mixtral-8x7B GEMM1 at 1 token 45.2 against 53.2 and GEMM2
  // at 4 tokens 67.5 against 77.7); to 12 rows the H100 sweep of §57 (Qwen3-30B-A3B GEMM1 / GEMM2 at 128 tokens, ~9
  // rows, 87.3 / 48.0 us against CUTLASS's 128x16 ping-pong 101.5 / 62.0 and 8-row chunks' 105.4 / 60.4; DeepSeek-V3
  // EP8 GEMM1 at 128 tokens, ~5 rows, 182.5 against 203.1 for 256x32; Mixtral-8x7B GEMM1 / GEMM2 at 16 tokens, ~5
  // rows, 186.7 / 96.4 against 189.4 / 105.8). The 32-row chunks, from the H100 sweep of §78 at 12-24 rows against
  // the best CUTLASS config: Qwen3-30B-A3B 0.84-0.92x, DeepSeek-V3 EP8 GEMM2 0.92x, Mixtral-8x7B GEMM2 0.94-0.96x (at
  // 12 rows 0.73x the 16-row chunks, which stream its experts of 17 or more rows twice); at ~31 rows 1.1-1.5x, many
  // experts past 32 rows. They read at ~79 % of HBM on long items, where CUTLASS's 256-channel tiles read large
  // experts of short K at ~87 %: those stay with CUTLASS from 10 rows (Mixtral-8x7B and DeepSeek-V3 EP8 GEMM1: the
  // 32-row chunks 1.03-1.06x).
  // Where it would split K, up to 1.3 rows per expert (at 1.4-1.8 it won some shapes in the layer and lost others,
  // §7d): the mma.sync decode kernel (decode_gemm.cu), which splits K inside a block while the wgmma kernel needs a
  // cluster that costs more (H200, §8 and §48: DeepSeek-V3 EP8 GEMM1 at 1 token 11.4 against 20.1), for experts of
  // at most 2^26 weights; but where each K slice still streams at least 16 groups, the cluster's reduction is paid
  // rarely and the wgmma kernel is ahead on both cards (§55: Mixtral-8x7B GEMM2 at 1 token, 4 slices of 28 groups,
  // 32.9 against 34.7 us on an H100 and 33.2 against 35.4 on an H200; DeepSeek-V3 EP8 GEMM1 at 4 tokens, 2 slices of
  // 28, a tie on the H200).
  bool const large_expert_short_k =
      double(input.n) * double(input.k) >= double(1 << 24) && input.k <= 64 * kGroupSize;
  // Long K (at least 64 groups: Mixtral-8x7B's GEMM2) keeps the 32-row chunks only while an expert's rows under
  // uniform routing (uniform_routing_high_rows) fit one chunk: an expert past it is streamed and converted twice
  // (§81), which costs most where K is long, and CUTLASS's 64-token tiles take it (H100, bench/NOTES.md §98:
  // Mixtral-8x7B GEMM2 at 96 tokens, ~24 rows, 107.5 against 104.4 us uniform, 93.0 against 148.1 skewed, the layer
  // 325.5 against 352.3 on its draw of routing; at 48 and 64 tokens, 12 and 16 rows, the 32-row chunks stay 4-10 %
  // ahead uniform).
  bool const long_k = input.k >= 64 * kGroupSize;
  bool const long_k_past_one_chunk = long_k && uniform_routing_high_rows(m) > double(4 * kStreamChunkRows);
  // 8-row chunks only to 2 rows an expert since the 16-row chunks' rings have as many stages (8) where dealt per SM
  // (H100, §85): from there the 16-row chunks tie them under uniform routing (-1 to +2 %: Qwen3-30B-A3B GEMM1 at 64
  // tokens, ~4 rows, 78.8 against 79.6 us; Mixtral-8x7B GEMM1 at 16 tokens 176.4 against 173.4) and stream an
  // expert of 9-16 rows once instead of twice, which the heuristic cannot see coming: under skewed routing 8-28 %
  // faster (DeepSeek-V3 EP8 GEMM1 / GEMM2 at 64 tokens 159.3 / 84.9 against 180.6 / 99.8, Mixtral-8x7B GEMM1 at 16
  // tokens 93.5 against 130.2). At ~1.7 rows the 8-row chunks are still 1-2 % ahead (Qwen3-30B-A3B at 16 tokens).
  constexpr double kEightRowChunksTo = 2.0;
  if (m <= 10.0 || (m <= 26.0 && !large_expert_short_k && !long_k_past_one_chunk)) {
    int const chunk_rows =
        m <= kEightRowChunksTo ? kStreamChunkRows : m <= 10.0 ? 2 * kStreamChunkRows : 4 * kStreamChunkRows;
    // The plan stream_gemm.cu's launcher makes (one consumer warpgroup, its blocks an SM as the workers of one).
    StreamLaunchPlan const plan =
        plan_worker_launch({input.num_experts, input.n, input.k, kGroupSize}, input.total_rows, input.total_rows,
                           input.sm_count, chunk_rows, 1, kStreamBlocksPerSm, 0, kStreamBlocksPerSm, 0);
    GemmConfig const stream{64, chunk_rows, 1, 1, Schedule::kStream};
    GemmConfig const decode{16, 8, 1, 1, Schedule::kDecode};
    constexpr double kDecodeRowsTo = 1.3;  // rows an expert for the decode kernel (§7d)
    bool const decode_suits = m <= kDecodeRowsTo && stripe_loop_suits_expert(input.n, input.k);
    // About one row an expert of small experts (at most 2^22 weights) over items for fewer than 4 waves: the decode
    // kernel even where the wgmma kernel needs no K split, as measured in the layer (H100, bench/NOTES.md §126:
    // Qwen3-30B-A3B at 2 tokens, 384 / 512 items, -1.1 to -1.7 us on every draw; at 4 tokens, 768 / 1024, a tie).
    // The gain is GEMM2's (2048 x 768): Qwen3's GEMM1 ties either way (§127). Not for DeepSeek-V3's experts of 15-29M
    // weights: its GEMM1 lost at 4-8 experts (+3 to +18 us at 6 tokens), its GEMM2 +2 to +8 at 3-4 tokens (§127).
    bool const small_expert = double(input.n) * double(input.k) <= double(1 << 22);
    if (plan.splits == 1) return decode_suits && small_expert && double(plan.items) < 4.0 * wave ? decode : stream;
    // Where it would split K, the split-K config's four slices per item (the workers of one block, no cluster to keep
    // resident) wherever each keeps at least 16 groups and the items, one block each, fill three quarters of the SMs
    // (H100, §61: Mixtral-8x7B GEMM2 at 1 / 2 tokens 28.1 / 53.5 us against 32.5 for the cluster split / 62.3 for
    // CUTLASS, and in the layer). Not at 14 groups: DeepSeek-V3 EP8 GEMM1 at 2 experts won alone (16.9 against 18.7)
    // but lost in the layer at 4 (40.3 against 33.7), and with no local rows the config cost ~5 us more than the
    // others (then its grid's waves of empty blocks, §65).
    constexpr int kBlockSliceGroups = 16;
    bool const fills_sms = 4.0 * double(plan.items) >= 3.0 * wave;
    if (chunk_rows == kStreamChunkRows && input.k / kGroupSize / kStreamBlocksPerSm >= kBlockSliceGroups && fills_sms) {
      return GemmConfig{64, 8, 1, 1, Schedule::kSplitKStream};
    }
    if (m <= kDecodeRowsTo) {
      constexpr int kSliceGroupsForStream = 16;
      if (input.k / kGroupSize / plan.splits >= kSliceGroupsForStream) return stream;
      // With items for 2.5 waves of SMs the short slices pay too (H100, §61, GEMM-level times of launches back to
      // back, §123: Qwen3-30B-A3B at 2 tokens, then split, 384 / 512 items, GEMM1 14.0 against the decode kernel's
      // 16.4 us, GEMM2 9.8 against 10.6; at 1 token, 192 / 256 items, 11.1 against 10.9 and 8.5 against 7.4).
      if (double(plan.items) >= 2.5 * wave) return stream;
      if (decode_suits) return decode;
    }
  }
  if (m <= 1.0) {
    // One row per expert. With more than two waves of 128-channel tiles, 256-channel tiles halve the per-tile
    // overhead (Mixtral GEMM1: 28672 channels).
    return tiles_128 > 2 * wave ? GemmConfig{256, 32, 1, 1, coop} : GemmConfig{128, 16, 1, 1, coop};
  }
  // Long K (at least 64 groups: Mixtral-8x7B's GEMM2, K = 14336) past the streaming kernel, to 48 rows: the cooperative
  // 256-channel tiles, once 128-channel tiles would need more than a wave. H100 and H200 agree up to 16 rows (at 1.3
  // rows 1.25x and 1.15x faster than 128x16 ping-pong, at 2.7 rows 1.15x on the H200); at 16 and 32 rows the H200
  // gains 1.27x and 1.16x over 128x64 ping-pong where the H100 lost 3 % and 1 % (bench/NOTES.md §9g). With fewer
  // tiles than a wave (Mixtral at 2 tokens: 4 experts) the 128-channel tiles keep the SMs busy: 1.55x faster.
  if (long_k && m <= 48.0 && tiles_128 > wave) {
    return m <= 16.0 ? GemmConfig{256, 32, 1, 1, coop} : GemmConfig{256, 64, 1, 1, coop};
  }
  // Past the wgmma kernel's range (more than 26 rows an expert, 10 for large experts of short K, ~20 for long K, or
  // too few items to stream without a K split):
  // 128x16 ping-pong to 3 rows per expert, and to 8 for K of at most 16 groups, where both sweeps have it ahead of
  // 256x32 (Qwen3-30B-A3B GEMM1 at 64 and 128 tokens: 4 % and a tie on the H100, 4-6 % on the H200; DeepSeek-V3 EP8
  // GEMM2 at 128 tokens 5 % and 3 %). Longer K keeps 256x32 (DeepSeek-V3 GEMM1 at 128 tokens: 7-10 % ahead).
  if (m <= 3.0 || (m <= 8.0 && input.k <= 16 * kGroupSize)) return {128, 16, 1, 1, pp};
  if (m <= 12.0) return {256, 32, 1, 1, coop};
  if (m <= 48.0) {
    return (short_k || tiles_256 < 1.5 * wave) ? GemmConfig{128, 64, 1, 1, pp} : GemmConfig{256, 64, 1, 1, coop};
  }
  // 128x256 tiles in pairs: the two blocks of a cluster share the 256-token activation tile, which is four times
  // the bytes of their weight tiles (bench/NOTES.md §33, H200: DeepSeek-V3 EP8 GEMM1 at 8192 tokens 485-531 us
  // against 572-591 unpaired, Mixtral-8x7B GEMM1 2994-3567 against 3703-3764). From 512 rows an expert, and from 256
  // where N is at most 8192 (§76, H100 sweep against 256x128 pairs: DeepSeek-V3 EP8 at 8192 tokens 498 / 296 us
  // against 518 / 313, Qwen3-30B-A3B GEMM1 at 4096 252 against 267, skewed 223 against 273; Mixtral-8x7B GEMM1 at
  // 1024, N = 28672, 637 against 570).
  bool const token_tile_256 = m >= 512.0 || (m >= 256.0 && input.n <= 8192);
  if (!token_tile_256 && (short_k || (m <= 192.0 && tiles_256 < 1.5 * wave))) return {128, 128, 2, 1, pp};
  if (!token_tile_256) return {256, 128, 2, 1, coop};
  return short_k ? GemmConfig{128, 128, 2, 1, pp} : GemmConfig{128, 256, 2, 1, coop};
}

// The exact-scale layout's chunks (m: rows per active expert; row-weighted, about the mean + 1 under uniform
// routing, when the caller passes the experts' rows, else the mean). An expert past a chunk's rows streams its
// weights once more for the rest, so the chunk has to hold most experts; a larger chunk costs where the rows are
// fewer (16 against 8 rows at a mean of 4: 7-10 %). From the sweep of bench/NOTES.md §13a (H200): 8 rows up to m = 7,
// 16 to 14 (Qwen3-30B-A3B GEMM1 at 128 tokens 67 us against 81 and 84 for 8 and 32), 32 to 28 (Mixtral-8x7B GEMM1
// at 64 tokens 185 against 197 for 16), 48 to 48; 128 x 128 beyond since its offset comes off per eight groups
// (§36, H200: at ~64 rows Qwen3 GEMM1 at 1024 tokens 150 us against 178 for 64x48, DeepSeek-V3 EP8 GEMM1 at 2048
// 302 against 361; at ~31 rows, DeepSeek-V3 EP8 at 1024, 64x48 stays ahead, 196 against 317).
GemmConfig select_exact_config(HeuristicInput const& input) {
  double const m = row_weighted_rows_per_expert(estimate_rows_per_active_expert(input));
  if (m <= 7.0) return {64, 8, 1, 1, Schedule::kExact};
  if (m <= 14.0) return {64, 16, 1, 1, Schedule::kExact};
  if (m <= 28.0) return {64, 32, 1, 1, Schedule::kExact};
  if (m <= 48.0) return {64, 48, 1, 1, Schedule::kExact};
  return {128, 128, 1, 1, Schedule::kExact};
}

// The MXFP4 layout's chunks, by a sweep at gpt-oss-120b's shapes (bench/NOTES.md §37, H200, GEMM1 / GEMM2 us):
// 64x8 to ~7 rows an expert (16 tokens: 136 / 72 against 147 / 76 for 64x16), 64x16 to 14 (256 tokens, 8 rows:
// 386 / 193 against 481 / 241 for 64x8), 64x32 between (not timed there), 64x48 at ~32 (1024 tokens: 531 / 268
// against 664 / 337 for 64x32 and 650 / 337 for 128x64), 128x128 from 64 (2048 tokens: 803 / 416 against 923 / 476
// for 128x64 and 962 / 486 for 64x48; 8192 tokens: 1930 / 991 against 2709 / 1396). Persistent workers for the
// two-warpgroup tiles (§39) and a tighter grid for 64x48 (§40) left the picks as they were: at 1024 tokens 64x48
// 504 / 255 against 524-556 / 275-278 for the now persistent 128x64, at 8192 128x128 1647-1664 / 842-848.
// 128x256 from ~224 rows an expert (§42, 2026-12-05: 8192 tokens, 256 rows, 1575-1634 / 793-794 against 1657-1703
// / 844-859; 4096 tokens, 128 rows, 1011 / 515 against 980 / 514; 2048, 64 rows, 985 / 484 against 675 / 359).
GemmConfig select_mxfp4_config(HeuristicInput const& input) {
  double const m = row_weighted_rows_per_expert(estimate_rows_per_active_expert(input));
  if (m <= 7.0) return {64, 8, 1, 1, Schedule::kMxfp4};
  if (m <= 14.0) return {64, 16, 1, 1, Schedule::kMxfp4};
  if (m <= 28.0) return {64, 32, 1, 1, Schedule::kMxfp4};
  if (m <= 44.0) return {64, 48, 1, 1, Schedule::kMxfp4};
  if (m >= 224.0) return {128, 256, 1, 1, Schedule::kMxfp4};
  return {128, 128, 1, 1, Schedule::kMxfp4};
}

}  // namespace w4a8moe::gemm
