// The safetensors reader: validates the header of an untrusted file completely before any tensor data is touched
// (rules in checkpoint.h, SafetensorsFile), then hands out zero-copy views into the read-only mapping.
#include <algorithm>
#include <limits>
#include <utility>

#include "checkpoint/file_io.h"
#include "checkpoint/json_util.h"
#include "checkpoint/safetensors_format.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace checkpoint {
namespace {

struct DTypeFacts {
  DType dtype;
  char const* name;
  size_t bytes;
};

constexpr DTypeFacts kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},     {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI16, "I16", 2}, {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4},   {DType::kF32, "F32", 4},
    {DType::kI64, "I64", 8},   {DType::kU64, "U64", 8}, {DType::kF64, "F64", 8},
};

DTypeFacts const* facts_of(DType dtype) {
  for (auto const& facts : kDTypes) {
    if (facts.dtype == dtype) return &facts;
  }
  return nullptr;
}

}  // namespace

bool dtype_from_name(std::string_view name, DType* dtype) {
  for (auto const& facts : kDTypes) {
    if (name == facts.name) {
      *dtype = facts.dtype;
      return true;
    }
  }
  return false;
}

std::string known_dtype_names() {
  std::string names;
  for (auto const& facts : kDTypes) names += (names.empty() ? "" : ", ") + std::string(facts.name);
  return names;
}

std::string format_shape(std::vector<int64_t> const& shape) {
  std::string text = "[";
  size_t const shown = std::min(shape.size(), kMaxTensorRank);
  for (size_t i = 0; i < shown; ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  if (shown < shape.size()) text += concat(", ... (", shape.size(), " dimensions)");
  return text + "]";
}

bool shape_byte_count(std::vector<int64_t> const& shape, size_t element_bytes, uint64_t* bytes) {
  for (int64_t dim : shape) {
    if (dim < 0) return false;
    if (dim == 0) {
      *bytes = 0;
      return true;
    }
  }
  uint64_t count = element_bytes;
  for (int64_t dim : shape) {
    if (count > std::numeric_limits<uint64_t>::max() / uint64_t(dim)) return false;
    count *= uint64_t(dim);
  }
  *bytes = count;
  return true;
}

namespace {

// Where one tensor's bytes lie in the data section; for the overlap check.
struct Extent {
  uint64_t begin;
  uint64_t end;
  std::string const* name;
};

// No array of a valid header is longer than a shape. The parser refuses far longer ones before it builds them (a
// 100 MB header of one shape takes over a gigabyte as a JSON value); a shape up to this long then gets its
// tensor's own message.
constexpr size_t kMaxHeaderArrayElements = 8 * kMaxTensorRank;

Status tensor_error(std::string const& label, std::string const& name, std::string const& rule) {
  return invalid_argument(label, ": tensor '", name, "': ", rule);
}

Status parse_metadata(std::string const& label, Json const& value, std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return invalid_argument(label, ": \"", kMetadataKey, "\" must be an object of strings, got ", describe(value));
  }
  for (auto const& [key, item] : value.items()) {
    if (!item.is_string()) {
      return invalid_argument(label, ": \"", kMetadataKey, "\" entry \"", key, "\" must be a string, got ",
                              describe(item));
    }
    (*metadata)[key] = item.get<std::string>();
  }
  return Status::Ok();
}

// One header entry -> *tensor and its extent, every rule checked except overlaps. data_size: the bytes after the
// header.
Status parse_tensor_entry(std::string const& label, std::string const& name, Json const& entry, uint64_t data_size,
                          Tensor* tensor, Extent* extent) {
  if (!entry.is_object()) {
    return tensor_error(label, name, concat("entry must be an object {dtype, shape, data_offsets}, got ",
                                            describe(entry)));
  }
  for (auto const& [key, item] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return tensor_error(label, name, concat("unknown field \"", key, "\" (only dtype, shape, data_offsets)"));
    }
  }
  for (char const* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) return tensor_error(label, name, concat("missing field \"", key, "\""));
  }

  Json const& dtype = entry["dtype"];
  if (!dtype.is_string()) return tensor_error(label, name, concat("dtype must be a string, got ", describe(dtype)));
  if (!dtype_from_name(dtype.get_ref<std::string const&>(), &tensor->dtype)) {
    return tensor_error(label, name, concat("unknown dtype ", describe(dtype), " (known: ", known_dtype_names(), ")"));
  }

  Json const& shape = entry["shape"];
  if (!shape.is_array()) return tensor_error(label, name, concat("shape must be an array, got ", describe(shape)));
  if (shape.size() > kMaxTensorRank) {
    return tensor_error(label, name, concat("rank ", shape.size(), ", more than the ", kMaxTensorRank,
                                            " dimensions accepted"));
  }
  tensor->shape.clear();
  for (Json const& dim : shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      return tensor_error(label, name, concat("shape entries must be integers in [0, 2^63), got ", describe(dim)));
    }
    tensor->shape.push_back(int64_t(dim.get<uint64_t>()));
  }
  uint64_t expected_bytes = 0;
  if (!shape_byte_count(tensor->shape, dtype_bytes(tensor->dtype), &expected_bytes)) {
    return tensor_error(label, name, concat("shape ", format_shape(tensor->shape), " of ", dtype_name(tensor->dtype),
                                            ": byte count overflows 64 bits"));
  }

  Json const& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return tensor_error(label, name, concat("data_offsets must be two non-negative integers [begin, end], got ",
                                            offsets.is_array() ? describe_elements(offsets) : describe(offsets)));
  }
  uint64_t const begin = offsets[0].get<uint64_t>();
  uint64_t const end = offsets[1].get<uint64_t>();
  if (begin > end) {
    return tensor_error(label, name, concat("data_offsets [", begin, ", ", end, "]: begin after end"));
  }
  if (end > data_size) {
    return tensor_error(label, name, concat("data_offsets [", begin, ", ", end, "] end beyond the data section of ",
                                            data_size, " bytes (truncated file?)"));
  }
  if (end - begin != expected_bytes) {
    return tensor_error(label, name, concat("data_offsets [", begin, ", ", end, "] span ", end - begin,
                                            " bytes, but shape ", format_shape(tensor->shape), " of ",
                                            dtype_name(tensor->dtype), " needs ", expected_bytes));
  }
  tensor->name = name;
  tensor->num_bytes = size_t(expected_bytes);
  *extent = {begin, end, nullptr};
  return Status::Ok();
}

}  // namespace
}  // namespace checkpoint

char const* dtype_name(DType dtype) {
  auto const* facts = checkpoint::facts_of(dtype);
  return facts ? facts->name : "unknown dtype";
}

size_t dtype_bytes(DType dtype) {
  auto const* facts = checkpoint::facts_of(dtype);
  return facts ? facts->bytes : 0;
}

struct SafetensorsFile::State {
  std::string path;
  checkpoint::MappedFile mapping;  // empty for parse()
  std::vector<Tensor> tensors;
  std::map<std::string, std::string> metadata;

  // Validates the file in bytes[0, size) and fills tensors and metadata (path is set).
  Status parse(uint8_t const* bytes, size_t size);
};

Status SafetensorsFile::State::parse(uint8_t const* bytes, size_t size) {
  using namespace checkpoint;
  std::string const& label = path;
  if (size < kLengthFieldBytes) {
    return invalid_argument(label, ": truncated: ", size, " bytes, fewer than the ", kLengthFieldBytes,
                            "-byte header length field");
  }
  uint64_t header_bytes = 0;
  for (size_t i = 0; i < kLengthFieldBytes; ++i) header_bytes |= uint64_t(bytes[i]) << (8 * i);
  if (header_bytes > kMaxHeaderBytes) {
    return invalid_argument(label, ": header length ", header_bytes, " exceeds the limit of ", kMaxHeaderBytes,
                            " bytes (not a safetensors file?)");
  }
  if (header_bytes > size - kLengthFieldBytes) {
    return invalid_argument(label, ": header length ", header_bytes, " exceeds the ", size - kLengthFieldBytes,
                            " bytes that follow the length field (truncated file?)");
  }
  std::string_view const header_text(reinterpret_cast<char const*>(bytes + kLengthFieldBytes), size_t(header_bytes));
  Json header;
  std::string reason;
  JsonLimits limits;
  limits.max_object_members = kMaxHeaderEntries;
  limits.max_array_elements = kMaxHeaderArrayElements;
  if (!parse_json(header_text, &header, &reason, limits)) {
    return invalid_argument(label, ": header: ", reason);
  }
  if (!header.is_object()) {
    return invalid_argument(label, ": header must be a JSON object, got ", describe(header));
  }

  uint8_t const* data_section = bytes + kLengthFieldBytes + header_bytes;
  uint64_t const data_size = size - kLengthFieldBytes - header_bytes;
  std::vector<Tensor> tensors;
  std::vector<Extent> extents;
  std::map<std::string, std::string> metadata;
  for (auto const& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      W4A8_RETURN_IF_ERROR(parse_metadata(label, entry, &metadata));
      continue;
    }
    Tensor tensor;
    Extent extent{};
    W4A8_RETURN_IF_ERROR(parse_tensor_entry(label, name, entry, data_size, &tensor, &extent));
    tensor.data = data_section + extent.begin;
    tensors.push_back(std::move(tensor));
    extents.push_back(extent);
  }

  // Non-empty extents sorted by begin overlap somewhere only if two neighbours do.
  for (size_t i = 0; i < tensors.size(); ++i) extents[i].name = &tensors[i].name;
  extents.erase(std::remove_if(extents.begin(), extents.end(), [](Extent const& e) { return e.begin == e.end; }),
                extents.end());
  std::sort(extents.begin(), extents.end(), [](Extent const& a, Extent const& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < extents.size(); ++i) {
    Extent const& before = extents[i - 1];
    Extent const& after = extents[i];
    if (after.begin < before.end) {
      return invalid_argument(label, ": tensor '", *after.name, "': data_offsets [", after.begin, ", ", after.end,
                              "] overlap those of tensor '", *before.name, "' [", before.begin, ", ", before.end, "]");
    }
  }

  // items() iterates the object in key order, so the tensors are already sorted by name.
  this->tensors = std::move(tensors);
  this->metadata = std::move(metadata);
  return Status::Ok();
}

SafetensorsFile::SafetensorsFile() = default;
SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

Status SafetensorsFile::open(std::string const& path, SafetensorsFile* file) {
  if (file == nullptr) return invalid_argument("SafetensorsFile::open: file is null");
  return checkpoint::guard_exceptions(path, [&] {
    auto state = std::make_unique<State>();
    state->path = path;
    W4A8_RETURN_IF_ERROR(checkpoint::MappedFile::map(path, &state->mapping));
    W4A8_RETURN_IF_ERROR(state->parse(state->mapping.data(), state->mapping.size()));
    file->state_ = std::move(state);
    return Status::Ok();
  });
}

Status SafetensorsFile::parse(void const* bytes, size_t num_bytes, std::string const& label, SafetensorsFile* file) {
  if (file == nullptr) return invalid_argument("SafetensorsFile::parse: file is null");
  if (bytes == nullptr && num_bytes != 0) {
    return invalid_argument(label, ": bytes is null but num_bytes is ", num_bytes);
  }
  return checkpoint::guard_exceptions(label, [&] {
    auto state = std::make_unique<State>();
    state->path = label;
    W4A8_RETURN_IF_ERROR(state->parse(static_cast<uint8_t const*>(bytes), num_bytes));
    file->state_ = std::move(state);
    return Status::Ok();
  });
}

namespace {
std::string const kNoPath;
std::vector<Tensor> const kNoTensors;
std::map<std::string, std::string> const kNoMetadata;
}  // namespace

std::string const& SafetensorsFile::path() const { return state_ ? state_->path : kNoPath; }

std::vector<Tensor> const& SafetensorsFile::tensors() const { return state_ ? state_->tensors : kNoTensors; }

Tensor const* SafetensorsFile::find(std::string const& name) const {
  auto const& all = tensors();
  auto it = std::lower_bound(all.begin(), all.end(), name,
                             [](Tensor const& tensor, std::string const& key) { return tensor.name < key; });
  return it != all.end() && it->name == name ? &*it : nullptr;
}

std::map<std::string, std::string> const& SafetensorsFile::metadata() const {
  return state_ ? state_->metadata : kNoMetadata;
}

}  // namespace w4a8moe
