// Writes a safetensors file, streaming: the header is built from the tensor list first, then each tensor's bytes
// are appended in that order, so a file larger than memory can be written one tensor at a time. Tensors are laid
// back to back in the order given (no gaps: what the reference implementation requires), and the header is
// padded with spaces so that the data section starts 8-byte aligned. The file is written as path + ".partial" and
// renamed to path by finish(); a writer destroyed before finish() removes its partial file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::checkpoint {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  ~SafetensorsWriter();
  SafetensorsWriter(SafetensorsWriter const&) = delete;
  SafetensorsWriter& operator=(SafetensorsWriter const&) = delete;

  // Checks the tensors (names non-empty, unique, not "__metadata__"; shapes non-negative, sizes within 64 bits),
  // creates the file and writes its header.
  Status open(std::string const& path, std::vector<TensorSpec> const& tensors,
              std::map<std::string, std::string> const& metadata);
  // Appends the bytes of the next tensor; num_bytes must be its exact size.
  Status append(void const* data, size_t num_bytes);
  // Checks that every tensor was written, closes the file and renames it into place.
  Status finish();

  // Data bytes of the tensors given to open().
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  void abandon();

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<TensorSpec> tensors_;
  std::vector<uint64_t> sizes_;
  size_t next_ = 0;
  uint64_t data_bytes_ = 0;
};

}  // namespace w4a8moe::checkpoint
