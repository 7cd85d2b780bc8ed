// Cached facts about the current CUDA device.
#pragma once

#include "w4a8moe/status.h"

namespace w4a8moe {

// Ok if the current device is a Hopper GPU (compute capability 9.0), the only one the kernels are built for.
Status require_hopper_device();

// Multiprocessor count of the current device, or 0 if there is no usable device.
int current_device_sm_count();

}  // namespace w4a8moe
