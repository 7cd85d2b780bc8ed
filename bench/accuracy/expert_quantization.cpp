#include "expert_quantization.h"

#include <stdexcept>
#include <string>

#include "common/float_formats.h"
#include "parallel.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe::accuracy {

reference::QuantizedExperts quantize_experts_rtn(std::vector<uint16_t> const& bf16, ExpertWeightShape const& shape,
                                                 std::vector<uint16_t>* scales) {
  reference::QuantizedExperts experts;
  experts.shape = shape;
  int64_t const rows = int64_t(shape.num_experts) * shape.n;
  int64_t const groups = shape.k / shape.group_size;
  experts.q.resize(size_t(rows) * shape.k);
  scales->resize(size_t(rows) * groups);
  // RTN works row by row, so chunks of rows of the stacked matrix can be quantized in parallel.
  parallel_for(rows, 256, [&](int64_t begin, int64_t end) {
    std::vector<float> weights(size_t(end - begin) * shape.k);
    for (size_t i = 0; i < weights.size(); ++i) weights[i] = bf16_to_float(bf16[size_t(begin) * shape.k + i]);
    ExpertWeightInfo info;
    info.tensor_name = "stacked expert rows " + std::to_string(begin) + ".." + std::to_string(end);
    info.rows = end - begin;
    info.cols = shape.k;
    RoundToNearestQuantizer quantizer;
    Status const status = quantizer.quantize(info, weights.data(), experts.q.data() + size_t(begin) * shape.k,
                                             scales->data() + size_t(begin) * groups);
    if (!status.ok()) throw std::runtime_error(status.to_string());
  });
  reference::split_bf16_scales(*scales, &experts);
  return experts;
}

}  // namespace w4a8moe::accuracy
