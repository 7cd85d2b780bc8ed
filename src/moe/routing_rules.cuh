// Which local expert a slot's global expert id routes to: the one rule both routing paths (routing.cu and the
// one-launch layer's decode_layer_routing.cuh) apply.
#pragma once

#include <cstdint>

namespace w4a8moe::moe {

// The local id of global expert `id`, or -1: ids outside [0, experts) are dropped, and so are experts the map sends
// to -1 or outside [0, local_experts).
__device__ __forceinline__ int local_expert_of(int32_t id, int experts, int32_t const* expert_map, int local_experts) {
  if (id < 0 || id >= experts) return -1;
  int const local = expert_map ? expert_map[id] : id;
  return (local >= 0 && local < local_experts) ? local : -1;
}

}  // namespace w4a8moe::moe
