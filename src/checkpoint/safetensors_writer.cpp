#include "checkpoint/safetensors_writer.h"

#include <cerrno>
#include <set>

#include "checkpoint/file_io.h"
#include "checkpoint/json_util.h"
#include "checkpoint/safetensors_format.h"

namespace w4a8moe::checkpoint {

namespace {

constexpr size_t kDataAlignment = 8;

Status build_header(std::string const& path, std::vector<TensorSpec> const& tensors,
                    std::map<std::string, std::string> const& metadata, std::vector<uint64_t>* sizes,
                    std::string* header) {
  Json json = Json::object();
  if (!metadata.empty()) json[kMetadataKey] = metadata;
  // The reader's bounds, so that every file written reads back.
  if (tensors.size() + (metadata.empty() ? 0 : 1) > kMaxHeaderEntries) {
    return invalid_argument(path, ": ", tensors.size(), " tensors, more than a header lists (", kMaxHeaderEntries,
                            " entries with __metadata__)");
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (TensorSpec const& tensor : tensors) {
    if (tensor.name.empty() || tensor.name == kMetadataKey || !names.insert(tensor.name).second) {
      return invalid_argument(path, ": tensor '", tensor.name, "': name empty, reserved or given twice");
    }
    if (tensor.shape.size() > kMaxTensorRank) {
      return invalid_argument(path, ": tensor '", tensor.name, "': shape ", format_shape(tensor.shape), " has more ",
                              "than the ", kMaxTensorRank, " dimensions a reader accepts");
    }
    uint64_t bytes = 0;
    if (dtype_bytes(tensor.dtype) == 0 || !shape_byte_count(tensor.shape, dtype_bytes(tensor.dtype), &bytes) ||
        offset + bytes < offset) {
      return invalid_argument(path, ": tensor '", tensor.name, "': shape ", format_shape(tensor.shape),
                              " has a negative dimension, an unknown dtype or too many bytes");
    }
    json[tensor.name] = {{"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape},
                         {"data_offsets", {offset, offset + bytes}}};
    sizes->push_back(bytes);
    offset += bytes;
  }
  *header = json.dump();  // throws on invalid UTF-8 in a name; guard_exceptions reports it
  size_t const padded = (kLengthFieldBytes + header->size() + kDataAlignment - 1) / kDataAlignment * kDataAlignment;
  header->append(padded - kLengthFieldBytes - header->size(), ' ');
  if (header->size() > kMaxHeaderBytes) {
    return invalid_argument(path, ": a header of ", header->size(), " bytes (", tensors.size(), " tensors), past the ",
                            kMaxHeaderBytes, " bytes a reader accepts: write more, smaller shards");
  }
  return Status::Ok();
}

}  // namespace

SafetensorsWriter::~SafetensorsWriter() { abandon(); }

void SafetensorsWriter::abandon() {
  if (file_ == nullptr) return;
  std::fclose(file_);
  file_ = nullptr;
  std::remove((path_ + kPartialSuffix).c_str());
}

Status SafetensorsWriter::open(std::string const& path, std::vector<TensorSpec> const& tensors,
                               std::map<std::string, std::string> const& metadata) {
  if (file_ != nullptr) return invalid_argument(path, ": writer is already writing ", path_);
  return guard_exceptions(path, [&] {
    std::vector<uint64_t> sizes;
    std::string header;
    W4A8_RETURN_IF_ERROR(build_header(path, tensors, metadata, &sizes, &header));
    std::string const partial = path + kPartialSuffix;
    std::FILE* file = nullptr;
    W4A8_RETURN_IF_ERROR(create_file(partial, &file));
    path_ = path;
    file_ = file;
    tensors_ = tensors;
    sizes_ = std::move(sizes);
    next_ = 0;
    data_bytes_ = 0;
    for (uint64_t size : sizes_) data_bytes_ += size;
    uint8_t length[kLengthFieldBytes];
    for (size_t i = 0; i < kLengthFieldBytes; ++i) length[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
    if (std::fwrite(length, 1, sizeof length, file_) != sizeof length ||
        std::fwrite(header.data(), 1, header.size(), file_) != header.size()) {
      int const error_number = errno;
      abandon();
      return invalid_argument(partial, ": write failed: ", system_error_text(error_number));
    }
    return Status::Ok();
  });
}

Status SafetensorsWriter::append(void const* data, size_t num_bytes) {
  if (file_ == nullptr) return invalid_argument("SafetensorsWriter::append: no file is open");
  if (next_ >= tensors_.size()) return invalid_argument(path_, ": append: all ", tensors_.size(), " tensors written");
  if (num_bytes != sizes_[next_] || (data == nullptr && num_bytes != 0)) {
    return invalid_argument(path_, ": tensor '", tensors_[next_].name, "': append got ", num_bytes,
                            " bytes, needs ", sizes_[next_]);
  }
  if (std::fwrite(data, 1, num_bytes, file_) != num_bytes) {
    int const error_number = errno;
    abandon();
    return invalid_argument(path_, kPartialSuffix, ": write failed: ", system_error_text(error_number));
  }
  ++next_;
  return Status::Ok();
}

Status SafetensorsWriter::finish() {
  if (file_ == nullptr) return invalid_argument("SafetensorsWriter::finish: no file is open");
  if (next_ != tensors_.size()) {
    std::string const missing = tensors_[next_].name;
    abandon();
    return invalid_argument(path_, ": finish: tensor '", missing, "' and ", tensors_.size() - next_ - 1,
                            " more were never appended");
  }
  std::string const partial = path_ + kPartialSuffix;
  std::FILE* file = file_;
  file_ = nullptr;
  if (std::fclose(file) != 0) {
    int const error_number = errno;
    std::remove(partial.c_str());
    return invalid_argument(partial, ": close failed: ", system_error_text(error_number));
  }
  if (std::rename(partial.c_str(), path_.c_str()) != 0) {
    int const error_number = errno;
    std::remove(partial.c_str());
    return invalid_argument(path_, ": cannot rename ", partial, " into place: ", system_error_text(error_number));
  }
  return Status::Ok();
}

}  // namespace w4a8moe::checkpoint
