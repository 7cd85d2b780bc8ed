// For the MoE layer's GEMM calls: a caller that fills a grouped GEMM's per-expert arrays itself, in a kernel it runs
// anyway once the expert offsets are final (the one-block routing at small batches), saves a launch per GEMM; one
// whose offsets are final two launches before the GEMM lets the decode kernel start before its PDL wait.
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

// What the MoE layer knows about its GEMM calls that a standalone grouped_gemm() cannot.
struct LayerGemmCall {
  // The per-expert arrays were filled from grouped_gemm_params(args) after the offsets were final, earlier on the
  // same stream: the GEMM kernel launches alone.
  bool arrays_built = false;
  // The offsets were written two or more launches before the GEMM (GroupedGemmParams::offsets_before_wait).
  bool offsets_before_wait = false;
};

// grouped_gemm() for a call of the MoE layer.
Status grouped_gemm_in_layer(GroupedGemmArgs const& args, LayerGemmCall const& call);

}  // namespace w4a8moe::gemm
