#include "checkpoint/tensor_checks.h"

#include "checkpoint/safetensors_format.h"
#include "common/status_message.h"

namespace w4a8moe::checkpoint {

Status TensorChecks::find(std::string const& name, std::string const& owner, Tensor const** tensor) const {
  *tensor = checkpoint_.find(name);
  if (*tensor == nullptr) return invalid_argument(checkpoint_.path(), ": tensor '", name, "' is missing (", owner, ")");
  return Status::Ok();
}

Status TensorChecks::expect(Tensor const& tensor, std::initializer_list<DType> dtypes,
                            std::vector<int64_t> const& shape) const {
  bool dtype_ok = false;
  std::string names;
  for (DType dtype : dtypes) {
    dtype_ok = dtype_ok || tensor.dtype == dtype;
    names += (names.empty() ? "" : " or ") + std::string(dtype_name(dtype));
  }
  if (!dtype_ok) return error(tensor, concat("dtype ", dtype_name(tensor.dtype), ", needs ", names));
  if (tensor.shape != shape) {
    return error(tensor, concat("shape ", format_shape(tensor.shape), ", needs ", format_shape(shape)));
  }
  return Status::Ok();
}

Status TensorChecks::error(Tensor const& tensor, std::string const& rule) const {
  return invalid_argument(checkpoint_.file_of(tensor.name), ": tensor '", tensor.name, "': ", rule);
}

Status check_moe_layer(std::string const& source, MoeConfig const& moe, int layer) {
  if (layer < 0 || layer >= moe.num_layers || size_t(moe.num_layers) != moe.is_moe_layer.size()) {
    return invalid_argument(source, ": layer ", layer, " is outside the model's ", moe.num_layers, " layers");
  }
  if (!moe.is_moe_layer[size_t(layer)]) {
    return invalid_argument(source, ": layer ", layer, " has a dense MLP, not routed experts");
  }
  return Status::Ok();
}

}  // namespace w4a8moe::checkpoint
