// The rules of the MoE layer's entry points (moe.h), each stated once (moe_validation.cpp). Host-only; every error
// names the argument and the rule.
#pragma once

#include "w4a8moe/moe.h"
#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe::moe {

// The routing half of a layer's shape (all moe_routing needs): experts, local experts, top-k.
Status validate_routing_shape(MoeShape const& s);

// The expert map: required when the rank holds fewer experts than the layer has.
Status validate_expert_map(MoeShape const& s, int32_t const* expert_map);

// The layer's shape rules (see MoeShape) and its GEMMs' for the packed layout.
Status validate_layer_shape(MoeShape const& s, PackedLayout layout);

// Everything moe_forward checks before it plans or enqueues.
Status validate_forward_args(MoeForwardArgs const& a);

// Everything moe_routing checks before it enqueues.
Status validate_routing_args(MoeRoutingArgs const& a);

}  // namespace w4a8moe::moe
