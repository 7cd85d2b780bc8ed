// Work sharing for the CPU side of the accuracy report: common/parallel_for.h on the report's thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>

#include "common/parallel_for.h"

namespace w4a8moe::accuracy {

// Threads parallel_for uses; the command line sets it (default: every hardware thread).
inline int& worker_threads() {
  static int threads = std::max(1u, std::thread::hardware_concurrency());
  return threads;
}

// w4a8moe::parallel_for on worker_threads() threads.
template <class Body>
void parallel_for(int64_t count, int64_t grain, Body const& body) {
  w4a8moe::parallel_for(count, grain, worker_threads(), body);
}

}  // namespace w4a8moe::accuracy
