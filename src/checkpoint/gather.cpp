// Gathering one MoE layer's experts from a W4A8 checkpoint into the stacked arrays prepack_weights() takes:
//   GEMM1 int32 [E, 2I, H/8] and bf16 [E, 2I, H/128]: per expert, gate_proj rows then up_proj rows
//   GEMM2 int32 [E, H, I/8]  and bf16 [E, H, I/128]:  down_proj
// Each projection is a plain row-major block, so it is copied whole into its place in the stack.
#include <cstring>
#include <limits>

#include "checkpoint/expert_names.h"
#include "checkpoint/json_util.h"
#include "checkpoint/model_config.h"
#include "checkpoint/tensor_checks.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace {

using checkpoint::ExpertNaming;
using checkpoint::expert_module_name;
using checkpoint::projection_label;

constexpr char kPackedSuffix[] = ".weight_packed";
constexpr char kScaleSuffix[] = ".weight_scale";
constexpr char kShapeSuffix[] = ".weight_shape";
constexpr int64_t kNibblesPerWord = 8;

// One projection's checked tensors, ready to copy.
struct ProjectionTensors {
  Tensor const* packed;
  Tensor const* scale;
};

class LayerGatherer {
 public:
  LayerGatherer(Checkpoint const& checkpoint, ExpertNaming const& naming, int layer)
      : checks_(checkpoint), naming_(naming), layer_(layer) {}

  // Finds the projection's three tensors and checks them against its `rows` x `cols` shape, including the shape
  // the checkpoint stores.
  Status check_projection(int expert, ExpertProjection projection, int64_t rows, int64_t cols,
                          ProjectionTensors* found) const {
    std::string const module = expert_module_name(naming_, layer_, expert, projection);
    Tensor const* packed = nullptr;
    Tensor const* scale = nullptr;
    Tensor const* shape = nullptr;
    W4A8_RETURN_IF_ERROR(find(module + kPackedSuffix, expert, &packed));
    W4A8_RETURN_IF_ERROR(find(module + kScaleSuffix, expert, &scale));
    W4A8_RETURN_IF_ERROR(find(module + kShapeSuffix, expert, &shape));
    W4A8_RETURN_IF_ERROR(expect(*packed, {DType::kI32}, {rows, cols / kNibblesPerWord}));
    W4A8_RETURN_IF_ERROR(expect(*scale, {DType::kBF16}, {rows, group_count(int(cols))}));
    W4A8_RETURN_IF_ERROR(expect(*shape, {DType::kI64, DType::kI32}, {2}));
    int64_t stored[2];
    for (size_t i = 0; i < 2; ++i) {
      if (shape->dtype == DType::kI64) {
        std::memcpy(&stored[i], static_cast<uint8_t const*>(shape->data) + 8 * i, 8);
      } else {
        int32_t narrow = 0;
        std::memcpy(&narrow, static_cast<uint8_t const*>(shape->data) + 4 * i, 4);
        stored[i] = narrow;
      }
    }
    if (stored[0] != rows || stored[1] != cols) {
      return error(*shape, concat("holds {", stored[0], ", ", stored[1], "}, needs {", rows, ", ", cols, "} (",
                                  projection_label(projection), " projection of expert ", expert, ")"));
    }
    *found = {packed, scale};
    return Status::Ok();
  }

 private:
  Status find(std::string const& name, int expert, Tensor const** tensor) const {
    return checks_.find(name, concat("expert ", expert, " of layer ", layer_), tensor);
  }
  Status expect(Tensor const& tensor, std::initializer_list<DType> dtypes, std::vector<int64_t> const& shape) const {
    return checks_.expect(tensor, dtypes, shape);
  }
  Status error(Tensor const& tensor, std::string const& rule) const { return checks_.error(tensor, rule); }

  checkpoint::TensorChecks checks_;
  ExpertNaming const& naming_;
  int layer_;
};

// Copies a checked projection's blocks to rows [first_row, first_row + its rows) of the stacked arrays, whose rows
// are `row_words` int32 and `row_groups` scales long.
void copy_projection(ProjectionTensors const& from, int64_t first_row, int64_t row_words, int64_t row_groups,
                     std::vector<int32_t>* weights, std::vector<uint16_t>* scales) {
  std::memcpy(weights->data() + first_row * row_words, from.packed->data, from.packed->num_bytes);
  std::memcpy(scales->data() + first_row * row_groups, from.scale->data, from.scale->num_bytes);
}

Status gather(Checkpoint const& checkpoint, ModelConfig const& config, int layer, LayerExperts* experts) {
  MoeConfig const& moe = config.moe;
  std::string const& source = checkpoint.path();
  if (config.mxfp4) {
    return not_supported(source, ": the model config's experts are MXFP4 (gpt-oss), which "
                         "gather_mxfp4_layer_experts reads; the W4A8 kernels do not serve them");
  }
  if (!config.w4a8) {
    return not_supported(source, ": the model config has no W4A8 quantization_config; gather reads only W4A8 "
                         "checkpoints");
  }
  W4A8_RETURN_IF_ERROR(checkpoint::check_w4a8_serves(source, moe.model_type));
  W4A8_RETURN_IF_ERROR(checkpoint::check_moe_layer(source, moe, layer));
  int64_t const e_count = moe.num_experts;
  int64_t const h = moe.hidden_size;
  int64_t const i = moe.intermediate_size;
  if (e_count < 1 || !is_valid_size(h) || !is_valid_size(i) || 2 * i > std::numeric_limits<int>::max()) {
    return not_supported(source, ": experts=", e_count, ", hidden_size=", h, ", intermediate_size=", i,
                         ": needs at least one expert and both sizes positive multiples of 16 (the last 128-group of",
                         " a size may be partial), 2 * intermediate_size within int");
  }

  ExpertNaming const* naming = nullptr;
  std::string tried;
  for (ExpertNaming const& candidate : checkpoint::kExpertNamings) {
    std::string const probe = expert_module_name(candidate, layer, 0, ExpertProjection::kGate) + kPackedSuffix;
    if (naming == nullptr && checkpoint.find(probe) != nullptr) naming = &candidate;
    tried += (tried.empty() ? "'" : ", '") + probe + "' (" + candidate.models + ")";
  }
  if (naming == nullptr) {
    return invalid_argument(source, ": layer ", layer, ": no W4A8 expert weights found; looked for ", tried);
  }

  // Every tensor is found and checked before anything is allocated: the stacked arrays are then exactly as large
  // as tensors the files hold, whatever sizes config.json claims.
  LayerGatherer const gatherer(checkpoint, *naming, layer);
  std::vector<ProjectionTensors> found;  // per expert: gate, up, down
  for (int e = 0; e < e_count; ++e) {
    for (ExpertProjection projection : checkpoint::kProjections) {
      bool const down = projection == ExpertProjection::kDown;
      found.emplace_back();
      W4A8_RETURN_IF_ERROR(gatherer.check_projection(e, projection, down ? h : i, down ? i : h, &found.back()));
    }
  }

  LayerExperts out;
  out.layer = layer;
  out.num_experts = int(e_count);
  out.hidden_size = int(h);
  out.intermediate_size = int(i);
  int64_t const h_words = h / kNibblesPerWord, i_words = i / kNibblesPerWord;
  int64_t const h_groups = group_count(int(h)), i_groups = group_count(int(i));
  out.gemm1_weights.resize(size_t(e_count * 2 * i * h_words));
  out.gemm1_scales.resize(size_t(e_count * 2 * i * h_groups));
  out.gemm2_weights.resize(size_t(e_count * h * i_words));
  out.gemm2_scales.resize(size_t(e_count * h * i_groups));
  for (int64_t e = 0; e < e_count; ++e) {
    ProjectionTensors const* expert = &found[size_t(3 * e)];
    // Expert e's GEMM1 block is [2I, H]: gate rows [0, I), up rows [I, 2I).
    copy_projection(expert[0], e * 2 * i, h_words, h_groups, &out.gemm1_weights, &out.gemm1_scales);
    copy_projection(expert[1], e * 2 * i + i, h_words, h_groups, &out.gemm1_weights, &out.gemm1_scales);
    copy_projection(expert[2], e * h, i_words, i_groups, &out.gemm2_weights, &out.gemm2_scales);
  }
  *experts = std::move(out);
  return Status::Ok();
}

}  // namespace

Status gather_layer_experts(Checkpoint const& checkpoint, ModelConfig const& config, int layer,
                            LayerExperts* experts) {
  if (experts == nullptr) return invalid_argument("gather_layer_experts: experts is null");
  return checkpoint::guard_exceptions(checkpoint.path(), [&] { return gather(checkpoint, config, layer, experts); });
}

}  // namespace w4a8moe
