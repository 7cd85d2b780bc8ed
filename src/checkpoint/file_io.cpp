#include "checkpoint/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/status_message.h"

namespace w4a8moe::checkpoint {

std::string system_error_text(int error_number) { return std::strerror(error_number); }

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::release() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Status MappedFile::map(std::string const& path, MappedFile* file) {
  if (file == nullptr) return invalid_argument("MappedFile::map: file is null");
  int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return invalid_argument(path, ": cannot open: ", system_error_text(errno));
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    int const error_number = errno;
    ::close(fd);
    return invalid_argument(path, ": cannot stat: ", system_error_text(error_number));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return invalid_argument(path, ": not a regular file");
  }
  MappedFile mapped;
  if (info.st_size > 0) {
    void* const address = mmap(nullptr, size_t(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int const error_number = errno;
      ::close(fd);
      return invalid_argument(path, ": cannot map ", info.st_size, " bytes: ", system_error_text(error_number));
    }
    mapped.data_ = static_cast<uint8_t const*>(address);
    mapped.size_ = size_t(info.st_size);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  *file = std::move(mapped);
  return Status::Ok();
}

Status read_text_file(std::string const& path, size_t max_bytes, std::string* text) {
  MappedFile file;
  W4A8_RETURN_IF_ERROR(MappedFile::map(path, &file));
  if (file.size() > max_bytes) {
    return invalid_argument(path, ": ", file.size(), " bytes, more than the ", max_bytes, " accepted for this file");
  }
  text->assign(reinterpret_cast<char const*>(file.data()), file.size());
  return Status::Ok();
}

Status write_text_file(std::string const& path, std::string const& text) {
  std::string const partial = path + kPartialSuffix;
  std::FILE* out = std::fopen(partial.c_str(), "wb");
  if (out == nullptr) return invalid_argument(partial, ": cannot create: ", system_error_text(errno));
  bool const written = std::fwrite(text.data(), 1, text.size(), out) == text.size();
  int const write_error = errno;
  bool const closed = std::fclose(out) == 0;
  if (!written || !closed) {
    std::remove(partial.c_str());
    return invalid_argument(partial, ": write failed: ", system_error_text(written ? errno : write_error));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    int const error_number = errno;
    std::remove(partial.c_str());
    return invalid_argument(path, ": cannot rename ", partial, " into place: ", system_error_text(error_number));
  }
  return Status::Ok();
}

}  // namespace w4a8moe::checkpoint
