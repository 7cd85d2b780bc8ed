// Shared by the checkpoint tests: a temporary directory that cleans up after itself, and a minimal safetensors
// writer written here from the format description alone (string building, no JSON library, nothing shared with
// the library's writer), so that reader and writer are each checked against an independent implementation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace w4a8moe::testing {

// A fresh directory under the system's temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(TempDir const&) = delete;
  TempDir& operator=(TempDir const&) = delete;

  std::filesystem::path const& path() const { return path_; }
  std::string file(std::string const& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A tensor as the test writer takes it: the dtype spelled as in the file, raw little-endian bytes.
struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// A safetensors file's bytes: tensors laid out in the order given, header unpadded (so the data section may start
// unaligned). metadata_json, if not empty, is inserted verbatim as the "__metadata__" value.
std::string make_safetensors(std::vector<RawTensor> const& tensors, std::string const& metadata_json = "");

// A file from a header given as text and a data section of data_bytes zero bytes; for malformed headers.
std::string file_with_header(std::string const& header, size_t data_bytes);

void write_file(std::string const& path, std::string const& bytes);
std::string read_file(std::string const& path);

template <class T>
std::string bytes_of(std::vector<T> const& values) {
  return std::string(reinterpret_cast<char const*>(values.data()), values.size() * sizeof(T));
}

}  // namespace w4a8moe::testing
