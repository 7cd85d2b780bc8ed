// Work sharing for the CPU side of the accuracy report: a loop over [0, count) spread over worker threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace w4a8moe::accuracy {

// Threads parallel_for uses; the command line sets it (default: every hardware thread).
inline int& worker_threads() {
  static int threads = std::max(1u, std::thread::hardware_concurrency());
  return threads;
}

// Calls body(begin, end) on consecutive chunks of at most `grain` items until [0, count) is covered. Chunks are
// handed out dynamically, so uneven chunks (experts with more rows, say) still keep every thread busy.
template <class Body>
void parallel_for(int64_t count, int64_t grain, Body const& body) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t begin; (begin = next.fetch_add(grain)) < count;) body(begin, std::min(count, begin + grain));
  };
  int64_t const chunks = (count + grain - 1) / grain;
  int const threads = int(std::min<int64_t>(worker_threads(), chunks));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& thread : pool) thread.join();
}

}  // namespace w4a8moe::accuracy
