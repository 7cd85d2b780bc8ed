// The MXFP4 layout's instantiations of block_stream_kernel.cuh: the "*_mxfp4" configs.
#include "gemm/block_stream_kernel.cuh"
#include "gemm/exact_stream_gemm.h"

namespace w4a8moe::gemm {

template <int kRows, int kConsumers>
Status run_mxfp4_stream_gemm(GroupedGemmParams const& params) {
  return run_block_stream_gemm<Mxfp4Format, kRows, kConsumers>(params);
}

template Status run_mxfp4_stream_gemm<8, 1>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<16, 1>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<32, 1>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<48, 1>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<64, 1>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<64, 2>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<128, 2>(GroupedGemmParams const&);
template Status run_mxfp4_stream_gemm<256, 2>(GroupedGemmParams const&);

}  // namespace w4a8moe::gemm
