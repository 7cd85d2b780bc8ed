// BF16 grouped GEMM through cuBLAS (cublasGemmGroupedBatchedEx): the bound on any W4A16 kernel at large batch.
#include <cublas_v2.h>

#include <string>
#include <vector>

#include "baselines/bench_fill.h"
#include "common/device_buffer.h"
#include "method.h"

namespace w4a8moe::bench {
namespace {

class Bf16Cublas final : public Method {
 public:
  ~Bf16Cublas() override {
    if (handle_) cublasDestroy(handle_);
  }
  std::string name() const override { return "bf16_cublas"; }
  double weight_bytes_per_expert(int n, int k) const override { return 2.0 * n * k; }

  std::string prepare(BenchCase const& c) override {
    bench_case_ = c;
    if (!handle_ && cublasCreate(&handle_) != CUBLAS_STATUS_SUCCESS) return "cublasCreate failed";
    cublas_workspace_ = DeviceBuffer(size_t(64) << 20);  // set explicitly so graph capture allocates nothing
    if (cublasSetWorkspace(handle_, cublas_workspace_.get(), cublas_workspace_.bytes()) != CUBLAS_STATUS_SUCCESS) {
      return "cublasSetWorkspace failed";
    }
    int64_t rows = 0;
    for (int64_t r : c.rows_per_expert) rows += r;
    size_t const expert_bytes = size_t(c.n) * c.k * 2;
    weights_ = DeviceBuffer(size_t(c.weight_sets) * c.num_experts * expert_bytes);
    act_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.k * 2);
    out_ = DeviceBuffer(size_t(std::max<int64_t>(rows, 1)) * c.n * 2);
    if (!weights_.ok() || !act_.ok() || !out_.ok()) return "out of device memory";
    fill_uniform_bf16(weights_.get(), weights_.bytes() / 2, -0.05f, 0.05f, 21);
    fill_uniform_bf16(act_.get(), act_.bytes() / 2, -1.0f, 1.0f, 22);

    // One group per expert that received rows: out^T[N, m] = W[N, K] * act^T[K, m] in cuBLAS's column-major terms.
    m_.clear();
    n_.clear();
    k_.clear();
    std::vector<int64_t> first_row;
    int64_t row = 0;
    std::vector<int> active;
    for (int e = 0; e < c.num_experts; ++e) {
      if (c.rows_per_expert[e] > 0) {
        active.push_back(e);
        first_row.push_back(row);
        m_.push_back(c.n);
        n_.push_back(int(c.rows_per_expert[e]));
        k_.push_back(c.k);
      }
      row += c.rows_per_expert[e];
    }
    groups_ = int(active.size());
    pointers_.clear();
    for (int set = 0; set < c.weight_sets; ++set) {
      std::vector<void const*> a, b;
      std::vector<void*> out;
      for (int g = 0; g < groups_; ++g) {
        a.push_back(weights_.as<char>() + (size_t(set) * c.num_experts + active[g]) * expert_bytes);
        b.push_back(act_.as<char>() + size_t(first_row[g]) * c.k * 2);
        out.push_back(out_.as<char>() + size_t(first_row[g]) * c.n * 2);
      }
      pointers_.push_back({DeviceBuffer(a), DeviceBuffer(b), DeviceBuffer(out)});
    }
    return "";
  }

  std::string run(int set, cudaStream_t stream) override {
    if (groups_ == 0) return "";
    cublasSetStream(handle_, stream);
    std::vector<cublasOperation_t> transa(groups_, CUBLAS_OP_T), transb(groups_, CUBLAS_OP_N);
    std::vector<float> alpha(groups_, 1.0f), beta(groups_, 0.0f);
    std::vector<int> lda(groups_, bench_case_.k), ldb(groups_, bench_case_.k), ldc(groups_, bench_case_.n);
    std::vector<int> group_size(groups_, 1);
    auto const& p = pointers_[set];
    cublasStatus_t const status = cublasGemmGroupedBatchedEx(
        handle_, transa.data(), transb.data(), m_.data(), n_.data(), k_.data(), alpha.data(),
        p.a.as<void const*>(), CUDA_R_16BF, lda.data(), p.b.as<void const*>(), CUDA_R_16BF, ldb.data(), beta.data(),
        p.out.as<void*>(), CUDA_R_16BF, ldc.data(), groups_, group_size.data(), CUBLAS_COMPUTE_32F);
    return status == CUBLAS_STATUS_SUCCESS ? "" : "cublasGemmGroupedBatchedEx failed (" + std::to_string(status) + ")";
  }

 private:
  struct Pointers {
    DeviceBuffer a, b, out;
  };
  BenchCase bench_case_;
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer cublas_workspace_, weights_, act_, out_;
  std::vector<int> m_, n_, k_;
  int groups_ = 0;
  std::vector<Pointers> pointers_;
};

}  // namespace

std::unique_ptr<Method> make_bf16_cublas_method() { return std::make_unique<Bf16Cublas>(); }

}  // namespace w4a8moe::bench
