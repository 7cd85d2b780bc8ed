// The W4A8 grouped GEMM kernel for one config: CUTLASS's pointer-array mixed-input TMA warp-specialized mainloop
// (int4 weights converted to e4m3 by lookup table in registers, fp8 wgmma) and an epilogue that applies the
// per-channel scale (a column broadcast: GEMM M is the channels) and the per-token scale (a row broadcast), each
// through a per-expert pointer array. Included only by the generated instances/ translation units.
#pragma once

#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include "common/status_util.h"
#include "gemm/expert_arrays.cuh"
#include "gemm/gemm_config.h"
#include "gemm/w4a8_types.cuh"

namespace w4a8moe::gemm {

template <int kTileM, int kTileN, int kClusterM, int kClusterN, Schedule kSchedule, class ElementOut>
struct W4A8GroupedKernel {
  static constexpr bool kCooperative = kSchedule == Schedule::kCooperative;
  using TileShape = cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::Int<128>>;
  using ClusterShape = cute::Shape<cute::Int<kClusterM>, cute::Int<kClusterN>, cute::_1>;
  using MainloopSchedule = cute::conditional_t<kCooperative, cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                                               cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong>;
  using EpilogueSchedule = cute::conditional_t<kCooperative, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
                                               cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong>;

  // out = channel_scale[row] * (token_scale[col] * acc), in GEMM (row, col) = (channel, token) terms.
  using ChannelScale = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float*, float>;
  using TokenScale = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float*, float>;
  using ScaleByToken = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
      TokenScale, cutlass::epilogue::fusion::Sm90AccFetch>;
  using ScaleByChannel = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, ElementOut, float,
                                             cutlass::FloatRoundStyle::round_to_nearest>,
      ChannelScale, ScaleByToken>;

  using LayoutOutGemm = cutlass::layout::LayoutTranspose<LayoutOutTag>::type;  // (channels, tokens), channels fastest
  using LayoutActGemm = cutlass::layout::LayoutTranspose<LayoutActTag>::type;
  static constexpr int kAlignOut = 128 / cutlass::sizeof_bits<ElementOut>::value;
  static constexpr int kAlignAct = 128 / cutlass::sizeof_bits<ElementAct>::value;
  static constexpr int kAlignWeight = 128 / cutlass::sizeof_bits<ElementWeight>::value;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutOutGemm*, kAlignOut, ElementOut,
      LayoutOutGemm*, kAlignOut, EpilogueSchedule, ScaleByChannel>::CollectiveOp;

  // NOTE: StageCount<N> does not compile with the mixed-input builder in CUTLASS 4.2; the carve-out count takes
  // as many stages as fit beside the epilogue's shared memory.
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cute::tuple<ElementWeight, ElementGroupScale>,
      LayoutWeightReordered*, kAlignWeight, ElementAct, LayoutActGemm*, kAlignAct, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static_assert(std::is_same_v<typename CollectiveMainloop::StrideScale, StrideGroupScale>);
  static_assert(std::is_same_v<typename Kernel::InternalStrideD, StrideOut>);
  static_assert(std::is_same_v<typename Kernel::InternalStrideB, StrideAct>);

  static typename Gemm::Arguments make_arguments(int num_experts, ExpertArrays const& arrays, int device_id,
                                                 int sm_count) {
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
    args.problem_shape = {num_experts, arrays.problem_shapes, nullptr};
    args.mainloop.ptr_A = arrays.weight;
    args.mainloop.dA = arrays.weight_layout;
    args.mainloop.ptr_B = arrays.act;
    args.mainloop.dB = arrays.stride_act;
    args.mainloop.ptr_S = arrays.group_scale;
    args.mainloop.dS = arrays.stride_group_scale;
    args.mainloop.chunk_size = kGroupSize;

    auto& fusion = args.epilogue.thread;        // ScaleByChannel: {ChannelScale, ScaleByToken, multiply}
    fusion.op_0.ptr_col = arrays.channel_scale;
    fusion.op_1.op_0.ptr_row = arrays.token_scale;  // ScaleByToken: {TokenScale, AccFetch, multiply}
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = nullptr;
    args.epilogue.ptr_D = reinterpret_cast<ElementOut**>(arrays.out);
    args.epilogue.dD = arrays.stride_out;
    args.hw_info.device_id = device_id;
    args.hw_info.sm_count = sm_count;
    return args;
  }

  static size_t workspace_bytes(int num_experts, int sm_count) {
    ExpertArrays arrays{};
    return Gemm::get_workspace_size(make_arguments(num_experts, arrays, 0, sm_count));
  }

  static Status run(GroupedGemmParams const& params, ExpertArrays const& arrays, void* workspace,
                    size_t workspace_bytes_available) {
    auto args = make_arguments(params.shape.num_experts, arrays, params.device_id, params.sm_count);
    size_t const needed = Gemm::get_workspace_size(args);
    if (needed > workspace_bytes_available) {
      return Status(StatusCode::kInternal, concat("CUTLASS workspace ", needed, " B exceeds the planned ",
                                                  workspace_bytes_available, " B"));
    }
    Gemm gemm;
    cutlass::Status status = gemm.can_implement(args);
    if (status != cutlass::Status::kSuccess) {
      return Status(StatusCode::kInternal, concat("CUTLASS can_implement: ", cutlassGetStatusString(status)));
    }
    status = gemm.initialize(args, workspace, params.stream);
    if (status != cutlass::Status::kSuccess) {
      return Status(StatusCode::kCudaError, concat("CUTLASS initialize: ", cutlassGetStatusString(status)));
    }
    status = gemm.run(params.stream);
    cudaError_t const launch = cudaGetLastError();
    if (status != cutlass::Status::kSuccess || launch != cudaSuccess) {
      return Status(StatusCode::kCudaError, concat("W4A8 grouped GEMM launch: ", cutlassGetStatusString(status), ", ",
                                                   cudaGetErrorName(launch), ": ", cudaGetErrorString(launch)));
    }
    return Status::Ok();
  }
};

}  // namespace w4a8moe::gemm
