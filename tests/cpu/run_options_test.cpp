// `w4a8moe run`'s and `quantize`'s options: every integer range-checked before it is narrowed, the layer's source
// unambiguous, the library's row rule for --tokens before anything is allocated, and no option that would be
// silently ignored or silently skip the check.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_args.h"
#include "run_options.h"

namespace w4a8moe::tools {
namespace {

Args make_args(std::vector<std::string> words) {
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  return Args(int(argv.size()), argv.data(), 0);
}

Status parse(std::vector<std::string> const& words, RunOptions* options = nullptr) {
  RunOptions ignored;
  return parse_run_options(make_args(words), options != nullptr ? options : &ignored);
}

// The status is an invalid-argument error whose message holds `text`.
void expect_refused(Status const& status, std::string const& text) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(text), std::string::npos) << status.message();
}

TEST(RunOptions, PresetAndDefaults) {
  RunOptions o;
  ASSERT_TRUE(parse({"--model", "deepseek-v3", "--rank", "3", "--tokens", "64"}, &o).ok());
  ASSERT_NE(o.preset, nullptr);
  EXPECT_EQ(o.ep_ranks, 8);  // the preset's default expert parallelism
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.shape.num_local_experts, 256 / 8);
  EXPECT_EQ(o.tokens, 64);
  EXPECT_EQ(o.iters, 20);
  EXPECT_EQ(o.check_tokens, 8);
  EXPECT_EQ(o.path, MoePath::kAuto);
  EXPECT_FALSE(o.layout_given);

  ASSERT_TRUE(parse({"--model=qwen3-30b-a3b", "--no-check", "--path", "one_launch", "--layout", "exact"}, &o).ok());
  EXPECT_EQ(o.check_tokens, 0);
  EXPECT_EQ(o.path, MoePath::kOneLaunch);
  EXPECT_EQ(o.layout, PackedLayout::kExactScales);
  EXPECT_TRUE(o.layout_given);
}

TEST(RunOptions, CustomShape) {
  RunOptions o;
  ASSERT_TRUE(parse({"--experts", "64", "--topk", "4", "--hidden", "1024", "--inter", "512", "--ep-ranks", "4"}, &o)
                  .ok());
  EXPECT_EQ(o.shape.num_experts, 64);
  EXPECT_EQ(o.shape.num_local_experts, 16);
  expect_refused(parse({"--experts", "64", "--topk", "4", "--hidden", "1024"}), "--inter is missing");
  // Past int: refused by range, not wrapped into a valid-looking shape (2^32 + 64 would narrow to 64).
  expect_refused(parse({"--experts", "4294967360", "--topk", "4", "--hidden", "1024", "--inter", "512"}),
                 "--experts=4294967360: must be in [1, 2147483647]");
  expect_refused(parse({"--experts", "64", "--topk", "4", "--hidden", "1000", "--inter", "512"}),
                 "shape.hidden=1000");  // the library's rule, in its words
}

TEST(RunOptions, RangesOfTheIntegerOptions) {
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--ep-ranks", "4294967298"}),
                 "--ep-ranks=4294967298: must be in [1, 2147483647]");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--ep-ranks", "0"}), "--ep-ranks=0");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--ep-ranks", "3"}), "must divide the 128 experts");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--ep-ranks", "4", "--rank", "4"}), "--rank=4: must be in [0, 3]");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--iters", "0"}), "--iters=0: must be in [1, 2147483647]");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--iters", "4294967297"}), "--iters=4294967297");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--tokens", "0"}), "--tokens=0: must be at least 1");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--tokens", "12x"}), "--tokens=12x: expected an integer");
  expect_refused(parse({"--checkpoint", "dir", "--layer", "-1"}), "--layer=-1: must be in [0, 2147483647]");
  expect_refused(parse({"--checkpoint", "dir", "--layer", "2147483648"}), "--layer=2147483648");
}

TEST(RunOptions, TokensFollowTheLibrarysRowRule) {
  // qwen3-30b-a3b routes each token to 8 experts: at most (2^31 - 1) / 8 tokens, refused before any allocation.
  int64_t const most = kMaxRows / 8;
  EXPECT_TRUE(parse({"--model", "qwen3-30b-a3b", "--tokens", std::to_string(most)}).ok());
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--tokens", std::to_string(most + 1)}),
                 "tokens * top_k (8) must stay below 2^31");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--tokens", "9223372036854775807"}), "must stay below 2^31");
  MoeShape top1;
  top1.top_k = 1;
  EXPECT_TRUE(check_run_tokens(kMaxRows, top1).ok());
  expect_refused(check_run_tokens(kMaxRows + 1, top1), "--tokens=2147483648");
}

TEST(RunOptions, TheCheckpointTakesNoExpertParallelismOrPreset) {
  RunOptions o;
  ASSERT_TRUE(parse({"--checkpoint", "dir", "--layer", "3", "--tokens", "100"}, &o).ok());
  EXPECT_EQ(o.checkpoint, "dir");
  EXPECT_EQ(o.layer, 3);
  expect_refused(parse({"--checkpoint", "dir", "--layer", "3", "--ep-ranks", "2"}),
                 "--ep-ranks does not apply to --checkpoint");
  expect_refused(parse({"--checkpoint", "dir", "--layer", "3", "--rank", "1"}),
                 "--rank does not apply to --checkpoint");
  expect_refused(parse({"--checkpoint", "dir", "--layer", "3", "--model", "qwen3-30b-a3b"}),
                 "choose one layer, not --model and --checkpoint");
  expect_refused(parse({"--checkpoint", "dir"}), "--checkpoint needs --layer N");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--layer", "3"}), "--layer goes with --checkpoint");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--experts", "8"}), "choose one layer, not --model and --experts");
  expect_refused(parse({"--tokens", "8"}), "choose a layer");
}

TEST(RunOptions, TheCheckIsSkippedOnlyByNoCheck) {
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--check-tokens", "0"}), "--check-tokens=0: must be in [1,");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--check-tokens", "-3"}), "--check-tokens=-3");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--check-tokens", "4", "--no-check"}),
                 "--check-tokens and --no-check");
  RunOptions o;
  ASSERT_TRUE(parse({"--model", "qwen3-30b-a3b", "--check-tokens", "100"}, &o).ok());
  EXPECT_EQ(o.check_tokens, 100);  // run checks at most every token
}

TEST(RunOptions, NamesAndUnknownOptions) {
  expect_refused(parse({"--model", "qwen9"}), "--model=qwen9: unknown model");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--dtype", "fp8"}), "--dtype=fp8: must be bf16 or fp16");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--path", "fused"}),
                 "--path='fused': must be \"auto\", \"staged\" or \"one_launch\"");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--layout", "fancy"}), "--layout='fancy'");
  expect_refused(parse({"--model", "qwen3-30b-a3b", "--tokenz", "8"}), "unknown option --tokenz");
}

TEST(CliArgs, IntegerInRange) {
  Args const args = make_args({"--shard-bytes", "-5", "--n", "7", "--big", "99999999999999999999"});
  int64_t value = 0;
  expect_refused(args.integer_in("shard-bytes", 0, 0, INT64_MAX, &value), "--shard-bytes=-5: must be at least 0");
  EXPECT_TRUE(args.integer_in("n", 0, 0, 10, &value).ok());
  EXPECT_EQ(value, 7);
  expect_refused(args.integer_in("n", 0, 8, 10, &value), "--n=7: must be in [8, 10]");
  expect_refused(args.integer_in("big", 0, 0, INT64_MAX, &value), "--big=99999999999999999999: expected an integer");
  EXPECT_TRUE(args.integer_in("absent", 42, 0, 10, &value).ok());  // the fallback is the caller's, unchecked
  EXPECT_EQ(value, 42);
}

}  // namespace
}  // namespace w4a8moe::tools
