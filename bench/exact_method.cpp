// The streaming kernel of the exact-scale and MXFP4 layouts (gemm/exact_stream_gemm.h) as a benchmark Method. The
// weights are random bytes in the config's layout (speed does not depend on their values); the exact-scale layout's
// group sums are computed once in prepare(), as the MoE layer's quantisation would write them beside the
// activations.
#include <algorithm>

#include "baselines/bench_fill.h"
#include "bench_timing.h"
#include "common/device_buffer.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/registry.h"
#include "prepack/exact_format.h"
#include "prepack/mxfp4_format.h"
#include "w4a8_method.h"

namespace w4a8moe::bench {
namespace {

class ExactMethod final : public Method {
 public:
  explicit ExactMethod(gemm::GemmKernelEntry const& kernel)
      : kernel_(kernel), mxfp4_(kernel.config.layout() == PackedLayout::kMxfp4) {}
  std::string name() const override { return "w4a8_" + kernel_.name; }
  double weight_bytes_per_expert(int n, int k) const override {
    // 4-bit weights + bf16 group scales (MXFP4: e8m0 per 32) + channel scales, K packed as padded_k
    double const padded = padded_k(k);
    return double(n) * padded / 2 + (mxfp4_ ? n * padded / 32 : 2.0 * n * group_count(k)) + 4.0 * n;
  }

  std::string prepare(BenchCase const& c) override {
    ExpertWeightShape const shape{c.num_experts, c.n, c.k, 128};
    int const k = padded_k(c.k);  // the kernels' K: whole groups, as grouped_gemm() hands it to them
    int64_t rows = 0;
    std::vector<int64_t> offsets{0};
    for (int64_t r : c.rows_per_expert) offsets.push_back(rows += r);
    auto const sections = mxfp4_ ? prepack::mxfp4_sections(shape) : prepack::exact_sections(shape);
    packed_.clear();
    for (int set = 0; set < c.weight_sets; ++set) {
      packed_.emplace_back(sections.total);
      if (!packed_.back().ok()) return "out of device memory";
      fill_random_bytes(packed_.back().get(), sections.total, 41 + set);
      fill_uniform_floats(reinterpret_cast<float*>(packed_.back().as<uint8_t>() + sections.channel_scales),
                          size_t(c.num_experts) * c.n, 0.001f, 0.01f, 42);
    }
    act_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * k);
    token_scales_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * 4);
    out_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.n * 2);
    offsets_ = DeviceBuffer(offsets);
    sums_ = DeviceBuffer(size_t(gemm::group_sums_stride(rows)) * (k / 128) * sizeof(float));
    for (auto* b : {&act_, &token_scales_, &out_, &offsets_, &sums_}) {
      if (!b->ok()) return "out of device memory";
    }
    fill_random_bytes(act_.get(), act_.bytes(), 33);
    fill_random_bytes_no_fp8_nan(act_.get(), act_.bytes());
    fill_uniform_floats(token_scales_.as<float>(), token_scales_.bytes() / 4, 0.001f, 0.01f, 34);
    if (!mxfp4_) {
      Status const sums = gemm::launch_activation_group_sums(act_.get(), rows, k, sums_.as<float>(), nullptr);
      if (!sums.ok()) return sums.to_string();
    }

    params_ = gemm::GroupedGemmParams{};
    params_.shape = shape;
    params_.shape.k = k;
    params_.total_rows = rows;
    params_.expected_rows = rows;
    params_.act = act_.get();
    params_.token_scales = token_scales_.as<float>();
    params_.expert_offsets = offsets_.as<int64_t>();
    params_.group_sums = sums_.as<float>();
    params_.out = out_.get();
    cudaDeviceGetAttribute(&params_.sm_count, cudaDevAttrMultiProcessorCount, 0);
    return "";
  }

  std::string run(int set, cudaStream_t stream) override {
    params_.packed = packed_[set].as<uint8_t>();
    params_.stream = stream;
    if (params_.total_rows == 0) return "";
    Status const status = kernel_.run(params_, nullptr, 0);
    return status.ok() ? "" : status.to_string();
  }

 private:
  gemm::GemmKernelEntry const& kernel_;
  bool const mxfp4_;
  std::vector<DeviceBuffer> packed_;
  DeviceBuffer act_, token_scales_, out_, offsets_, sums_;
  gemm::GroupedGemmParams params_;
};

}  // namespace

std::unique_ptr<Method> make_exact_method(std::string const& config) {
  gemm::GemmKernelEntry const* kernel = gemm::find_gemm_kernel(config);
  return kernel != nullptr ? std::make_unique<ExactMethod>(*kernel) : nullptr;
}

}  // namespace w4a8moe::bench
