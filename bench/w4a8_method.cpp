#include "w4a8_method.h"

#include <algorithm>

#include "baselines/bench_fill.h"
#include "bench_timing.h"
#include "common/device_buffer.h"
#include "prepack/packed_format.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::bench {
namespace {

class W4A8Method final : public Method {
 public:
  explicit W4A8Method(std::string config) : config_(std::move(config)) {}
  std::string name() const override { return config_.empty() ? "w4a8" : "w4a8_" + config_; }
  double weight_bytes_per_expert(int n, int k) const override {
    // int4 + the tables' 4-byte odd entries + channel scales (K packed as padded_k): what the decode streaming
    // kernels read. CUTLASS's configs and the mma.sync decode kernel read the 8-byte tables, 4 bytes a channel and
    // group more, so for them this count understates the bandwidth, never overstates it.
    return double(n) * padded_k(k) / 2 + double(prepack::kOddTableBytes) * n * group_count(k) + 4.0 * n;
  }
  std::string const& chosen_config() const { return chosen_; }

  std::string prepare(BenchCase const& c) override {
    ExpertWeightShape const shape{c.num_experts, c.n, c.k, 128};
    int64_t rows = 0;
    std::vector<int64_t> offsets{0};
    for (int64_t r : c.rows_per_expert) offsets.push_back(rows += r);
    {
      DeviceBuffer words(size_t(c.num_experts) * c.n * c.k / 2),
          scales(size_t(c.num_experts) * c.n * group_count(c.k) * 2);
      if (!words.ok() || !scales.ok()) return "out of device memory";
      fill_random_bytes(words.get(), words.bytes(), 31);
      fill_uniform_bf16(scales.get(), scales.bytes() / 2, 0.001f, 0.01f, 32);
      packed_.clear();
      packed_.emplace_back();
      Status const status = prepack_to_new_buffer(words.get(), scales.get(), shape, &packed_[0]);
      if (!status.ok()) return status.to_string();
      for (int set = 1; set < c.weight_sets; ++set) {  // copies at other addresses, rotated against L2
        packed_.emplace_back(packed_[0].bytes());
        if (!packed_.back().ok()) return "out of device memory";
        check_cuda(cudaMemcpy(packed_[set].get(), packed_[0].get(), packed_[0].bytes(), cudaMemcpyDeviceToDevice),
                   "copy");
      }
    }
    act_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * padded_k(c.k));  // the rows the GEMMs read
    token_scales_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * 4);
    out_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.n * 2);
    offsets_ = DeviceBuffer(offsets);
    workspace_ = DeviceBuffer(grouped_gemm_workspace_bytes(c.num_experts));
    for (auto* b : {&act_, &token_scales_, &out_, &offsets_, &workspace_}) {
      if (!b->ok()) return "out of device memory";
    }
    fill_random_bytes(act_.get(), act_.bytes(), 33);
    fill_random_bytes_no_fp8_nan(act_.get(), act_.bytes());
    fill_uniform_floats(token_scales_.as<float>(), token_scales_.bytes() / 4, 0.001f, 0.01f, 34);

    args_ = GroupedGemmArgs{};
    args_.shape = shape;
    args_.total_rows = rows;
    args_.act = act_.get();
    args_.token_scales = token_scales_.as<float>();
    args_.expert_offsets = offsets_.as<int64_t>();
    args_.out = out_.get();
    args_.workspace = workspace_.get();
    args_.workspace_bytes = workspace_.bytes();
    args_.config = config_;
    args_.packed_weights = packed_[0].get();
    chosen_ = select_gemm_config(args_);  // what an engine gets: it knows only the row count, not the routing
    return "";
  }

  std::string run(int set, cudaStream_t stream) override {
    args_.packed_weights = packed_[set].get();
    args_.stream = stream;
    Status const status = grouped_gemm(args_);
    return status.ok() ? "" : status.to_string();
  }

 private:
  std::string config_, chosen_;
  std::vector<DeviceBuffer> packed_;
  DeviceBuffer act_, token_scales_, out_, offsets_, workspace_;
  GroupedGemmArgs args_;
};

}  // namespace

std::unique_ptr<Method> make_w4a8_method(std::string const& config) { return std::make_unique<W4A8Method>(config); }

std::string w4a8_chosen_config(Method const& method) {
  auto const* w4a8 = dynamic_cast<W4A8Method const*>(&method);
  return w4a8 ? w4a8->chosen_config() : std::string();
}

}  // namespace w4a8moe::bench
