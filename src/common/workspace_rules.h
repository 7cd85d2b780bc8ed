// The workspace argument of the entry points that take one (moe_forward, moe_routing, grouped_gemm): a device
// pointer aligned to kWorkspaceAlign and at least the bytes its size function gives. Host-only.
#pragma once

#include <cstddef>
#include <string>

#include "common/status_message.h"

namespace w4a8moe {

// Every region inside a workspace starts at a multiple of this too (moe/workspace_plan.h, grouped_gemm.cpp).
inline constexpr size_t kWorkspaceAlign = 256;

// needed_by: the size function as the message names it, e.g. "grouped_gemm_workspace_bytes(E)".
inline Status validate_workspace(void const* workspace, size_t bytes, size_t needed, std::string const& needed_by) {
  if (workspace == nullptr) return invalid_argument("args.workspace is null");
  if (!is_aligned(workspace, kWorkspaceAlign)) {
    return invalid_argument("args.workspace must be ", kWorkspaceAlign, "-byte aligned");
  }
  if (bytes < needed) return invalid_argument("args.workspace_bytes=", bytes, ": too small, ", needed_by, "=", needed);
  return Status::Ok();
}

}  // namespace w4a8moe
