#include "gemm/tensor_map.h"

#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include "common/status_util.h"
#include "gemm/stream_plan.h"  // kStripeChannels, kAtomK, kAtomBytes, kAtomsPerGroup

namespace w4a8moe::gemm {
namespace {

// cuTensorMapEncodeTiled through the runtime's driver entry point: no link against libcuda.
PFN_cuTensorMapEncodeTiled_v12000 encode_function() {
  static PFN_cuTensorMapEncodeTiled_v12000 const function = [] {
    void* pointer = nullptr;
    cudaDriverEntryPointQueryResult result{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &pointer, 12000, cudaEnableDefault, &result) !=
            cudaSuccess ||
        result != cudaDriverEntryPointSuccess) {
      pointer = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(pointer);
  }();
  return function;
}

// A byte tensor of kRank dimensions (strides: bytes between consecutive entries of dimensions 1..kRank-1), copied
// in boxes of `box`; `what` names it in the error.
template <int kRank>
Status encode_byte_tensor_map(CUtensorMap* map, void const* base, cuuint64_t const (&dims)[kRank],
                              cuuint64_t const (&strides)[kRank - 1], cuuint32_t const (&box)[kRank],
                              CUtensorMapSwizzle swizzle, std::string const& what) {
  auto const encode = encode_function();
  if (encode == nullptr) return Status(StatusCode::kCudaError, "cuTensorMapEncodeTiled is not available");
  cuuint32_t element_strides[kRank];
  for (int d = 0; d < kRank; ++d) element_strides[d] = 1;
  CUresult const result =
      encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, kRank, const_cast<void*>(base), dims, strides, box, element_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    return Status(StatusCode::kCudaError,
                  concat("cuTensorMapEncodeTiled failed (CUresult ", int(result), ") for ", what));
  }
  return Status::Ok();
}

}  // namespace

Status make_activation_tensor_map(void const* base, int64_t rows, int64_t cols, int box_rows, CUtensorMap* map) {
  cuuint64_t const dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  cuuint64_t const strides[1] = {cuuint64_t(cols)};  // bytes between rows
  cuuint32_t const box[2] = {128, cuuint32_t(box_rows)};
  return encode_byte_tensor_map(map, base, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B,
                                concat("activations [", rows, ", ", cols, "]"));
}

Status make_weight_tensor_map(void const* base, int num_experts, int64_t n, int64_t k, int tile_stripes,
                              CUtensorMap* map) {
  int64_t const stripes = n / kStripeChannels;
  cuuint64_t const dims[3] = {cuuint64_t(kAtomBytes), cuuint64_t(stripes), cuuint64_t(num_experts * (k / kAtomK))};
  cuuint64_t const strides[2] = {cuuint64_t(kAtomBytes), cuuint64_t(stripes * kAtomBytes)};
  cuuint32_t const box[3] = {cuuint32_t(kAtomBytes), cuuint32_t(tile_stripes), cuuint32_t(kAtomsPerGroup)};
  return encode_byte_tensor_map(map, base, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE,
                                concat("weights of ", num_experts, " experts [", n, ", ", k, "]"));
}

}  // namespace w4a8moe::gemm
