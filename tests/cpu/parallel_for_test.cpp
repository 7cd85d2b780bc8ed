// parallel_for (common/parallel_for.h): every item once, and an exception from any thread reaching the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <vector>

#include "common/parallel_for.h"

namespace w4a8moe {
namespace {

TEST(ParallelFor, CoversEveryItemOnce) {
  for (int threads : {1, 3, 8}) {
    std::vector<std::atomic<int>> seen(1001);
    parallel_for(1001, 7, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) seen[size_t(i)].fetch_add(1);
    });
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i << ", threads " << threads;
  }
}

// Thrown on a worker thread or on the calling one, the exception reaches the caller (not std::terminate), after
// every thread has stopped; the chunks after it are not all run.
TEST(ParallelFor, AnExceptionReachesTheCaller) {
  for (int64_t failing : {0, 500, 999}) {
    std::atomic<int64_t> run{0};
    EXPECT_THROW(parallel_for(1000, 1, 4,
                              [&](int64_t begin, int64_t) {
                                if (begin == failing) throw std::bad_alloc();
                                run.fetch_add(1);
                              }),
                 std::bad_alloc)
        << "failing chunk " << failing;
    EXPECT_LT(run.load(), 1000);
  }
  EXPECT_THROW(parallel_for(10, 100, 4, [](int64_t, int64_t) { throw std::runtime_error("one chunk"); }),
               std::runtime_error);
}

}  // namespace
}  // namespace w4a8moe
