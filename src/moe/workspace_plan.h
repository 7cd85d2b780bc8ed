// Where the MoE layer keeps its intermediates in the caller's workspace. Internal; tests read the intermediates
// through it to check every stage.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/workspace_rules.h"
#include "moe/moe_kernels.h"
#include "prepack/packed_format.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::moe {

// Byte offsets of the intermediates in the workspace, for up to `tokens` tokens.
struct WorkspacePlan {
  size_t topk_ids = 0, topk_weights = 0, chunk_counts = 0, offsets = 0, dest_row = 0, row_slot = 0;
  size_t routing_end = 0;  // the routing's end as the permute kernel publishes it (common/pdl.cuh)
  size_t act1 = 0, scale1 = 0, gemm1_out = 0, act2 = 0, scale2 = 0, gemm2_out = 0;
  size_t sums1 = 0, sums2 = 0;  // the activations' group sums (the exact-scale layout's GEMMs; a few % of act)
  // One workspace per GEMM: at small batches the routing kernel fills both GEMMs' per-expert arrays at once.
  size_t gemm1_workspace = 0, gemm2_workspace = 0;
  size_t gemm_workspace_bytes = 0, total = 0;
};

inline WorkspacePlan plan_workspace(MoeShape const& shape, int64_t tokens) {
  size_t const rows = size_t(tokens) * shape.top_k;
  WorkspacePlan p;
  size_t offset = 0;
  auto place = [&](size_t* field, size_t bytes) {
    *field = offset;
    offset = prepack::align_up(offset + bytes, kWorkspaceAlign);
  };
  // First, at the same offset in every plan: a workspace shared by layers of other shapes never holds their data
  // there, so the word holds a published end only between this call's permute and unpermute kernels.
  place(&p.routing_end, sizeof(uint32_t));
  place(&p.topk_ids, rows * sizeof(int32_t));
  place(&p.topk_weights, rows * sizeof(float));
  place(&p.chunk_counts, size_t(routing_scratch_words(int64_t(rows), shape.num_local_experts)) * sizeof(int32_t));
  place(&p.offsets, (shape.num_local_experts + 1) * sizeof(int64_t));
  place(&p.dest_row, rows * sizeof(int32_t));
  place(&p.row_slot, rows * sizeof(int32_t));
  // The GEMMs' activation rows hold padded_k columns. GEMM1's output (2I bf16 a row) and, in the same place, the
  // one-launch layer's fp32 SiLU rows (padded_k(I) columns, at least as many bytes).
  place(&p.act1, rows * padded_k(shape.hidden));
  place(&p.scale1, rows * sizeof(float));
  place(&p.gemm1_out, rows * padded_k(shape.inter) * sizeof(float));
  place(&p.act2, rows * padded_k(shape.inter));
  place(&p.scale2, rows * sizeof(float));
  place(&p.gemm2_out, rows * shape.hidden * 2);
  place(&p.sums1, activation_group_sums_bytes(int64_t(rows), shape.hidden));
  place(&p.sums2, activation_group_sums_bytes(int64_t(rows), shape.inter));
  p.gemm_workspace_bytes = grouped_gemm_workspace_bytes(shape.num_local_experts);
  place(&p.gemm1_workspace, p.gemm_workspace_bytes);
  place(&p.gemm2_workspace, p.gemm_workspace_bytes);
  p.total = offset;
  return p;
}

}  // namespace w4a8moe::moe
