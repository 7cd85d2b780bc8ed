// A loop over [0, count) spread over host threads, for the host side of the tools, benchmarks and tests (random
// layers, the accuracy report's and the tests' reference numerics).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace w4a8moe {

// The threads a host-side loop takes by default: every hardware thread, at most 16 (the lent GPU machines have 16
// cores; the build machine and CI 2).
inline int host_threads() { return int(std::max(1u, std::min(16u, std::thread::hardware_concurrency()))); }

// Calls body(begin, end) on consecutive chunks of at most `grain` items until [0, count) is covered, on up to
// `threads` threads (the calling one included). Chunks are handed out dynamically, so uneven chunks (experts with
// more rows, say) still keep every thread busy. An exception from body (std::bad_alloc, say) stops the handing out
// and is rethrown to the caller once every thread has stopped: thrown on a thread of its own it would end the
// process.
template <class Body>
void parallel_for(int64_t count, int64_t grain, int threads, Body const& body) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (int64_t begin; (begin = next.fetch_add(grain)) < count;) body(begin, std::min(count, begin + grain));
    } catch (...) {
      next.store(count);
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  int64_t const chunks = (count + grain - 1) / grain;
  int const used = int(std::min<int64_t>(std::max(threads, 1), chunks));
  std::vector<std::thread> pool;
  for (int t = 1; t < used; ++t) pool.emplace_back(work);
  work();
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace w4a8moe
