// For the MoE layer's GEMM calls: their offsets are final two launches before the GEMM, which lets the decode kernel
// start before its PDL wait; and where the layer fills the per-expert arrays itself, in a kernel it runs anyway once
// the offsets are final (the one-block routing at small batches), it saves a launch per GEMM.
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

// Whether the config this call runs does work of its own before its PDL wait (the decode kernel: its chunk, first
// weights and channel scales), which the kernel before it gains by letting it launch early. Arguments as above.
bool works_before_wait(GroupedGemmArgs const& args);

// grouped_gemm() for a call of the MoE layer, whose routing writes the offsets two or more launches before the GEMM
// (GroupedGemmParams::offsets_before_wait). arrays_built: the per-expert arrays were filled from
// grouped_gemm_params(args) after the offsets were final, earlier on the same stream, so the GEMM kernel launches
// alone. routing_end: GroupedGemmParams::routing_end (GEMM1 where the permute kernel publishes the routing's end).
Status grouped_gemm_in_layer(GroupedGemmArgs const& args, bool arrays_built, uint32_t const* routing_end = nullptr);

}  // namespace w4a8moe::gemm
