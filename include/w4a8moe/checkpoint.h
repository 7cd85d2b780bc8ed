// Real checkpoints on the host: safetensors files (single or sharded), a Hugging Face MoE model's config.json, the
// experts of one layer of a compressed-tensors W4A8 checkpoint gathered into the stacked layouts the kernels take,
// and a round-to-nearest quantizer that writes that same format from a bf16/fp16/fp32 checkpoint.
//
// The W4A8 checkpoint format (compressed-tensors "pack-quantized", llm-compressor scheme W4AFP8), per expert
// projection `<module>` = `model.layers.{L}.mlp.experts.{e}.{gate_proj,up_proj,down_proj}` (Mixtral:
// `model.layers.{L}.block_sparse_moe.experts.{e}.{w1,w3,w2}`, w1 = gate, w3 = up, w2 = down) of shape [out, in]:
//   <module>.weight_packed  I32  [out, in/8]    nibble i (bits 4i..4i+3) of word j holds q + 8 for k = 8j + i,
//                                               q in [-8, 7]
//   <module>.weight_scale   BF16 [out, ceil(in/128)]  W[o, k] ~= q[o, k] * weight_scale[o, k/128] (in: a multiple of
//                                               16; the last group may be partial)
//   <module>.weight_shape   I64 (or I32) [2]    {out, in}
// config.json's quantization_config: format "pack-quantized"; weights 4-bit int, symmetric, group strategy, group
// size 128, no activation ordering; input activations 8-bit float, per token, dynamic.
//
// Files are untrusted input. Every size, offset, shape and dtype is checked before a byte of tensor data is read;
// a file that breaks a rule gives a Status whose message names the file, the tensor and the rule. Only regular
// files are read or written: a named pipe, device or directory in a file's place is refused, never waited on.
// Files are memory-mapped read-only and must not be modified or truncated while open (the mapping would change
// under the reader; truncation raises SIGBUS). Host-only: nothing here needs a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe {

// ---------------------------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------------------------

// The element types of the safetensors format, spelled there as dtype_name() returns them.
enum class DType : int {
  kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kI64, kU64, kF64
};

char const* dtype_name(DType dtype);  // "BF16", "F8_E4M3", ...
size_t dtype_bytes(DType dtype);

// One tensor of an open file. `data` points into the file's mapping and has no alignment guarantee (safetensors
// packs tensors back to back): read it with memcpy. Valid while the file (or checkpoint) that owns it is open.
struct Tensor {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  void const* data = nullptr;
  size_t num_bytes = 0;  // product(shape) * dtype_bytes(dtype)
};

// A validated safetensors file: 8-byte little-endian header length N, N bytes of JSON header, then the data.
// Checked when opened, before any data is read:
//   - the header length fits the file (and at most 100,000,000 bytes, the limit of the reference implementation);
//   - the header is JSON (duplicate keys refused), an object of at most 2^20 entries: "__metadata__" (an object of
//     strings) or tensors {"dtype", "shape", "data_offsets"}, and nothing else;
//   - dtype is one of DType; shape a list of at most 8 non-negative integers whose element and byte counts fit
//     64 bits;
//   - data_offsets [begin, end] with begin <= end <= size of the data section, end - begin == the byte count of
//     dtype and shape, and no two non-empty tensors overlapping.
// Gaps between tensors and trailing bytes are allowed (they are never read).
class SafetensorsFile {
 public:
  SafetensorsFile();
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  // Maps the file read-only and validates it.
  static Status open(std::string const& path, SafetensorsFile* file);
  // Validates a file already in memory; `label` names it in messages. The bytes are borrowed: they must outlive
  // *file, whose tensors point into them.
  static Status parse(void const* bytes, size_t num_bytes, std::string const& label, SafetensorsFile* file);

  std::string const& path() const;              // or the label given to parse()
  std::vector<Tensor> const& tensors() const;   // sorted by name
  Tensor const* find(std::string const& name) const;  // null if absent
  std::map<std::string, std::string> const& metadata() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A checkpoint of one or more safetensors files. open() takes
//   - a directory holding model.safetensors.index.json (sharded) or else model.safetensors;
//   - an index file (*.json) with a "weight_map" {tensor name: shard file name in the index's directory};
//   - a single .safetensors file.
// Every shard is opened and validated; each tensor of the weight map must be in the shard it is mapped to. Shard
// names must be plain file names (no directories), so an index cannot point outside its directory. Tensors of a
// shard that the index does not list are not visible.
class Checkpoint {
 public:
  Checkpoint();
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  static Status open(std::string const& path, Checkpoint* checkpoint);

  std::string const& path() const;                       // as given to open()
  std::vector<std::string> const& tensor_names() const;  // sorted
  Tensor const* find(std::string const& name) const;     // null if absent
  // The file holding `name` (the checkpoint's path if there is no such tensor), to name it in messages.
  std::string const& file_of(std::string const& name) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------------------------
// config.json
// ---------------------------------------------------------------------------------------------------------------

enum class RouterScoring : int { kSoftmax, kSigmoid };

// The MoE part of a Hugging Face config.json. Known model types and the fields read (besides hidden_size and
// num_hidden_layers):
//   qwen3_moe    num_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob (default false),
//                decoder_sparse_step (default 1), mlp_only_layers (default [])
//   mixtral      num_local_experts, num_experts_per_tok, intermediate_size (top-k renormalised: always true)
//   deepseek_v3  n_routed_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob, n_shared_experts,
//                n_group, topk_group, routed_scaling_factor, first_k_dense_replace (all required),
//                moe_layer_freq (default 1), scoring_func (default "sigmoid")
//   gpt_oss      num_local_experts, experts_per_token or num_experts_per_tok, intermediate_size (always true),
//                swiglu_limit (default 7)
// Another model_type is refused (kNotSupported). Every integer must fit an int (the message gives the range);
// num_hidden_layers is at most 4096 and at least one layer must be MoE; DeepSeek's num_experts_per_tok must be
// within reach of its group-limited routing (<= topk_group * n_routed_experts / n_group).
struct MoeConfig {
  std::string model_type;
  int num_layers = 0;
  int num_experts = 0;          // routed experts per MoE layer
  int experts_per_token = 0;    // top-k
  int hidden_size = 0;          // H
  int intermediate_size = 0;    // I, of one routed expert
  bool norm_topk_prob = false;  // the top-k weights are renormalised to sum to 1
  int num_shared_experts = 0;   // DeepSeek: experts every token goes through, besides the routed ones
  RouterScoring scoring = RouterScoring::kSoftmax;
  int num_expert_groups = 1;    // DeepSeek group-limited routing: n_group, topk_group
  int topk_groups = 1;
  double routed_scaling_factor = 1.0;
  std::vector<bool> is_moe_layer;  // [num_layers]: the layer's MLP is the routed MoE (else a dense MLP)
  // gpt-oss's clamped SwiGLU: gate clamped to at most the limit, up to [-limit, limit], then
  // (up + 1) * gate * sigmoid(1.702 * gate). 0 for the other models (SiLU(gate) * up, no clamp).
  double swiglu_limit = 0.0;
};

inline constexpr double kGptOssSwigluLimit = 7.0;

struct ModelConfig {
  MoeConfig moe;
  // A quantization_config is present, and it is the W4A8 scheme above. Any other quantization_config fails the
  // parse with kNotSupported naming the field and the rule: not compressed-tensors, a format other than
  // pack-quantized, weights that are not 4-bit symmetric int with group strategy and group size 128, activation
  // ordering, dynamic weights, input activations missing (weight-only) or not 8-bit float per-token dynamic
  // symmetric, quantized output activations; and the W4A8 scheme on model_type gpt_oss, whose layer needs its
  // MXFP4 experts with biases and its clamped SwiGLU.
  bool w4a8 = false;
  // The quantization_config is gpt-oss's MXFP4 block (quant_method "mxfp4"): the experts are stored as
  // gather_mxfp4_layer_experts() reads them.
  bool mxfp4 = false;
};

// `source` names the text in messages (usually its path).
Status parse_model_config(std::string const& json_text, std::string const& source, ModelConfig* config);
Status read_model_config(std::string const& path, ModelConfig* config);

// ---------------------------------------------------------------------------------------------------------------
// Gathering one layer's experts
// ---------------------------------------------------------------------------------------------------------------

// The routed experts of one MoE layer, stacked the way prepack_weights() takes them (WeightFormat
// kOffsetBinaryInt32, ScaleFormat kBF16). GEMM1 stacks gate and up into one [2I, H] weight per expert: rows
// 0..I-1 are gate_proj, rows I..2I-1 up_proj.
struct LayerExperts {
  int layer = 0;
  int num_experts = 0;        // E
  int hidden_size = 0;        // H
  int intermediate_size = 0;  // I
  std::vector<int32_t> gemm1_weights;  // [E, 2I, H/8]
  std::vector<uint16_t> gemm1_scales;  // bf16 bits [E, 2I, ceil(H/128)]
  std::vector<int32_t> gemm2_weights;  // [E, H, I/8]   down_proj
  std::vector<uint16_t> gemm2_scales;  // bf16 bits [E, H, ceil(I/128)]

  ExpertWeightShape gemm1_shape() const { return {num_experts, 2 * intermediate_size, hidden_size, kGroupSize}; }
  ExpertWeightShape gemm2_shape() const { return {num_experts, hidden_size, intermediate_size, kGroupSize}; }
};

// Reads the E = config.moe.num_experts routed experts of `layer`. Requires config.w4a8 (and a model_type other
// than gpt_oss), a MoE layer, H and I multiples of 16, and for every expert and projection the three tensors with
// the dtypes and shapes above (weight_shape = {I, H} for gate and up, {H, I} for down). A missing tensor, a wrong
// dtype or shape is an error naming the tensor and its file; every tensor is checked before the arrays are
// allocated, so their size is bounded by the checkpoint's, not by the config's claims. Not handled here: shared
// experts and the router (dense weights, the engine's), a subset of experts for expert parallelism,
// tensor-parallel slices, and fused expert tensors (gpt-oss's MXFP4 experts: gather_mxfp4_layer_experts below).
Status gather_layer_experts(Checkpoint const& checkpoint, ModelConfig const& config, int layer,
                            LayerExperts* experts);

// gpt-oss's routed experts as its checkpoints store them (config.mxfp4), per MoE layer L, with E experts, hidden
// size H and intermediate size I (both multiples of 32; gpt-oss has H = I = 2880):
//   model.layers.{L}.mlp.experts.gate_up_proj_blocks  U8   [E, 2I, H/32, 16]  MXFP4: two e2m1 codes a byte, low
//                                                                            nibble first (k = 32 b + 2 j, + 1)
//   model.layers.{L}.mlp.experts.gate_up_proj_scales  U8   [E, 2I, H/32]      e8m0: 2^(s - 127); 255 (NaN) refused
//   model.layers.{L}.mlp.experts.gate_up_proj_bias    BF16 [E, 2I]
//   model.layers.{L}.mlp.experts.down_proj_blocks     U8   [E, H, I/32, 16]
//   model.layers.{L}.mlp.experts.down_proj_scales     U8   [E, H, I/32]
//   model.layers.{L}.mlp.experts.down_proj_bias       BF16 [E, H]
//   model.layers.{L}.mlp.router.weight                BF16 [E, H]
//   model.layers.{L}.mlp.router.bias                  BF16 [E]
// GEMM1's rows interleave: row 2i is gate channel i, row 2i + 1 up channel i. The router's logits are
// hidden @ weight^T + bias; its top-k logits' softmax equals the renormalised top-k of the full softmax.
struct Mxfp4LayerExperts {
  int layer = 0;
  int num_experts = 0;        // E
  int hidden_size = 0;        // H
  int intermediate_size = 0;  // I
  std::vector<uint8_t> gemm1_blocks;    // [E, 2I, H/32, 16]
  std::vector<uint8_t> gemm1_scales;    // [E, 2I, H/32]
  std::vector<uint16_t> gemm1_bias;     // bf16 bits [E, 2I]
  std::vector<uint8_t> gemm2_blocks;    // [E, H, I/32, 16]
  std::vector<uint8_t> gemm2_scales;    // [E, H, I/32]
  std::vector<uint16_t> gemm2_bias;     // bf16 bits [E, H]
  std::vector<uint16_t> router_weight;  // bf16 bits [E, H]
  std::vector<uint16_t> router_bias;    // bf16 bits [E]
};

// Reads layer `layer`'s experts and router. Requires config.mxfp4, model_type gpt_oss, a MoE layer, H and I
// multiples of 32, every tensor above with its dtype and shape, and no e8m0 scale of 255 (NaN). A refusal names
// the tensor and its file (and for a NaN scale its index); every tensor is checked before anything is allocated.
// Not handled: a subset of experts for expert parallelism, tensor-parallel slices.
Status gather_mxfp4_layer_experts(Checkpoint const& checkpoint, ModelConfig const& config, int layer,
                                  Mxfp4LayerExperts* experts);

// GEMM1's rows (blocks, scales and bias) from the checkpoint's interleaved order (gate 2i, up 2i + 1) to the MoE
// layer's (gate rows [0, I), then up rows [I, 2I): moe.h, MoeForwardArgs::gemm1_weights), per expert. Applying it
// twice does not restore the checkpoint order.
void gate_up_in_layer_order(Mxfp4LayerExperts* experts);

// ---------------------------------------------------------------------------------------------------------------
// Quantizing a checkpoint to W4A8
// ---------------------------------------------------------------------------------------------------------------

enum class ExpertProjection : int { kGate, kUp, kDown };

// Which expert weight is being quantized: enough for a calibrated method to find its statistics.
struct ExpertWeightInfo {
  std::string tensor_name;  // e.g. "model.layers.3.mlp.experts.17.down_proj.weight"
  int layer = 0;
  int expert = 0;
  ExpertProjection projection = ExpertProjection::kGate;
  int64_t rows = 0;  // out
  int64_t cols = 0;  // in, a multiple of 16
};

// The point where a quantization method plugs in. Given one expert weight W (fp32 [rows, cols], row-major), it
// writes q in [-8, 7] ([rows, cols]) and bf16 group scales ([rows, ceil(cols/128)]; the last group may be partial)
// with W[r, c] ~= q[r, c] * scale[r, c/128]. Packing, file layout and config are the caller's.
//
// Round to nearest (below) looks at the weights alone. GPTQ and AWQ need calibration data: GPTQ quantizes the
// columns of a group one at a time and spreads each rounding error over the columns not yet quantized, using the
// inverse Hessian of the layer's inputs (X^T X); AWQ scales salient input channels (by activation magnitude) before
// rounding and searches the clipping range. For int4 with group 128 both usually recover much of the accuracy RTN
// loses, at the price of a calibration pass through the model that this host-only library does not run. They
// fit here by collecting the per-layer, per-expert statistics first (keyed by ExpertWeightInfo) and producing q
// and scales in quantize(); AWQ's channel scaling must then also be folded into the preceding op, outside this
// interface.
class ExpertWeightQuantizer {
 public:
  virtual ~ExpertWeightQuantizer() = default;
  virtual Status quantize(ExpertWeightInfo const& info, float const* weights, int8_t* q, uint16_t* scales) = 0;
};

// Round to nearest, symmetric, group 128: scale = bf16(max|w| over the group / 7), q = clamp(round(w / scale),
// -8, 7), ties to even as torch.round; an all-zero group gets scale 0 and q 0.
// Why /7: the largest magnitude maps to +-7 exactly, nothing is clipped and every error is at most half a step;
// -8 is left unused. /8 (or llm-compressor's min-max /7.5) gives a step 14% (7%) finer and uses -8, but clips
// the group's positive extreme by up to one (half a) step; which wins depends on the weight distribution and is
// a measurement, not a rule. An MSE search over clipping ratios (as AWQ and llm-compressor's MSE observer do)
// beats all three at some cost. Non-finite weights are refused.
class RoundToNearestQuantizer final : public ExpertWeightQuantizer {
 public:
  Status quantize(ExpertWeightInfo const& info, float const* weights, int8_t* q, uint16_t* scales) override;
};

struct QuantizeOptions {
  std::string input;         // a checkpoint as Checkpoint::open takes it; expert weights bf16, fp16 or fp32
  std::string input_config;  // config.json to copy (with quantization_config added); empty: write only that block
  // Created if missing; must not be the input's directory, nor hold a checkpoint already (config.json,
  // model.safetensors, model.safetensors.index.json or model-*.safetensors): old and new files would mix.
  std::string output_dir;
  // 0: one file, model.safetensors. Otherwise shards model-0000i-of-0000n.safetensors of at most this many data
  // bytes (a larger tensor gets a shard of its own) and model.safetensors.index.json.
  uint64_t max_shard_bytes = 0;
  ExpertWeightQuantizer* quantizer = nullptr;  // null: RoundToNearestQuantizer
};

struct QuantizeSummary {
  int64_t expert_weights_quantized = 0;
  int64_t tensors_copied = 0;
  std::vector<std::string> files_written;
};

// Quantizes every routed expert weight `<module>.weight` (the naming above, rank 2, in a multiple of 16) into
// <module>.weight_packed / weight_scale / weight_shape; copies every other tensor unchanged (dtype, shape and
// bytes); writes config.json with the W4A8 quantization_config (targets Linear; every other 2-D `.weight` module
// listed in "ignore"). An input config that already has a quantization_config is refused, and so is an input
// that also holds a quantized tensor of a module it would quantize (two output tensors of one name). Each file is
// written under a temporary name and renamed into place when complete; config.json comes last, so an output
// directory without it is unfinished, and a run that fails removes the files it wrote.
Status quantize_checkpoint(QuantizeOptions const& options, QuantizeSummary* summary = nullptr);

}  // namespace w4a8moe
