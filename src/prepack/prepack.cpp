// Public prepack entry points: validation, sizes, the synchronous load-time prepack, header checks.
#include "w4a8moe/prepack.h"

#include <algorithm>
#include <iterator>
#include <string>

#include "common/device_info.h"
#include "common/named_choice.h"
#include "common/status_util.h"
#include "prepack/exact_format.h"
#include "prepack/mxfp4_format.h"
#include "prepack/packed_format.h"
#include "prepack/prepack_kernels.h"

namespace w4a8moe {
Status validate_weight_shape(ExpertWeightShape const& shape, char const* arg_name) {
  if (shape.num_experts < 1) {
    return invalid_argument(arg_name, ".num_experts=", shape.num_experts, ": must be at least 1");
  }
  if (shape.group_size != kGroupSize) {
    return invalid_argument(arg_name, ".group_size=", shape.group_size, ": only group size ", kGroupSize,
                            " is supported (the lookup-table conversion needs the group to span the 128-wide fp8 "
                            "K tile)");
  }
  if (!is_valid_size(shape.n)) {
    return invalid_argument(arg_name, ".n=", shape.n,
                            ": N must be a positive multiple of 16 (the weight reorder atom covers 16 rows)");
  }
  if (!is_valid_size(shape.k)) {
    return invalid_argument(arg_name, ".k=", shape.k,
                            ": K must be a positive multiple of 16 (packed padded to whole 128-groups)");
  }
  if (int64_t(shape.n) * padded_k(shape.k) >= (int64_t(1) << 31)) {
    return invalid_argument(arg_name, ": N*padded_k(K)=", int64_t(shape.n) * padded_k(shape.k),
                            " elements per expert must stay below 2^31 (the reordered layout indexes with int32)");
  }
  return Status::Ok();
}

Status validate_weight_shape(ExpertWeightShape const& shape, PackedLayout layout, char const* arg_name) {
  W4A8_RETURN_IF_ERROR(validate_weight_shape(shape, arg_name));
  if (layout == PackedLayout::kMxfp4 && shape.k % prepack::kMxfp4BlockSize != 0) {
    return invalid_argument(arg_name, ".k=", shape.k, ": the MXFP4 layout needs K a multiple of ",
                            prepack::kMxfp4BlockSize, " (whole e8m0 scale blocks)");
  }
  return Status::Ok();
}

namespace {

constexpr PackedLayout kLayouts[] = {PackedLayout::kLookupTable, PackedLayout::kExactScales, PackedLayout::kMxfp4};

bool known_layout(PackedLayout layout) {
  return std::find(std::begin(kLayouts), std::end(kLayouts), layout) != std::end(kLayouts);
}

size_t layout_bytes(ExpertWeightShape const& shape, PackedLayout layout) {
  switch (layout) {
    case PackedLayout::kExactScales:
      return prepack::exact_sections(shape).total;
    case PackedLayout::kMxfp4:
      return prepack::mxfp4_sections(shape).total;
    default:
      return prepack::packed_sections(shape).total;
  }
}

uint32_t layout_version(PackedLayout layout) {
  switch (layout) {
    case PackedLayout::kExactScales:
      return prepack::kExactFormatVersion;
    case PackedLayout::kMxfp4:
      return prepack::kMxfp4FormatVersion;
    default:
      return kPackedFormatVersion;
  }
}

// The formats a layout takes: MXFP4 blocks and e8m0 scales for the MXFP4 layout, the int4 formats for the others.
Status validate_formats(PrepackArgs const& args) {
  bool const mxfp4 = args.layout == PackedLayout::kMxfp4;
  if (args.weight_format != WeightFormat::kOffsetBinaryInt32 && args.weight_format != WeightFormat::kSignedInt4 &&
      args.weight_format != WeightFormat::kMxfp4) {
    return invalid_argument("args.weight_format=", int(args.weight_format), ": unknown weight format");
  }
  if (args.scale_format != ScaleFormat::kBF16 && args.scale_format != ScaleFormat::kFP8WithChannelScale &&
      args.scale_format != ScaleFormat::kE8m0) {
    return invalid_argument("args.scale_format=", int(args.scale_format), ": unknown scale format");
  }
  if ((args.weight_format == WeightFormat::kMxfp4) != mxfp4) {
    return invalid_argument("args.weight_format=", int(args.weight_format), " with args.layout=\"",
                            packed_layout_name(args.layout), "\": WeightFormat::kMxfp4 goes with ",
                            "PackedLayout::kMxfp4 and only with it");
  }
  if ((args.scale_format == ScaleFormat::kE8m0) != mxfp4) {
    return invalid_argument("args.scale_format=", int(args.scale_format), " with args.layout=\"",
                            packed_layout_name(args.layout), "\": ScaleFormat::kE8m0 goes with ",
                            "PackedLayout::kMxfp4 and only with it");
  }
  return Status::Ok();
}

}  // namespace

Status validate_packed_layout(PackedLayout layout, char const* arg_name) {
  if (known_layout(layout)) return Status::Ok();
  return invalid_argument(arg_name, "=", int(layout), ": unknown layout (kLookupTable, kExactScales or kMxfp4)");
}

char const* packed_layout_name(PackedLayout layout) {
  switch (layout) {
    case PackedLayout::kLookupTable:
      return "lookup";
    case PackedLayout::kExactScales:
      return "exact";
    case PackedLayout::kMxfp4:
      return "mxfp4";
  }
  return "unknown";
}

Status parse_packed_layout(char const* name, PackedLayout* layout, char const* arg_name) {
  return parse_named_choice(name, kLayouts, packed_layout_name, layout, arg_name);
}

size_t packed_weights_bytes(ExpertWeightShape const& shape, PackedLayout layout) {
  if (!known_layout(layout) || !validate_weight_shape(shape, layout).ok()) return 0;
  return layout_bytes(shape, layout);
}

Status prepack_weights(PrepackArgs const& args) {
  W4A8_RETURN_IF_ERROR(validate_packed_layout(args.layout, "args.layout"));
  W4A8_RETURN_IF_ERROR(validate_weight_shape(args.shape, args.layout, "args.shape"));
  W4A8_RETURN_IF_ERROR(validate_formats(args));
  if (args.weights == nullptr) return invalid_argument("args.weights is null");
  if (!is_aligned(args.weights, 4)) return invalid_argument("args.weights must be 4-byte aligned");
  if (args.group_scales == nullptr) return invalid_argument("args.group_scales is null");
  if (args.scale_format == ScaleFormat::kBF16 && !is_aligned(args.group_scales, 2)) {
    return invalid_argument("args.group_scales (bf16) must be 2-byte aligned");
  }
  if (args.scale_format == ScaleFormat::kFP8WithChannelScale) {
    if (args.channel_scales == nullptr) {
      return invalid_argument("args.channel_scales is null: required with ScaleFormat::kFP8WithChannelScale");
    }
    if (!is_aligned(args.channel_scales, 4)) return invalid_argument("args.channel_scales must be 4-byte aligned");
  } else if (args.channel_scales != nullptr) {
    return invalid_argument("args.channel_scales must be null with ScaleFormat::kBF16 and kE8m0 (derived from the ",
                            "group scales)");
  }
  if (args.packed == nullptr) return invalid_argument("args.packed is null");
  if (!is_aligned(args.packed, prepack::kSectionAlign)) {
    return invalid_argument("args.packed must be ", prepack::kSectionAlign, "-byte aligned");
  }
  size_t const needed = layout_bytes(args.shape, args.layout);
  if (args.packed_bytes < needed) {
    return invalid_argument("args.packed_bytes=", args.packed_bytes,
                            ": too small, packed_weights_bytes(shape, layout)=", needed);
  }
  W4A8_RETURN_IF_ERROR(require_hopper_device());

  if (args.layout == PackedLayout::kExactScales) {
    W4A8_CUDA_RETURN(prepack::launch_prepack_exact(args, prepack::exact_sections(args.shape)));
  } else if (args.layout == PackedLayout::kMxfp4) {
    W4A8_CUDA_RETURN(prepack::launch_prepack_mxfp4(args, prepack::mxfp4_sections(args.shape)));
  } else {
    W4A8_CUDA_RETURN(prepack::launch_prepack(args, prepack::packed_sections(args.shape)));
  }
  prepack::PackedHeader header{};
  W4A8_CUDA_RETURN(cudaMemcpyAsync(&header, args.packed, sizeof header, cudaMemcpyDeviceToHost, args.stream));
  W4A8_CUDA_RETURN(cudaStreamSynchronize(args.stream));
  if (header.bad_value_count != 0) {
    return invalid_argument(
        "args.group_scales/args.channel_scales: ", header.bad_value_count,
        " value(s) break the scale rules (scales must be finite, e8m0 scales not 255 (NaN); in the lookup-table "
        "layout fp8 group scales must satisfy |sg| <= 56 so that |q*sg| <= 448); the packed buffer is not usable");
  }
  return Status::Ok();
}

Status read_packed_header(void const* host_bytes, size_t num_bytes, ExpertWeightShape* shape,
                          PackedLayout* layout) {
  if (host_bytes == nullptr) return invalid_argument("host_bytes is null");
  if (shape == nullptr) return invalid_argument("shape is null");
  if (num_bytes < prepack::kHeaderBytes) {
    return invalid_argument("num_bytes=", num_bytes, ": shorter than the ", prepack::kHeaderBytes, "-byte header");
  }
  prepack::PackedHeader header;
  std::memcpy(&header, host_bytes, sizeof header);
  if (std::memcmp(header.magic, prepack::kPackedMagic, sizeof header.magic) != 0) {
    return invalid_argument("packed header: bad magic, not a W4A8 packed-weights buffer");
  }
  PackedLayout read_layout = PackedLayout::kLookupTable;
  std::string versions;
  bool known = false;
  for (PackedLayout const candidate : kLayouts) {
    versions += concat(versions.empty() ? "" : ", ", layout_version(candidate));
    if (header.version == layout_version(candidate)) known = true, read_layout = candidate;
  }
  if (!known) {
    return invalid_argument("packed header: format version ", header.version, ", this library reads versions ",
                            versions, " (re-run prepack_weights on the checkpoint)");
  }
  ExpertWeightShape const read{header.num_experts, header.n, header.k, header.group_size};
  W4A8_RETURN_IF_ERROR(validate_weight_shape(read, read_layout, "packed header shape"));
  size_t const expected = layout_bytes(read, read_layout);
  if (header.total_bytes != expected || header.header_bytes != prepack::kHeaderBytes) {
    return invalid_argument("packed header: total_bytes=", header.total_bytes, " does not match the ", expected,
                            " bytes its shape needs");
  }
  if (num_bytes < expected) {
    return invalid_argument("num_bytes=", num_bytes, ": buffer truncated, its header says ", expected, " bytes");
  }
  if (header.bad_value_count != 0) return invalid_argument("packed header: packed from invalid scales");
  *shape = read;
  if (layout != nullptr) *layout = read_layout;
  return Status::Ok();
}

}  // namespace w4a8moe
