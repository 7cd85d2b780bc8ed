#include "layer_weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

namespace w4a8moe::tools {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t x = (state += 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Approximately normal (sum of four uniforms, variance matched): fast enough for billions of weights.
float fast_normal(uint64_t& state) {
  uint64_t const bits = splitmix64(state);
  float sum = 0.0f;
  for (int i = 0; i < 4; ++i) sum += float((bits >> (16 * i)) & 0xFFFF) * (1.0f / 65536.0f);
  return (sum - 2.0f) * 1.7320508f;  // uniform sum of 4 has variance 1/3
}

// Quantises one projection's experts, `rows` x `cols` each, into int32 [E, rows, cols/8] + bf16 [E, rows, cols/128].
Status quantize_projection(int experts, int rows, int cols, uint64_t seed, int threads, ExpertProjection projection,
                           std::vector<int32_t>* packed, std::vector<uint16_t>* scales) {
  size_t const per_expert = size_t(rows) * cols;
  packed->assign(size_t(experts) * per_expert / 8, 0);
  scales->assign(size_t(experts) * rows * (cols / 128), 0);
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  Status first_error;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      RoundToNearestQuantizer quantizer;
      std::vector<float> w(per_expert);
      std::vector<int8_t> q(per_expert);
      for (int e = next++; e < experts && !failed; e = next++) {
        uint64_t state = seed * 1000003 + uint64_t(e) * 7919 + uint64_t(projection);
        float const std_dev = 1.0f / std::sqrt(float(cols));
        for (int r = 0; r < rows; ++r) {
          float const channel = (splitmix64(state) % 64 == 0) ? 4.0f : 1.0f;  // a few larger output channels
          for (int c = 0; c < cols; ++c) w[size_t(r) * cols + c] = channel * std_dev * fast_normal(state);
        }
        ExpertWeightInfo info;
        info.expert = e;
        info.projection = projection;
        info.rows = rows;
        info.cols = cols;
        Status const status =
            quantizer.quantize(info, w.data(), q.data(), scales->data() + size_t(e) * rows * (cols / 128));
        if (!status.ok()) {
          if (!failed.exchange(true)) first_error = status;
          return;
        }
        int32_t* out = packed->data() + size_t(e) * per_expert / 8;
        for (size_t i = 0; i < per_expert / 8; ++i) {
          uint32_t word = 0;
          for (int j = 0; j < 8; ++j) word |= uint32_t(q[i * 8 + j] + 8) << (4 * j);
          out[i] = int32_t(word);
        }
      }
    });
  }
  for (auto& thread : pool) thread.join();
  return failed ? first_error : Status::Ok();
}

}  // namespace

Status make_random_layer(MoeShape const& shape, uint64_t seed, int threads, LayerExperts* experts) {
  int const e = shape.num_local_experts, h = shape.hidden, inter = shape.inter;
  experts->num_experts = e;
  experts->hidden_size = h;
  experts->intermediate_size = inter;
  // GEMM1 stacks gate then up per expert: quantise each [I, H] half and interleave them expert by expert.
  std::vector<int32_t> gate, up;
  std::vector<uint16_t> gate_scales, up_scales;
  Status status = quantize_projection(e, inter, h, seed, threads, ExpertProjection::kGate, &gate, &gate_scales);
  if (status.ok()) status = quantize_projection(e, inter, h, seed, threads, ExpertProjection::kUp, &up, &up_scales);
  if (status.ok()) {
    status = quantize_projection(e, h, inter, seed, threads, ExpertProjection::kDown, &experts->gemm2_weights,
                                 &experts->gemm2_scales);
  }
  if (!status.ok()) return status;
  size_t const words = size_t(inter) * h / 8, groups = size_t(inter) * (h / 128);
  experts->gemm1_weights.resize(2 * words * e);
  experts->gemm1_scales.resize(2 * groups * e);
  for (int i = 0; i < e; ++i) {
    std::copy_n(gate.begin() + i * words, words, experts->gemm1_weights.begin() + 2 * i * words);
    std::copy_n(up.begin() + i * words, words, experts->gemm1_weights.begin() + (2 * i + 1) * words);
    std::copy_n(gate_scales.begin() + i * groups, groups, experts->gemm1_scales.begin() + 2 * i * groups);
    std::copy_n(up_scales.begin() + i * groups, groups, experts->gemm1_scales.begin() + (2 * i + 1) * groups);
  }
  return Status::Ok();
}

reference::QuantizedExperts unpack_for_reference(std::vector<int32_t> const& weights,
                                                 std::vector<uint16_t> const& scales, ExpertWeightShape const& shape) {
  reference::QuantizedExperts experts;
  experts.shape = shape;
  experts.q = reference::unpack_offset_binary(weights, shape);
  reference::split_bf16_scales(scales, &experts);
  return experts;
}

}  // namespace w4a8moe::tools
