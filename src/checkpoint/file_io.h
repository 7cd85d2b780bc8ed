// File access for the checkpoint code: read-only memory maps, bounded text reads, and writes that become visible
// only when complete (temporary name, then rename). Errors carry the path and the system's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "w4a8moe/status.h"

namespace w4a8moe::checkpoint {

// A whole file mapped read-only (MAP_PRIVATE). An empty file maps to {nullptr, 0}. Only regular files are
// opened: a named pipe, device or directory is refused without waiting on it.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(MappedFile const&) = delete;
  MappedFile& operator=(MappedFile const&) = delete;

  static Status map(std::string const& path, MappedFile* file);

  uint8_t const* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release();
  uint8_t const* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a text file of at most max_bytes (JSON files are read whole; the bound keeps a hostile one from exhausting
// memory).
Status read_text_file(std::string const& path, size_t max_bytes, std::string* text);

// Creates (or truncates) a regular file for writing; refuses, without waiting on it, a named pipe or device of
// that name.
Status create_file(std::string const& path, std::FILE** file);

// Writes `text` to path + ".partial" and renames it to `path`.
Status write_text_file(std::string const& path, std::string const& text);

// The suffix of files being written; renamed away when complete.
inline constexpr char kPartialSuffix[] = ".partial";

// "No such file or directory" for an errno value.
std::string system_error_text(int error_number);

}  // namespace w4a8moe::checkpoint
