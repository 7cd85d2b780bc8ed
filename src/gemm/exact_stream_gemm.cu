// The exact-scale layout's instantiations of block_stream_kernel.cuh (the "*_exact" configs), and the
// activations' group sums that layout takes beside the activations.
#include "gemm/exact_stream_gemm.h"

#include <cuda_fp8.h>

#include <algorithm>

#include "common/status_util.h"
#include "gemm/block_stream_kernel.cuh"

namespace w4a8moe::gemm {
namespace {

// One block per row, a thread per 16 activations (looping past 1024 threads); eight consecutive threads hold a
// group. The block and K / 16 are multiples of 8, so a team of eight is always whole.
__global__ void activation_group_sums_kernel(uint8_t const* act, int64_t rows, int k, float* sums, int64_t stride) {
  int64_t const row = blockIdx.x;
  for (int first = int(threadIdx.x) * 16; first < k; first += int(blockDim.x) * 16) {
    uint4 const bytes = *reinterpret_cast<uint4 const*>(act + row * k + first);
    uint32_t const words[4] = {bytes.x, bytes.y, bytes.z, bytes.w};
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        __half2_raw const h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(words[w] >> (16 * half)), __NV_E4M3);
        float2 const f = __half22float2(__half2(h));
        sum += f.x + f.y;
      }
    }
    unsigned const team = 0xFFu << (threadIdx.x & 24);  // the group's eight lanes, all of them here
    sum += __shfl_xor_sync(team, sum, 1);
    sum += __shfl_xor_sync(team, sum, 2);
    sum += __shfl_xor_sync(team, sum, 4);
    if (threadIdx.x % 8 == 0) sums[int64_t(first / kGroupSize) * stride + row] = sum * prepack::kExactOffsetValue;
  }
}

}  // namespace

Status launch_activation_group_sums(void const* act, int64_t rows, int k, float* sums, cudaStream_t stream) {
  if (rows == 0) return Status::Ok();
  activation_group_sums_kernel<<<unsigned(rows), unsigned(std::min(k / 16, 1024)), 0, stream>>>(
      static_cast<uint8_t const*>(act), rows, k, sums, group_sums_stride(rows));
  W4A8_CUDA_RETURN(cudaGetLastError());
  return Status::Ok();
}

template <int kRows, int kConsumers>
Status run_exact_stream_gemm(GroupedGemmParams const& params) {
  return run_block_stream_gemm<ExactScalesFormat, kRows, kConsumers>(params);
}

template Status run_exact_stream_gemm<8, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<16, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<32, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<48, 1>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<64, 2>(GroupedGemmParams const&);
template Status run_exact_stream_gemm<128, 2>(GroupedGemmParams const&);

}  // namespace w4a8moe::gemm
