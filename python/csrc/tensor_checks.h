// The argument checks of the PyTorch ops (w4a8moe_ops.cpp): a library Status as a Python exception, and the checks of
// each tensor argument (device, dtype, shape, contiguity, alignment, packed buffers and their layout), every message
// naming the op and the argument.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"
#include "w4a8moe/status.h"

namespace w4a8moe_torch {

using w4a8moe::Status;
using w4a8moe::StatusCode;

inline void throw_on_error(Status const& status, char const* op) {
  if (status.ok()) return;
  // The CUDA error the library reports stays pending in the runtime, and the next CUDA call anywhere, some
  // unrelated torch op, would raise it again: cleared here, so that it is raised once, with the library's message.
  if (status.code() == StatusCode::kCudaError) (void)cudaGetLastError();
  if (status.code() == StatusCode::kInvalidArgument) TORCH_CHECK_VALUE(false, op, ": ", status.to_string());
  if (status.code() == StatusCode::kNotSupported) TORCH_CHECK_NOT_IMPLEMENTED(false, op, ": ", status.to_string());
  TORCH_CHECK(false, op, ": ", status.to_string());
}

inline bool is_aligned(at::Tensor const& t, size_t bytes) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % bytes == 0;
}

inline std::string dtype_list(std::vector<at::ScalarType> const& dtypes) {
  std::string names;
  for (size_t i = 0; i < dtypes.size(); ++i) {
    names += (i == 0 ? "" : (i + 1 == dtypes.size() ? " or " : ", "));
    names += c10::toString(dtypes[i]);
  }
  return names;
}

inline w4a8moe::PackedLayout parse_layout(std::string const& name, char const* op) {
  w4a8moe::PackedLayout layout = w4a8moe::PackedLayout::kLookupTable;
  throw_on_error(w4a8moe::parse_packed_layout(name.c_str(), &layout), op);
  return layout;
}

// moe_forward's path and activation by name, as parse_layout reads a layout: the op's schema takes strings, so the
// enums' numbering stays in the library's header.
inline w4a8moe::MoePath parse_path(std::string const& name, char const* op) {
  w4a8moe::MoePath path = w4a8moe::MoePath::kAuto;
  throw_on_error(w4a8moe::parse_moe_path(name.c_str(), &path), op);
  return path;
}

inline w4a8moe::MoeActivation parse_activation(std::string const& name, char const* op) {
  if (name == "silu") return w4a8moe::MoeActivation::kSiluMul;
  TORCH_CHECK_VALUE(name == "gpt_oss_swiglu", op, ": activation='", name, "': must be \"silu\" or \"gpt_oss_swiglu\"");
  return w4a8moe::MoeActivation::kGptOssSwiglu;
}

// The checks shared by every tensor argument of one call; `device` is that of the op's first tensor.
class TensorChecks {
 public:
  TensorChecks(char const* op, at::Tensor const& first, char const* first_name) : op_(op), device_(first.device()) {
    TORCH_CHECK_VALUE(first.is_cuda(), op_, ": ", first_name, " must be a CUDA tensor, got a tensor on ",
                      first.device(), " (the W4A8 kernels run on a Hopper GPU)");
  }

  char const* op() const { return op_; }
  c10::Device device() const { return device_; }

  // Device, dtype, rank, sizes (`layout` names them in the message), contiguity and data-pointer alignment.
  void check(at::Tensor const& t, char const* name, std::vector<at::ScalarType> const& dtypes,
             std::vector<int64_t> const& sizes, char const* layout, size_t alignment) const {
    TORCH_CHECK_VALUE(t.device() == device_, op_, ": ", name, " is on ", t.device(), ", expected ", device_,
                      " like the op's other tensors");
    bool dtype_ok = false;
    for (auto dtype : dtypes) dtype_ok = dtype_ok || t.scalar_type() == dtype;
    TORCH_CHECK_TYPE(dtype_ok, op_, ": ", name, " must be ", dtype_list(dtypes), ", got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.sizes() == at::IntArrayRef(sizes), op_, ": ", name, " must have shape ", at::IntArrayRef(sizes),
                      " (", layout, "), got ", t.sizes());
    TORCH_CHECK_VALUE(t.is_contiguous(), op_, ": ", name, " must be contiguous (call .contiguous()), got strides ",
                      t.strides());
    TORCH_CHECK_VALUE(is_aligned(t, alignment), op_, ": ", name, "'s data pointer must be ", alignment,
                      "-byte aligned; a view at an offset into a larger tensor may break this (call .clone())");
  }

  void rank(at::Tensor const& t, char const* name, int64_t dims, char const* layout) const {
    TORCH_CHECK_VALUE(t.dim() == dims, op_, ": ", name, " must be ", dims, "-D (", layout, "), got shape ", t.sizes());
  }

  int to_int(int64_t value, char const* name) const {
    TORCH_CHECK_VALUE(value >= 0 && value <= std::numeric_limits<int>::max(), op_, ": ", name, "=", value,
                      " is out of range");
    return static_cast<int>(value);
  }

  // A packed buffer from prepack_weights: uint8 [bytes] on the op's device, as the library reads it.
  void packed(at::Tensor const& t, char const* name) const {
    rank(t, name, 1, "uint8 [bytes] from prepack_weights");
    check(t, name, {at::kByte}, {t.numel()}, "uint8 [bytes] from prepack_weights", 256);
  }

  // The layout of a packed buffer for `shape`: `layout` when given, or else the one layout whose packed size the
  // buffer has (the layouts' sizes differ for most shapes: 0.5625, 0.516 and 0.531 bytes per weight; where two
  // coincide, small shapes whose sections round to the same alignment, the caller must name the layout).
  w4a8moe::PackedLayout packed_layout(at::Tensor const& t, char const* name, w4a8moe::ExpertWeightShape const& shape,
                                      std::optional<std::string> const& layout) const {
    if (layout.has_value()) return parse_layout(*layout, op_);
    throw_on_error(w4a8moe::validate_weight_shape(shape, name), op_);
    std::vector<w4a8moe::PackedLayout> matches;
    std::string sizes;
    for (auto const candidate : {w4a8moe::PackedLayout::kLookupTable, w4a8moe::PackedLayout::kExactScales,
                                 w4a8moe::PackedLayout::kMxfp4}) {
      // 0 for a layout the shape cannot take (MXFP4: K a multiple of 32)
      int64_t const bytes = static_cast<int64_t>(w4a8moe::packed_weights_bytes(shape, candidate));
      if (bytes == 0) continue;
      sizes += std::string(sizes.empty() ? "" : ", ") + std::to_string(bytes) + " (layout \"" +
               w4a8moe::packed_layout_name(candidate) + "\")";
      if (t.numel() == bytes) matches.push_back(candidate);
    }
    TORCH_CHECK_VALUE(!matches.empty(), op_, ": ", name, " has ", t.numel(), " bytes, but weights packed for E=",
                      shape.num_experts, ", N=", shape.n, ", K=", shape.k, " take ", sizes,
                      ": it was packed for another shape");
    TORCH_CHECK_VALUE(matches.size() == 1, op_, ": ", name, "'s size (", t.numel(), " bytes) fits more than one ",
                      "layout for E=", shape.num_experts, ", N=", shape.n, ", K=", shape.k, " (", sizes,
                      "): pass layout=");
    return matches[0];
  }

  // A packed buffer that the library reads for `shape` without being told its size (the grouped GEMM): the size
  // of that shape in its layout is checked here, before the library reads the pointer.
  w4a8moe::PackedLayout check_packed(at::Tensor const& t, char const* name, w4a8moe::ExpertWeightShape const& shape,
                                     std::optional<std::string> const& layout) const {
    rank(t, name, 1, "uint8 [bytes] from prepack_weights");
    w4a8moe::PackedLayout const found = packed_layout(t, name, shape, layout);
    throw_on_error(w4a8moe::validate_weight_shape(shape, found, name), op_);
    int64_t const bytes = static_cast<int64_t>(w4a8moe::packed_weights_bytes(shape, found));
    TORCH_CHECK_VALUE(t.numel() == bytes, op_, ": ", name, " has ", t.numel(), " bytes, but weights packed for E=",
                      shape.num_experts, ", N=", shape.n, ", K=", shape.k, " take ", bytes, " in layout \"",
                      w4a8moe::packed_layout_name(found), "\": it was packed for another shape or layout");
    packed(t, name);
    return found;
  }

  // An optional fp32 bias [rows, cols] (the MXFP4 layout's expert biases); nullptr when absent.
  float const* bias(std::optional<at::Tensor> const& t, char const* name, int64_t rows, int64_t cols,
                    char const* layout) const {
    if (!t.has_value()) return nullptr;
    check(*t, name, {at::kFloat}, {rows, cols}, layout, 4);
    return t->data_ptr<float>();
  }

 private:
  char const* op_;
  c10::Device device_;
};

}  // namespace w4a8moe_torch
