// Launchers of the prepack kernels (prepack_kernels.cu, exact_prepack_kernels.cu);
// arguments are validated by the caller.
#pragma once

#include <cuda_runtime.h>

#include "prepack/exact_format.h"
#include "prepack/packed_format.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::prepack {

cudaError_t launch_prepack(PrepackArgs const& args, PackedSections const& sections);

// The exact-scale layout (exact_prepack_kernels.cu).
cudaError_t launch_prepack_exact(PrepackArgs const& args, ExactSections const& sections);

// The MXFP4 layout (exact_prepack_kernels.cu); sections from mxfp4_sections.
cudaError_t launch_prepack_mxfp4(PrepackArgs const& args, ExactSections const& sections);

}  // namespace w4a8moe::prepack
