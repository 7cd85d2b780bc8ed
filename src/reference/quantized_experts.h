// Plain C++ ground truth for the weight formats and the grouped GEMM: no CUDA, no CUTLASS. Tests compare the
// kernels with these, and these with float64 computations written out in the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "w4a8moe/types.h"

namespace w4a8moe::reference {

// One projection's experts in unpacked form: W[e,n,k] ~= q * sg[e,n,k/128] * sc[e,n], as the lookup tables hold it:
// W = e4m3(q * step) * sc, step the table step (table_step where set, else sg).
struct QuantizedExperts {
  ExpertWeightShape shape;
  std::vector<int8_t> q;               // [E, N, K], values in [-8, 7]
  std::vector<uint8_t> group_scale;    // [E, N, padded_k(K)/128], e4m3 bits (the last group may be partial)
  std::vector<float> channel_scale;    // [E, N]
  // When set (same shape as group_scale; split_bf16_scales sets it): the unrounded value the lookup tables multiply
  // q by, s / c / 8, each table entry rounded once; group_scale then holds its e4m3 rounding.
  std::vector<float> table_step;
  // When set, the weights as the exact-scale layout holds them: W = q * exact_group_scale * sc, not rounded
  // ([E, N, K/128]; set by hold_exact_scales). moe_reference's GEMM rows honour it.
  std::vector<float> exact_group_scale;

  int64_t group_count() const { return padded_k(shape.k) / shape.group_size; }
  int64_t q_index(int e, int n, int k) const { return (int64_t(e) * shape.n + n) * shape.k + k; }
  int64_t scale_index(int e, int n, int g) const { return (int64_t(e) * shape.n + n) * group_count() + g; }
  // What the lookup table of group scale_index multiplies q by before rounding to e4m3.
  float step(int64_t scale_index) const;
};

// compressed-tensors packing: int32 [E, N, K/8], nibble i of word j = q[k = 8j + i] + 8.
std::vector<int32_t> pack_offset_binary(QuantizedExperts const& experts);
std::vector<int8_t> unpack_offset_binary(std::vector<int32_t> const& packed, ExpertWeightShape const& shape);

// Two's-complement int4, two per byte, low nibble = even k: uint8 [E, N, K/2].
std::vector<uint8_t> pack_signed_int4(QuantizedExperts const& experts);

// The scale split of bf16 checkpoints: bf16 group scales [E, N, padded_k(K)/128] -> the experts' table steps, e4m3
// group scales and fp32 channel scales, per output channel (experts->shape):
//   c = max_g |s| / 448, table_step = s / c / 8, sg = e4m3(table_step), sc = 8 c   (an all-zero row gives 0s)
// so that the tables hold e4m3(q * s / c / 8), each entry rounded once.
void split_bf16_scales(std::vector<uint16_t> const& bf16_scales, QuantizedExperts* experts);

// The exact-scale layout's weights, unrounded products: packed from the experts' own e4m3 sg and fp32 sc, W = q * sg
// * sc; packed from bf16 checkpoint scales s, W = q * s (the channel scales become 1).
void hold_exact_scales(QuantizedExperts* experts);
void hold_exact_scales(QuantizedExperts* experts, std::vector<uint16_t> const& bf16_scales);

// The 8-byte lookup table of one group's step: byte i = e4m3((i - 8) * t), i.e. {-8 t, ..., -1 t}, t the step
// bounded away from e4m3's subnormals (prepack::bounded_table_step), as every table is built.
void lut_from_step(float step, uint8_t lut[8]);
void lut_from_step(uint8_t, uint8_t[8]) = delete;  // e4m3 bits are not a step: pass e4m3_to_float(sg)

// The weight value the kernel multiplies: e4m3(q * t), t as in lut_from_step, as a float.
float dequantized_weight(int q, float step);
float dequantized_weight(int, uint8_t) = delete;  // likewise

// Expert e's weights as the kernel multiplies them, e4m3(q * step) as floats, [N, K] (channel scale not applied).
std::vector<float> dequantize_expert(QuantizedExperts const& experts, int e);

// The packed buffer prepack_weights() produces for these experts, byte for byte, except the layouts section, which
// holds CuTe objects and is left zero here.
std::vector<uint8_t> prepack(QuantizedExperts const& experts);

// Inverse of prepack(): reads q, sg and sc back out of a packed buffer (sg from each table's -1 entry, -e4m3(step);
// a table rounded from an unrounded step is not recovered, table_step stays empty).
QuantizedExperts unpack(std::vector<uint8_t> const& packed, ExpertWeightShape const& shape);

// out[m, n] = st[m] * sc[e, n] * sum_k a[m, k] * e4m3(q[e, n, k] * step[e, n, k/128]), accumulated in float64, for
// the rows listed in `rows` (all rows of all experts if empty); other rows are left as they are. If out_abs is not
// null it receives st * sc * sum_k |a * w|, the magnitude that bounds the kernel's accumulation error.
// act: e4m3 bits [total_rows, padded_k(K)] as the kernels read them (columns past K are not read here); offsets:
// [E + 1]; out, out_abs: [total_rows, N].
void grouped_gemm(QuantizedExperts const& experts, std::vector<uint8_t> const& act,
                  std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                  std::vector<double>* out, std::vector<double>* out_abs = nullptr,
                  std::vector<int64_t> const& rows = {});

// What the reference grouped GEMMs share (this one, grouped_gemm_exact, grouped_gemm_mxfp4): the rows they compute
// (`rows`, or every expert row [offsets.front(), offsets.back()) if empty), the expert holding row m (throws
// std::invalid_argument "<who>: row outside every expert" if none of the `experts` does), and row m's K e4m3
// activations from act [total_rows, padded_k(K)] as doubles.
std::vector<int64_t> gemm_rows(std::vector<int64_t> const& offsets, std::vector<int64_t> const& rows);
int expert_of_row(std::vector<int64_t> const& offsets, int64_t m, int experts, char const* who);
void activation_row(std::vector<uint8_t> const& act, int64_t m, int k, double* a);

// The loop of the references that dequantise an expert whole (grouped_gemm, grouped_gemm_mxfp4), over gemm_rows in
// order: expert e's weights [N, K] from dequantize(e), once for each run of its rows, then out[m, n] = scale(m, e, n)
// * sum_k a[m, k] w[n, k] (+ bias(e, n) where bias is set) and out_abs[m, n] = |scale(m, e, n)| * sum_k |a w|.
struct DequantizedExperts {
  ExpertWeightShape shape;
  char const* who;  // for expert_of_row's error
  std::function<std::vector<float>(int expert)> dequantize;
  std::function<double(int64_t row, int expert, int n)> scale;
  std::function<double(int expert, int n)> bias;  // may be empty
};
void dequantized_grouped_gemm(DequantizedExperts const& experts, std::vector<uint8_t> const& act,
                              std::vector<int64_t> const& offsets, std::vector<int64_t> const& rows,
                              std::vector<double>* out, std::vector<double>* out_abs);

}  // namespace w4a8moe::reference
