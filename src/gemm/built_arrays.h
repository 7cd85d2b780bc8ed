// For a caller that fills a grouped GEMM's per-expert arrays itself, in a kernel it runs anyway once the expert
// offsets are final (the MoE layer's one-block routing at small batches): one launch fewer per GEMM.
#pragma once

#include "gemm/grouped_params.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// What fill_expert_arrays() (expert_arrays.cuh) reads for this call; the arrays go to the start of args.workspace.
GroupedGemmParams grouped_gemm_params(GroupedGemmArgs const& args);

// Whether the config this call runs reads the per-expert arrays (the decode kernel finds its rows itself). For
// validated arguments: args.config empty or a registered name.
bool reads_expert_arrays(GroupedGemmArgs const& args);

// grouped_gemm() for a call whose arrays were filled from grouped_gemm_params(args) after the offsets were final,
// earlier on the same stream: it launches the GEMM kernel alone.
Status grouped_gemm_with_built_arrays(GroupedGemmArgs const& args);

}  // namespace w4a8moe::gemm
