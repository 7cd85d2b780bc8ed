// CUTLASS pointer-array grouped GEMM baselines, with the same swapped operands as the W4A8 kernel (weights are GEMM
// A, tokens GEMM B, out [tokens, channels]):
//   W8A8   fp8 weights x fp8 tokens, fast accumulation, out = st[token] * sc[channel] * acc (the kernel family of
//          PyTorch's _scaled_grouped_mm)
//   W4A16  int4 weights (reordered for the bf16 MMA) with bf16 group scales x bf16 tokens: what users run today
// Per-expert arrays are built on the host once per case (the benchmark knows the routing); weight contents are
// random bits, which is all a speed measurement needs.
#pragma once

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/mixed_dtype_utils.hpp>
#include <cutlass/util/packed_stride.hpp>

#include <string>
#include <vector>

#include "baselines/bench_fill.h"
#include "common/device_buffer.h"
#include "method.h"

namespace w4a8moe::bench {

using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;
using LayoutOutGemm = cutlass::layout::ColumnMajor;  // (channels, tokens), channels fastest

template <class T>
std::string copy_to_device(DeviceBuffer& buffer, std::vector<T> const& host) {
  buffer = DeviceBuffer(host);
  return buffer.ok() ? "" : "out of device memory";
}

// Allocation and per-expert bookkeeping shared by the CUTLASS baselines.
class GroupedBuffers {
 public:
  std::string allocate(BenchCase const& c, size_t weight_bytes_per_expert, size_t scale_bytes_per_expert,
                       size_t act_element_bytes) {
    bench_case_ = c;
    rows_ = 0;
    row_offsets_.assign(1, 0);
    for (int64_t r : c.rows_per_expert) row_offsets_.push_back(rows_ += r);
    weight_bytes_ = weight_bytes_per_expert;
    scale_bytes_ = scale_bytes_per_expert;
    weights_ = DeviceBuffer(size_t(c.weight_sets) * c.num_experts * weight_bytes_per_expert);
    scales_ = DeviceBuffer(size_t(c.weight_sets) * c.num_experts * std::max<size_t>(scale_bytes_per_expert, 1));
    act_ = DeviceBuffer(size_t(std::max<int64_t>(rows_, 1)) * c.k * act_element_bytes);
    out_ = DeviceBuffer(size_t(std::max<int64_t>(rows_, 1)) * c.n * 2);
    token_scales_ = DeviceBuffer(size_t(std::max<int64_t>(rows_, 1)) * 4);
    channel_scales_ = DeviceBuffer(size_t(c.num_experts) * c.n * 4);
    for (auto* b : {&weights_, &scales_, &act_, &out_, &token_scales_, &channel_scales_}) {
      if (!b->ok()) return "out of device memory";
    }
    cudaGetDevice(&hw_info_.device_id);
    hw_info_.sm_count = cutlass::KernelHardwareInfo::query_device_multiprocessor_count(hw_info_.device_id);
    fill_random_bytes(weights_.get(), weights_.bytes(), 11);
    fill_random_bytes(act_.get(), act_.bytes(), 12);
    fill_uniform_floats(token_scales_.as<float>(), token_scales_.bytes() / 4, 0.001f, 0.01f, 13);
    fill_uniform_floats(channel_scales_.as<float>(), channel_scales_.bytes() / 4, 0.001f, 0.01f, 14);
    return "";
  }

  BenchCase const& bench_case() const { return bench_case_; }
  int64_t rows() const { return rows_; }
  std::vector<int64_t> const& row_offsets() const { return row_offsets_; }
  template <class T>
  T const* weight(int set, int e) const {
    return reinterpret_cast<T const*>(weights_.as<char>() + (size_t(set) * bench_case_.num_experts + e) * weight_bytes_);
  }
  template <class T>
  T const* scale(int set, int e) const {
    return reinterpret_cast<T const*>(scales_.as<char>() + (size_t(set) * bench_case_.num_experts + e) * scale_bytes_);
  }
  template <class T>
  T const* act(int e, size_t element_bytes) const {
    return reinterpret_cast<T const*>(act_.as<char>() + size_t(row_offsets_[e]) * bench_case_.k * element_bytes);
  }
  template <class T>
  T* out(int e) const {
    return reinterpret_cast<T*>(out_.as<char>() + size_t(row_offsets_[e]) * bench_case_.n * 2);
  }
  float const* token_scales(int e) const { return token_scales_.as<float>() + row_offsets_[e]; }
  float const* channel_scales(int e) const { return channel_scales_.as<float>() + size_t(e) * bench_case_.n; }
  DeviceBuffer& scales_buffer() { return scales_; }
  cutlass::KernelHardwareInfo hw_info() const { return hw_info_; }

 private:
  BenchCase bench_case_;
  int64_t rows_ = 0;
  std::vector<int64_t> row_offsets_;
  size_t weight_bytes_ = 0, scale_bytes_ = 0;
  DeviceBuffer weights_, scales_, act_, out_, token_scales_, channel_scales_;
  cutlass::KernelHardwareInfo hw_info_;
};

template <class Gemm>
std::string run_gemm(Gemm& gemm, typename Gemm::Arguments const& args, DeviceBuffer& workspace, cudaStream_t stream) {
  size_t const bytes = Gemm::get_workspace_size(args);
  if (workspace.bytes() < bytes) workspace = DeviceBuffer(bytes);
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return "can_implement failed";
  if (gemm.initialize(args, workspace.get(), stream) != cutlass::Status::kSuccess) return "initialize failed";
  if (gemm.run(stream) != cutlass::Status::kSuccess) return "run failed";
  cudaError_t const error = cudaGetLastError();
  return error == cudaSuccess ? "" : cudaGetErrorString(error);
}

// out = channel_scale[row] * (token_scale[col] * acc) with per-expert pointer arrays.
template <class TileShape, class ElementOut>
using ScaledOutput = cutlass::epilogue::fusion::Sm90EVT<
    cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, ElementOut, float, cutlass::FloatRoundStyle::round_to_nearest>,
    cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float*, float>,
    cutlass::epilogue::fusion::Sm90EVT<
        cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
        cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float*, float>,
        cutlass::epilogue::fusion::Sm90AccFetch>>;

// --- W8A8 ---------------------------------------------------------------------------------------------------------

template <int kTileM, int kTileN, int kClusterM, bool kCooperative>
class W8A8Grouped final : public Method {
  using Fp8 = cutlass::float_e4m3_t;
  using Out = cutlass::bfloat16_t;
  using TileShape = cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::_128>;
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::_1, cute::_1>;
  using MainloopSchedule =
      cute::conditional_t<kCooperative, cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8FastAccum,
                          cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpongFP8FastAccum>;
  using EpilogueSchedule = cute::conditional_t<kCooperative, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
                                               cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutOutGemm*, 8, Out, LayoutOutGemm*, 8,
      EpilogueSchedule, ScaledOutput<TileShape, Out>>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Fp8, cutlass::layout::RowMajor*, 16, Fp8,
      cutlass::layout::ColumnMajor*, 16, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;

 public:
  explicit W8A8Grouped(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return "w8a8_" + name_; }
  double weight_bytes_per_expert(int n, int k) const override { return double(n) * k + 4.0 * n; }

  std::string prepare(BenchCase const& c) override {
    if (auto e = buffers_.allocate(c, size_t(c.n) * c.k, 0, 1); !e.empty()) return e;
    fill_random_bytes_no_fp8_nan(const_cast<void*>(static_cast<void const*>(buffers_.weight<char>(0, 0))),
                                 size_t(c.weight_sets) * c.num_experts * c.n * c.k);
    int const experts = c.num_experts;
    std::vector<typename ProblemShape::UnderlyingProblemShape> shapes;
    std::vector<Fp8 const*> act;
    std::vector<Out*> out;
    std::vector<float const*> token, channel;
    for (int e = 0; e < experts; ++e) {
      shapes.emplace_back(c.n, int(c.rows_per_expert[e]), c.k);
      act.push_back(buffers_.act<Fp8>(e, 1));
      out.push_back(buffers_.out<Out>(e));
      token.push_back(buffers_.token_scales(e));
      channel.push_back(buffers_.channel_scales(e));
    }
    std::vector<StrideA> stride_a(experts, cutlass::make_cute_packed_stride(StrideA{}, cute::make_shape(c.n, c.k, 1)));
    std::vector<StrideB> stride_b(experts, cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(1, c.k, 1)));
    std::vector<StrideD> stride_d(experts, cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(c.n, 1, 1)));
    std::string error = copy_to_device(shapes_, shapes) + copy_to_device(act_, act) + copy_to_device(out_, out) +
             copy_to_device(token_, token) + copy_to_device(channel_, channel) +
             copy_to_device(stride_a_, stride_a) + copy_to_device(stride_b_, stride_b) +
             copy_to_device(stride_d_, stride_d);
    weight_ptrs_.clear();
    for (int set = 0; set < c.weight_sets; ++set) {
      std::vector<Fp8 const*> w;
      for (int e = 0; e < experts; ++e) w.push_back(buffers_.weight<Fp8>(set, e));
      weight_ptrs_.emplace_back();
      error += copy_to_device(weight_ptrs_.back(), w);
    }
    return error;
  }

  std::string run(int set, cudaStream_t stream) override {
    BenchCase const& c = buffers_.bench_case();
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
    args.problem_shape = {c.num_experts, shapes_.as<typename ProblemShape::UnderlyingProblemShape>(), nullptr};
    args.mainloop = {weight_ptrs_[set].as<Fp8 const*>(), stride_a_.as<StrideA>(), act_.as<Fp8 const*>(),
                     stride_b_.as<StrideB>()};
    args.epilogue.thread.op_0.ptr_col = channel_.as<float const*>();
    args.epilogue.thread.op_1.op_0.ptr_row = token_.as<float const*>();
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = nullptr;
    args.epilogue.ptr_D = out_.as<Out*>();
    args.epilogue.dD = stride_d_.as<StrideD>();
    args.hw_info = buffers_.hw_info();
    return run_gemm(gemm_, args, workspace_, stream);
  }

 private:
  std::string name_;
  GroupedBuffers buffers_;
  DeviceBuffer shapes_, act_, out_, token_, channel_, stride_a_, stride_b_, stride_d_, workspace_;
  std::vector<DeviceBuffer> weight_ptrs_;
  Gemm gemm_;
};

// --- W4A16 --------------------------------------------------------------------------------------------------------

template <int kTileM, int kTileN, int kClusterM>
class W4A16Grouped final : public Method {
  using Bf16 = cutlass::bfloat16_t;
  using Int4 = cutlass::int4b_t;
  using TileShape = cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::_64>;  // K tile 64 for 16-bit MMA
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::_1, cute::_1>;
  using StrideWeight = cute::remove_pointer_t<cutlass::detail::TagToStrideB_t<cutlass::layout::ColumnMajor*>>;
  using ReorderAtom = decltype(cutlass::compute_memory_reordering_atom<Bf16>());
  using LayoutWeight =
      decltype(cute::tile_to_shape(ReorderAtom{}, cute::Layout<cute::Shape<int, int, cute::Int<1>>, StrideWeight>{}));
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutOutGemm*, 8, Bf16, LayoutOutGemm*, 8,
      cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cute::tuple<Int4, Bf16>, LayoutWeight*, 32, Bf16,
      cutlass::layout::ColumnMajor*, 8, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;
  using StrideScale = typename Mainloop::StrideScale;

 public:
  explicit W4A16Grouped(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return "w4a16_" + name_; }
  double weight_bytes_per_expert(int n, int k) const override { return double(n) * k / 2 + 2.0 * n * (k / 128); }

  std::string prepare(BenchCase const& c) override {
    size_t const scale_bytes = size_t(c.n) * (c.k / 128) * 2;
    if (auto e = buffers_.allocate(c, size_t(c.n) * c.k / 2, scale_bytes, 2); !e.empty()) return e;
    fill_uniform_bf16(buffers_.scales_buffer().get(), buffers_.scales_buffer().bytes() / 2, 0.001f, 0.01f, 15);
    fill_uniform_bf16(const_cast<void*>(static_cast<void const*>(buffers_.act<Bf16>(0, 2))),
                      size_t(buffers_.rows()) * c.k, -1.0f, 1.0f, 16);
    int const experts = c.num_experts;
    std::vector<typename ProblemShape::UnderlyingProblemShape> shapes;
    std::vector<Bf16 const*> act;
    std::vector<Bf16*> out;
    for (int e = 0; e < experts; ++e) {
      shapes.emplace_back(c.n, int(c.rows_per_expert[e]), c.k);
      act.push_back(buffers_.act<Bf16>(e, 2));
      out.push_back(buffers_.out<Bf16>(e));
    }
    LayoutWeight const layout = cute::tile_to_shape(ReorderAtom{}, cute::make_shape(c.n, c.k, cute::Int<1>{}));
    std::vector<LayoutWeight> layouts(experts, layout);
    std::vector<StrideB> stride_b(experts, cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(1, c.k, 1)));
    std::vector<StrideD> stride_d(experts, cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(c.n, 1, 1)));
    std::vector<StrideScale> stride_s(experts,
                                      cutlass::make_cute_packed_stride(StrideScale{}, cute::make_shape(c.n, c.k / 128, 1)));
    std::string error = copy_to_device(shapes_, shapes) + copy_to_device(act_, act) + copy_to_device(out_, out) +
                        copy_to_device(layouts_, layouts) + copy_to_device(stride_b_, stride_b) +
                        copy_to_device(stride_d_, stride_d) + copy_to_device(stride_s_, stride_s);
    weight_ptrs_.clear();
    scale_ptrs_.clear();
    for (int set = 0; set < c.weight_sets; ++set) {
      std::vector<Int4 const*> w;
      std::vector<Bf16 const*> s;
      for (int e = 0; e < experts; ++e) {
        w.push_back(buffers_.weight<Int4>(set, e));
        s.push_back(buffers_.scale<Bf16>(set, e));
      }
      weight_ptrs_.emplace_back();
      scale_ptrs_.emplace_back();
      error += copy_to_device(weight_ptrs_.back(), w) + copy_to_device(scale_ptrs_.back(), s);
    }
    return error;
  }

  std::string run(int set, cudaStream_t stream) override {
    BenchCase const& c = buffers_.bench_case();
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
    args.problem_shape = {c.num_experts, shapes_.as<typename ProblemShape::UnderlyingProblemShape>(), nullptr};
    args.mainloop.ptr_A = weight_ptrs_[set].as<Int4 const*>();
    args.mainloop.dA = layouts_.as<LayoutWeight>();
    args.mainloop.ptr_B = act_.as<Bf16 const*>();
    args.mainloop.dB = stride_b_.as<StrideB>();
    args.mainloop.ptr_S = scale_ptrs_[set].as<Bf16 const*>();
    args.mainloop.dS = stride_s_.as<StrideScale>();
    args.mainloop.chunk_size = 128;
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = nullptr;
    args.epilogue.ptr_D = out_.as<Bf16*>();
    args.epilogue.dD = stride_d_.as<StrideD>();
    args.hw_info = buffers_.hw_info();
    return run_gemm(gemm_, args, workspace_, stream);
  }

 private:
  std::string name_;
  GroupedBuffers buffers_;
  DeviceBuffer shapes_, act_, out_, layouts_, stride_b_, stride_d_, stride_s_, workspace_;
  std::vector<DeviceBuffer> weight_ptrs_, scale_ptrs_;
  Gemm gemm_;
};

}  // namespace w4a8moe::bench
