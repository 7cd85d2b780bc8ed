// Checkpoint: one safetensors file, or the shards of a model.safetensors.index.json. Every shard is opened and
// validated up front; the index is untrusted too (shard names must be plain file names, every mapped tensor must
// be in its shard).
#include <algorithm>
#include <filesystem>
#include <map>
#include <string_view>
#include <utility>

#include "checkpoint/file_io.h"
#include "checkpoint/json_util.h"
#include "checkpoint/safetensors_format.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace {

namespace fs = std::filesystem;
using checkpoint::Json;
using checkpoint::kIndexFileName;
using checkpoint::kSingleFileName;

// Real indexes are a few MB (DeepSeek-V3's: about 9 MB).
constexpr size_t kMaxIndexBytes = 256u << 20;

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool is_plain_file_name(std::string const& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

struct Checkpoint::State {
  std::string path;
  std::vector<SafetensorsFile> files;
  std::vector<std::string> names;  // sorted
  struct Location {
    Tensor const* tensor;
    size_t file;
  };
  std::map<std::string, Location> locations;

  Status open_single(std::string const& file_path);
  Status open_sharded(std::string const& index_path);
};

Status Checkpoint::State::open_single(std::string const& file_path) {
  SafetensorsFile file;
  W4A8_RETURN_IF_ERROR(SafetensorsFile::open(file_path, &file));
  files.push_back(std::move(file));
  for (Tensor const& tensor : files.back().tensors()) {
    locations[tensor.name] = {&tensor, 0};
    names.push_back(tensor.name);
  }
  return Status::Ok();
}

Status Checkpoint::State::open_sharded(std::string const& index_path) {
  std::string text;
  W4A8_RETURN_IF_ERROR(checkpoint::read_text_file(index_path, kMaxIndexBytes, &text));
  Json index;
  std::string reason;
  if (!checkpoint::parse_json(text, &index, &reason)) {
    return invalid_argument(index_path, ": ", reason);
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return invalid_argument(index_path, ": must be a JSON object with a \"weight_map\" object");
  }
  Json const& weight_map = index["weight_map"];
  if (weight_map.empty()) return invalid_argument(index_path, ": \"weight_map\" lists no tensors");

  std::map<std::string, size_t> shard_numbers;
  for (auto const& [name, shard] : weight_map.items()) {
    if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>())) {
      return invalid_argument(index_path, ": tensor '", name, "': shard must be a file name without directories, got ",
                              checkpoint::describe(shard));
    }
    shard_numbers.emplace(shard.get<std::string>(), 0);
  }
  fs::path const directory = fs::path(index_path).parent_path();
  for (auto& [shard, number] : shard_numbers) {
    SafetensorsFile file;
    W4A8_RETURN_IF_ERROR(SafetensorsFile::open((directory / shard).string(), &file));
    number = files.size();
    files.push_back(std::move(file));
  }
  for (auto const& [name, shard] : weight_map.items()) {
    size_t const number = shard_numbers.at(shard.get<std::string>());
    Tensor const* tensor = files[number].find(name);
    if (tensor == nullptr) {
      return invalid_argument(index_path, ": tensor '", name, "' is mapped to ", files[number].path(),
                              ", which does not hold it");
    }
    locations[name] = {tensor, number};
    names.push_back(name);
  }
  return Status::Ok();
}

Checkpoint::Checkpoint() = default;
Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

Status Checkpoint::open(std::string const& path, Checkpoint* checkpoint) {
  if (checkpoint == nullptr) return invalid_argument("Checkpoint::open: checkpoint is null");
  return checkpoint::guard_exceptions(path, [&] {
    auto state = std::make_unique<State>();
    state->path = path;
    std::error_code error;
    if (fs::is_directory(path, error)) {
      fs::path const index = fs::path(path) / kIndexFileName;
      fs::path const single = fs::path(path) / kSingleFileName;
      if (fs::exists(index, error)) {
        W4A8_RETURN_IF_ERROR(state->open_sharded(index.string()));
      } else if (fs::exists(single, error)) {
        W4A8_RETURN_IF_ERROR(state->open_single(single.string()));
      } else {
        return invalid_argument(path, ": directory holds neither ", kIndexFileName, " nor ", kSingleFileName);
      }
    } else if (ends_with(path, ".json")) {
      W4A8_RETURN_IF_ERROR(state->open_sharded(path));
    } else {
      W4A8_RETURN_IF_ERROR(state->open_single(path));
    }
    std::sort(state->names.begin(), state->names.end());
    checkpoint->state_ = std::move(state);
    return Status::Ok();
  });
}

namespace {
std::string const kNoPath;
std::vector<std::string> const kNoNames;
}  // namespace

std::string const& Checkpoint::path() const { return state_ ? state_->path : kNoPath; }

std::vector<std::string> const& Checkpoint::tensor_names() const { return state_ ? state_->names : kNoNames; }

Tensor const* Checkpoint::find(std::string const& name) const {
  if (!state_) return nullptr;
  auto it = state_->locations.find(name);
  return it == state_->locations.end() ? nullptr : it->second.tensor;
}

std::string const& Checkpoint::file_of(std::string const& name) const {
  if (!state_) return kNoPath;
  auto it = state_->locations.find(name);
  return it == state_->locations.end() ? state_->path : state_->files[it->second.file].path();
}

}  // namespace w4a8moe
