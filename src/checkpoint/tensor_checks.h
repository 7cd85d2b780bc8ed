// Checks of a checkpoint's tensors for the code that gathers a layer's experts (gather.cpp, gather_mxfp4.cpp):
// presence, dtype and shape, each refusal naming the file and the tensor; and the config's side of a layer.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::checkpoint {

class TensorChecks {
 public:
  explicit TensorChecks(Checkpoint const& checkpoint) : checkpoint_(checkpoint) {}

  // *tensor = the tensor `name`, or an error naming it and `owner` (e.g. "expert 3 of layer 0") when missing.
  Status find(std::string const& name, std::string const& owner, Tensor const** tensor) const;
  // The tensor has one of `dtypes` and exactly `shape`.
  Status expect(Tensor const& tensor, std::initializer_list<DType> dtypes, std::vector<int64_t> const& shape) const;
  // "<file>: tensor '<name>': <rule>".
  Status error(Tensor const& tensor, std::string const& rule) const;

 private:
  Checkpoint const& checkpoint_;
};

// `layer` is one of the model's layers and has routed experts; `source` names the checkpoint in messages.
Status check_moe_layer(std::string const& source, MoeConfig const& moe, int layer);

}  // namespace w4a8moe::checkpoint
