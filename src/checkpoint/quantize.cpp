// The quantizer: a bf16/fp16/fp32 checkpoint in, the compressed-tensors W4A8 format out (see checkpoint.h).
// Streams one tensor at a time: the output headers are planned from the input's shapes, then each expert weight
// is converted to fp32, quantized (RoundToNearestQuantizer or the caller's ExpertWeightQuantizer), packed and
// appended; other tensors are copied straight from the input mapping.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string_view>

#include "checkpoint/expert_names.h"
#include "checkpoint/file_io.h"
#include "checkpoint/json_util.h"
#include "checkpoint/model_config.h"
#include "checkpoint/safetensors_format.h"
#include "checkpoint/safetensors_writer.h"
#include "common/float_formats.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace {

namespace fs = std::filesystem;
using checkpoint::kConfigFileName;
using checkpoint::kIndexFileName;
using checkpoint::kMaxConfigBytes;
using checkpoint::kSingleFileName;
using checkpoint::TensorSpec;

constexpr int kQMin = -8;
constexpr int kQMax = 7;
constexpr int kNibblesPerWord = 8;
constexpr char kWeightSuffix[] = ".weight";
// The input config is read as ordered_json, so that the output keeps its field order; ordered_json inserts each
// key after a linear search, which makes an object's parse time grow with the square of its members. Configs'
// objects hold tens of members; with at most this many, even a config of kMaxConfigBytes parses in seconds.
constexpr size_t kMaxConfigObjectMembers = 1024;

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

float element_as_float(Tensor const& tensor, size_t index) {
  auto const* bytes = static_cast<uint8_t const*>(tensor.data);
  if (tensor.dtype == DType::kF32) {
    float value;
    std::memcpy(&value, bytes + 4 * index, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes + 2 * index, 2);
  return tensor.dtype == DType::kBF16 ? bf16_to_float(bits) : fp16_to_float(bits);
}

bool bf16_is_finite(uint16_t bits) { return (bits & 0x7F80u) != 0x7F80u; }

// One tensor of the output and where its bytes come from.
struct OutputTensor {
  enum class Part { kCopy, kPacked, kScale, kShape };
  TensorSpec spec;
  Tensor const* source = nullptr;
  Part part = Part::kCopy;
  ExpertWeightInfo expert;  // for the expert parts
};

// The quantized form of the expert weight last produced; its three output tensors are adjacent in the plan.
struct QuantizedWeight {
  Tensor const* source = nullptr;
  std::vector<int32_t> packed;   // [rows, cols/8]
  std::vector<uint16_t> scales;  // [rows, ceil(cols/128)]
};

Status quantize_weight(OutputTensor const& output, ExpertWeightQuantizer& quantizer, QuantizedWeight* result) {
  ExpertWeightInfo const& info = output.expert;
  Tensor const& tensor = *output.source;
  size_t const count = size_t(info.rows * info.cols);
  std::vector<float> weights(count);
  for (size_t n = 0; n < count; ++n) weights[n] = element_as_float(tensor, n);
  std::vector<int8_t> q(count);
  std::vector<uint16_t> scales(size_t(info.rows * group_count(int(info.cols))));
  W4A8_RETURN_IF_ERROR(quantizer.quantize(info, weights.data(), q.data(), scales.data()));

  // The quantizer may be the caller's: check what it produced before it is written.
  for (size_t n = 0; n < count; ++n) {
    if (q[n] < kQMin || q[n] > kQMax) {
      return invalid_argument(info.tensor_name, ": quantizer produced q = ", int(q[n]), " at element ", n,
                              ", outside [-8, 7]");
    }
  }
  for (size_t n = 0; n < scales.size(); ++n) {
    if (!bf16_is_finite(scales[n])) {
      return invalid_argument(info.tensor_name, ": quantizer produced a non-finite scale at group ", n);
    }
  }
  std::vector<int32_t> packed(count / kNibblesPerWord);
  for (size_t word = 0; word < packed.size(); ++word) {
    uint32_t bits = 0;
    for (int i = 0; i < kNibblesPerWord; ++i) {
      bits |= uint32_t(q[word * kNibblesPerWord + size_t(i)] - kQMin) << (4 * i);
    }
    packed[word] = int32_t(bits);
  }
  result->source = output.source;
  result->packed = std::move(packed);
  result->scales = std::move(scales);
  return Status::Ok();
}

Status write_output(OutputTensor const& output, ExpertWeightQuantizer& quantizer, QuantizedWeight* cache,
                    checkpoint::SafetensorsWriter* writer) {
  using Part = OutputTensor::Part;
  if (output.part == Part::kCopy) return writer->append(output.source->data, output.source->num_bytes);
  if (output.part == Part::kShape) {
    int64_t const shape[2] = {output.expert.rows, output.expert.cols};
    return writer->append(shape, sizeof shape);
  }
  if (cache->source != output.source) W4A8_RETURN_IF_ERROR(quantize_weight(output, quantizer, cache));
  if (output.part == Part::kPacked) return writer->append(cache->packed.data(), cache->packed.size() * 4);
  return writer->append(cache->scales.data(), cache->scales.size() * 2);
}

// Every output name once, whichever shards the tensors land in: an input that holds an expert's `<module>.weight`
// and also a `<module>.weight_packed` (or _scale, _shape) left over from an earlier quantization would otherwise
// write two tensors of one name, and an index could point at the stale one.
Status check_output_names_unique(Checkpoint const& input, std::vector<OutputTensor> const& outputs) {
  std::map<std::string, Tensor const*> source_of;
  for (OutputTensor const& output : outputs) {
    auto const [first, inserted] = source_of.emplace(output.spec.name, output.source);
    if (inserted) continue;
    std::string const& earlier = first->second->name;
    std::string const& later = output.source->name;
    return invalid_argument(input.file_of(earlier), ": tensor '", earlier, "' and tensor '", later, "' of ",
                            input.file_of(later), " would both be written as '", output.spec.name,
                            "': the input holds an expert weight and a quantized tensor of the same module (left over ",
                            "from an earlier quantization?); keep one of them");
  }
  return Status::Ok();
}

// The output tensors in writing order, the modules to list as not quantized, and the count of expert weights.
Status plan_outputs(Checkpoint const& input, std::vector<OutputTensor>* outputs, std::vector<std::string>* ignore,
                    int64_t* expert_weights) {
  using Part = OutputTensor::Part;
  for (std::string const& name : input.tensor_names()) {
    Tensor const* tensor = input.find(name);
    size_t const suffix_length = sizeof kWeightSuffix - 1;
    std::string const module =
        ends_with(name, kWeightSuffix) ? name.substr(0, name.size() - suffix_length) : std::string();
    checkpoint::ExpertModule parsed;
    if (module.empty() || !checkpoint::parse_expert_module(module, &parsed)) {
      outputs->push_back({{name, tensor->dtype, tensor->shape}, tensor, Part::kCopy, {}});
      if (!module.empty() && tensor->shape.size() == 2) ignore->push_back(module);
      continue;
    }
    auto const where = [&] { return concat(input.file_of(name), ": tensor '", name, "': "); };
    if (tensor->dtype != DType::kBF16 && tensor->dtype != DType::kF16 && tensor->dtype != DType::kF32) {
      return invalid_argument(where(), "expert weight of dtype ", dtype_name(tensor->dtype),
                              "; the quantizer reads BF16, F16 or F32");
    }
    if (tensor->shape.size() != 2 || tensor->shape[0] < 1 || !is_valid_size(tensor->shape[1]) ||
        tensor->shape[1] > std::numeric_limits<int>::max()) {
      return invalid_argument(where(), "expert weight of shape ", checkpoint::format_shape(tensor->shape),
                              "; needs [out, in] with in a positive multiple of 16 (within int)");
    }
    ExpertWeightInfo info;
    info.tensor_name = name;
    info.layer = parsed.layer;
    info.expert = parsed.expert;
    info.projection = parsed.projection;
    info.rows = tensor->shape[0];
    info.cols = tensor->shape[1];
    outputs->push_back({{module + ".weight_packed", DType::kI32, {info.rows, info.cols / kNibblesPerWord}},
                        tensor, Part::kPacked, info});
    outputs->push_back({{module + ".weight_scale", DType::kBF16, {info.rows, group_count(int(info.cols))}},
                        tensor, Part::kScale, info});
    outputs->push_back({{module + ".weight_shape", DType::kI64, {2}}, tensor, Part::kShape, info});
    ++*expert_weights;
  }
  return check_output_names_unique(input, *outputs);
}

uint64_t output_bytes(OutputTensor const& output) {
  uint64_t bytes = 0;
  checkpoint::shape_byte_count(output.spec.shape, dtype_bytes(output.spec.dtype), &bytes);
  return bytes;
}

// Splits the outputs, in order, into shards of at most max_bytes (0: one shard).
std::vector<std::vector<size_t>> assign_shards(std::vector<OutputTensor> const& outputs, uint64_t max_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  uint64_t filled = 0;
  for (size_t n = 0; n < outputs.size(); ++n) {
    uint64_t const bytes = output_bytes(outputs[n]);
    if (max_bytes != 0 && !shards.back().empty() && filled + bytes > max_bytes) {
      shards.emplace_back();
      filled = 0;
    }
    shards.back().push_back(n);
    filled += bytes;
  }
  return shards;
}

std::string shard_file_name(size_t shard, size_t shard_count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", shard + 1, shard_count);
  return name;
}

Status read_input_config(std::string const& path, nlohmann::ordered_json* config) {
  *config = nlohmann::ordered_json::object();
  if (path.empty()) return Status::Ok();
  std::string text;
  W4A8_RETURN_IF_ERROR(checkpoint::read_text_file(path, kMaxConfigBytes, &text));
  std::string reason;
  checkpoint::JsonLimits limits;
  limits.max_object_members = kMaxConfigObjectMembers;
  if (!checkpoint::parse_json(text, config, &reason, limits)) return invalid_argument(path, ": ", reason);
  if (!config->is_object()) return invalid_argument(path, ": must be a JSON object");
  if (config->contains("quantization_config") && !(*config)["quantization_config"].is_null()) {
    return invalid_argument(path, ": already has a quantization_config; the quantizer takes an unquantized model");
  }
  // The output's config must be one the loader takes.
  if (config->contains("model_type") && (*config)["model_type"].is_string()) {
    W4A8_RETURN_IF_ERROR(checkpoint::check_w4a8_serves(path, (*config)["model_type"].get<std::string>()));
  }
  return Status::Ok();
}

// A file a checkpoint directory is read from: config.json, the single file, the index, or a shard as this writer
// (and Hugging Face's) names them.
bool is_checkpoint_file_name(std::string const& name) {
  return name == kConfigFileName || name == kSingleFileName || name == kIndexFileName ||
         (name.rfind("model-", 0) == 0 && ends_with(name, ".safetensors"));
}

Status prepare_output_dir(QuantizeOptions const& options) {
  std::error_code error;
  fs::create_directories(options.output_dir, error);
  if (error) return invalid_argument(options.output_dir, ": cannot create the output directory: ", error.message());
  fs::path const input_dir =
      fs::is_directory(options.input, error) ? fs::path(options.input) : fs::path(options.input).parent_path();
  if (fs::equivalent(input_dir.empty() ? fs::path(".") : input_dir, options.output_dir, error)) {
    return invalid_argument(options.output_dir, ": the output directory is the input's; choose another");
  }
  // Old files would mix with the new ones (Checkpoint::open takes a stale index over a new model.safetensors,
  // and a stale shard may be listed by nothing or by the wrong index): only a directory free of them is written.
  std::vector<std::string> found;
  for (fs::directory_iterator entry(options.output_dir, error), end; !error && entry != end; entry.increment(error)) {
    std::string const name = entry->path().filename().string();
    if (is_checkpoint_file_name(name)) found.push_back(name);
  }
  if (error) return invalid_argument(options.output_dir, ": cannot list the output directory: ", error.message());
  if (!found.empty()) {
    std::sort(found.begin(), found.end());
    return invalid_argument((fs::path(options.output_dir) / found.front()).string(), ": the output directory ",
                            "already holds a checkpoint (", found.size(), " file", found.size() > 1 ? "s" : "",
                            " of config.json, model.safetensors, its index, model-*.safetensors); choose a ",
                            "directory without one");
  }
  return Status::Ok();
}

// Writes the planned tensors, the index when sharded, and config.json last; *written lists each file once it is
// complete.
Status write_checkpoint(QuantizeOptions const& options, std::vector<OutputTensor> const& outputs,
                        nlohmann::ordered_json config, std::vector<std::string>* written) {
  RoundToNearestQuantizer round_to_nearest;
  ExpertWeightQuantizer& quantizer = options.quantizer ? *options.quantizer : round_to_nearest;
  QuantizedWeight cache;
  auto const shards = assign_shards(outputs, options.max_shard_bytes);
  bool const sharded = options.max_shard_bytes != 0;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t total_bytes = 0;
  for (size_t shard = 0; shard < shards.size(); ++shard) {
    std::string const file_name = sharded ? shard_file_name(shard, shards.size()) : kSingleFileName;
    std::string const path = (fs::path(options.output_dir) / file_name).string();
    std::vector<TensorSpec> specs;
    for (size_t n : shards[shard]) specs.push_back(outputs[n].spec);
    checkpoint::SafetensorsWriter writer;
    W4A8_RETURN_IF_ERROR(writer.open(path, specs, {{"format", "pt"}}));
    for (size_t n : shards[shard]) {
      W4A8_RETURN_IF_ERROR(write_output(outputs[n], quantizer, &cache, &writer));
      weight_map[outputs[n].spec.name] = file_name;
    }
    W4A8_RETURN_IF_ERROR(writer.finish());
    total_bytes += writer.data_bytes();
    written->push_back(path);
  }
  if (sharded) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    std::string const path = (fs::path(options.output_dir) / kIndexFileName).string();
    W4A8_RETURN_IF_ERROR(checkpoint::write_text_file(path, index.dump(2) + "\n"));
    written->push_back(path);
  }
  // Last: a directory with config.json is a complete checkpoint.
  std::string const config_path = (fs::path(options.output_dir) / kConfigFileName).string();
  W4A8_RETURN_IF_ERROR(checkpoint::write_text_file(config_path, config.dump(2) + "\n"));
  written->push_back(config_path);
  return Status::Ok();
}

Status quantize(QuantizeOptions const& options, QuantizeSummary* summary) {
  if (options.input.empty() || options.output_dir.empty()) {
    return invalid_argument("quantize_checkpoint: options.input and options.output_dir are required");
  }
  Checkpoint input;
  W4A8_RETURN_IF_ERROR(Checkpoint::open(options.input, &input));
  nlohmann::ordered_json config;
  W4A8_RETURN_IF_ERROR(read_input_config(options.input_config, &config));
  std::vector<OutputTensor> outputs;
  std::vector<std::string> ignore;
  QuantizeSummary done;
  W4A8_RETURN_IF_ERROR(plan_outputs(input, &outputs, &ignore, &done.expert_weights_quantized));
  done.tensors_copied = int64_t(outputs.size()) - 3 * done.expert_weights_quantized;
  W4A8_RETURN_IF_ERROR(prepare_output_dir(options));
  config["quantization_config"] = checkpoint::w4a8_quantization_config(ignore);

  Status const status = checkpoint::guard_exceptions(options.output_dir, [&] {
    return write_checkpoint(options, outputs, std::move(config), &done.files_written);
  });
  if (!status.ok()) {
    // A failed run (an exception included) leaves the directory as it found it, ready for another.
    for (std::string const& path : done.files_written) std::remove(path.c_str());
    return status;
  }
  if (summary != nullptr) *summary = std::move(done);
  return Status::Ok();
}

}  // namespace

Status RoundToNearestQuantizer::quantize(ExpertWeightInfo const& info, float const* weights, int8_t* q,
                                         uint16_t* scales) {
  if (weights == nullptr || q == nullptr || scales == nullptr) {
    return invalid_argument(info.tensor_name, ": RoundToNearestQuantizer: weights, q and scales are required");
  }
  if (info.rows < 1 || !is_valid_size(info.cols) || info.cols > std::numeric_limits<int>::max()) {
    return invalid_argument(info.tensor_name, ": RoundToNearestQuantizer: shape [", info.rows, ", ", info.cols,
                            "], needs rows >= 1 and cols a positive multiple of 16");
  }
  int64_t const groups = group_count(int(info.cols));
  for (int64_t row = 0; row < info.rows; ++row) {
    for (int64_t group = 0; group < groups; ++group) {
      // The last group of a row whose length is not a multiple of 128 is partial.
      int64_t const first = row * info.cols + group * kGroupSize;
      int64_t const end = row * info.cols + std::min<int64_t>((group + 1) * kGroupSize, info.cols);
      float max_magnitude = 0.0f;
      for (int64_t n = first; n < end; ++n) {
        if (!std::isfinite(weights[n])) {
          return invalid_argument(info.tensor_name, ": element [", row, ", ", n - row * info.cols,
                                  "] is not finite; RTN needs finite weights");
        }
        max_magnitude = std::max(max_magnitude, std::fabs(weights[n]));
      }
      // The step actually stored is the bf16 one, so q is computed from it; bf16 rounding can shrink the step by
      // 2^-9 relative, which moves max|w| / step to at most 7.03: still rounds to 7.
      uint16_t const scale_bits = float_to_bf16(max_magnitude / float(kQMax));
      float const step = bf16_to_float(scale_bits);
      scales[row * groups + group] = scale_bits;
      for (int64_t n = first; n < end; ++n) {
        float const level = step > 0.0f ? std::nearbyint(weights[n] / step) : 0.0f;
        q[n] = int8_t(std::clamp(level, float(kQMin), float(kQMax)));
      }
    }
  }
  return Status::Ok();
}

Status quantize_checkpoint(QuantizeOptions const& options, QuantizeSummary* summary) {
  return checkpoint::guard_exceptions("quantize_checkpoint", [&] { return quantize(options, summary); });
}

}  // namespace w4a8moe
