#include "checkpoint_test_util.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace w4a8moe::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  auto const stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  path_ = fs::temp_directory_path() /
          ("w4a8moe_checkpoint_test_" + std::to_string(getpid()) + "_" + std::to_string(stamp) + "_" +
           std::to_string(counter++));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

namespace {

std::string shape_json(std::vector<int64_t> const& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string with_length_prefix(std::string const& header) {
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xFF);
  return file + header;
}

}  // namespace

std::string make_safetensors(std::vector<RawTensor> const& tensors, std::string const& metadata_json) {
  std::string header = "{";
  std::string data;
  bool first = true;
  if (!metadata_json.empty()) {
    header += "\"__metadata__\":" + metadata_json;
    first = false;
  }
  for (RawTensor const& tensor : tensors) {
    size_t const begin = data.size();
    data += tensor.bytes;
    header += std::string(first ? "" : ",") + "\"" + tensor.name + "\":{\"dtype\":\"" + tensor.dtype +
              "\",\"shape\":" + shape_json(tensor.shape) + ",\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(data.size()) + "]}";
    first = false;
  }
  header += "}";
  return with_length_prefix(header) + data;
}

std::string file_with_header(std::string const& header, size_t data_bytes) {
  return with_length_prefix(header) + std::string(data_bytes, '\0');
}

void write_file(std::string const& path, std::string const& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("test: cannot write " + path);
}

std::string read_file(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace w4a8moe::testing
