// Facts of the safetensors format shared by the reader and the writer: the dtype table, the header bounds,
// overflow-safe byte counts, and the names of a checkpoint directory's files.
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
//   header: {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...}
//   data_offsets are relative to the start of the data section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::checkpoint {

inline constexpr size_t kLengthFieldBytes = 8;
// The reference implementation's limit; real headers are a few MB at most.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Generous bounds on what one header describes: real tensors have at most 5 dimensions, and the largest single
// files list tens of thousands of tensors.
inline constexpr size_t kMaxTensorRank = 8;
inline constexpr size_t kMaxHeaderEntries = size_t(1) << 20;  // tensors and __metadata__
inline constexpr char kMetadataKey[] = "__metadata__";

// A checkpoint directory's files: its config, and one file or shards listed by an index.
inline constexpr char kConfigFileName[] = "config.json";
inline constexpr char kSingleFileName[] = "model.safetensors";
inline constexpr char kIndexFileName[] = "model.safetensors.index.json";

bool dtype_from_name(std::string_view name, DType* dtype);

// "BOOL, U8, I8, ..." for messages.
std::string known_dtype_names();

// "[2, 3, 4]"; past kMaxTensorRank dimensions "[2, 3, 4, 5, 6, 7, 8, 9, ... (1000 dimensions)]", so that a hostile
// shape cannot make a message as long as itself.
std::string format_shape(std::vector<int64_t> const& shape);

// product(shape) * element_bytes into *bytes; false if a dimension is negative or the count overflows 64 bits.
// A zero dimension makes the count 0 whatever the others are.
bool shape_byte_count(std::vector<int64_t> const& shape, size_t element_bytes, uint64_t* bytes);

}  // namespace w4a8moe::checkpoint

// safetensors stores little-endian data, which the checkpoint code copies straight into host integers and floats.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checkpoint code assumes a little-endian host");
