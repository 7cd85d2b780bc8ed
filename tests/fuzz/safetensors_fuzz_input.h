// What the safetensors fuzz target does with one input, shared with the CPU test that replays the corpus and the
// regression inputs: parse the bytes as a safetensors file and, if they are accepted, check what the reader
// promises about the result. Touching every byte of every view lets AddressSanitizer catch a view that reaches
// past the input.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::fuzz {

// Empty if the input is refused or everything holds; otherwise the first broken promise.
inline std::string check_safetensors_input(uint8_t const* data, size_t size) {
  SafetensorsFile file;
  if (!SafetensorsFile::parse(data, size, "fuzz-input", &file).ok()) return "";
  uint8_t const* const end = data + size;
  uint64_t header_bytes = 0;  // accepted, so at least 8 bytes and a header that fits
  for (int i = 0; i < 8; ++i) header_bytes |= uint64_t(data[i]) << (8 * i);
  uint8_t const* const data_section = data + 8 + header_bytes;
  std::string const* previous_name = nullptr;
  std::vector<std::pair<uint8_t const*, uint8_t const*>> extents;
  unsigned checksum = 0;
  for (Tensor const& tensor : file.tensors()) {
    auto const* first = static_cast<uint8_t const*>(tensor.data);
    if (first < data_section || first > end || tensor.num_bytes > size_t(end - first)) {
      return "tensor '" + tensor.name + "' reaches outside the data section";
    }
    size_t count = dtype_bytes(tensor.dtype);
    for (int64_t dim : tensor.shape) count *= size_t(dim);
    if (count != tensor.num_bytes) return "tensor '" + tensor.name + "': num_bytes differs from its shape";
    if (previous_name != nullptr && !(*previous_name < tensor.name)) return "tensors not sorted by unique name";
    if (file.find(tensor.name) != &tensor) return "find('" + tensor.name + "') does not return it";
    for (size_t i = 0; i < tensor.num_bytes; ++i) checksum += first[i];
    previous_name = &tensor.name;
    if (tensor.num_bytes != 0) extents.emplace_back(first, first + tensor.num_bytes);
  }
  std::sort(extents.begin(), extents.end());
  for (size_t i = 1; i < extents.size(); ++i) {
    if (extents[i].first < extents[i - 1].second) return "two tensors overlap";
  }
  for (auto const& [key, value] : file.metadata()) checksum += unsigned(key.size() + value.size());
  volatile unsigned sink = checksum;  // keeps the reads
  (void)sink;
  return "";
}

}  // namespace w4a8moe::fuzz
