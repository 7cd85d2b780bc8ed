// Enqueues a streaming kernel's launch plan (stream_plan.h, plan_worker_launch) for stream_gemm.cu and
// block_stream_kernel.cuh: the activations' tensor map, then either one block an SM holding plan.workers_per_block
// workers that take the SM's items in turn (item_deal.cuh) or are the K slices of its items (plan.block_splits,
// stream_gemm.cu only), or one worker a block in clusters of plan.splits blocks, one K slice each. Both kernels take
// (params, tensor map, their extra arguments, K slices: the cluster's, or the block's where it holds several
// workers).
#pragma once

#include "common/pdl.cuh"
#include "common/status_util.h"
#include "gemm/grouped_params.h"
#include "gemm/stream_plan.h"
#include "gemm/tensor_map.h"

namespace w4a8moe::gemm {

// dealt: the kernel whose blocks hold the SM's workers (dealt_threads a block; unused where the plan is not dealt);
// single: the one-worker kernel (threads a block); extra: the kernel's arguments between the map and the K slices.
template <class Kernel, class... Extra>
Status enqueue_worker_launch(StreamLaunchPlan const& plan, int chunk_rows, Kernel dealt, int dealt_threads,
                             Kernel single, int threads, GroupedGemmParams const& p, Extra const&... extra) {
  CUtensorMap act_map;
  W4A8_RETURN_IF_ERROR(make_activation_tensor_map(p.act, p.total_rows, p.shape.k, chunk_rows, &act_map));
  if (plan.workers_per_block > 1) {
    W4A8_CUDA_RETURN(launch_with_pdl(dealt, dim3(unsigned(plan.blocks)), dim3(unsigned(dealt_threads)),
                                     plan.shared_bytes, p.stream, p, act_map, extra..., plan.block_splits));
    return Status::Ok();
  }
  W4A8_CUDA_RETURN(launch_with_pdl_in_clusters(single, dim3(unsigned(plan.blocks)), dim3(unsigned(threads)),
                                               plan.shared_bytes, p.stream, unsigned(plan.splits), p, act_map,
                                               extra..., plan.splits));
  return Status::Ok();
}

}  // namespace w4a8moe::gemm
