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

namespace {

char const* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "an unknown kind of file";
}

Status not_regular(std::string const& path, mode_t mode) {
  return invalid_argument(path, ": not a regular file (", file_kind(mode), ")");
}

// Opens a regular file and nothing else. O_NONBLOCK keeps open() from waiting for the other end of a named pipe
// (forever, if none comes); on a regular file it changes nothing, and it is cleared once the file is known to be
// one. `what` says what failed ("open", "create").
Status open_regular_file(std::string const& path, int flags, char const* what, int* fd, struct stat* info) {
  *fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, 0666);
  if (*fd < 0) {
    int const error_number = errno;
    struct stat existing {};
    // A named pipe opened for writing with no reader fails (ENXIO) rather than blocking: say what it is.
    if (::stat(path.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode)) {
      return not_regular(path, existing.st_mode);
    }
    return invalid_argument(path, ": cannot ", what, ": ", system_error_text(error_number));
  }
  Status status = Status::Ok();
  if (fstat(*fd, info) != 0) {
    status = invalid_argument(path, ": cannot stat: ", system_error_text(errno));
  } else if (!S_ISREG(info->st_mode)) {
    status = not_regular(path, info->st_mode);
  } else if (fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK) != 0) {
    status = invalid_argument(path, ": cannot clear O_NONBLOCK: ", system_error_text(errno));
  }
  if (!status.ok()) {
    ::close(*fd);
    *fd = -1;
  }
  return status;
}

}  // namespace

Status MappedFile::map(std::string const& path, MappedFile* file) {
  if (file == nullptr) return invalid_argument("MappedFile::map: file is null");
  int fd = -1;
  struct stat info {};
  W4A8_RETURN_IF_ERROR(open_regular_file(path, O_RDONLY, "open", &fd, &info));
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

Status create_file(std::string const& path, std::FILE** file) {
  int fd = -1;
  struct stat info {};
  W4A8_RETURN_IF_ERROR(open_regular_file(path, O_WRONLY | O_CREAT | O_TRUNC, "create", &fd, &info));
  *file = fdopen(fd, "wb");
  if (*file == nullptr) {
    int const error_number = errno;
    ::close(fd);
    return invalid_argument(path, ": cannot create: ", system_error_text(error_number));
  }
  return Status::Ok();
}

Status write_text_file(std::string const& path, std::string const& text) {
  std::string const partial = path + kPartialSuffix;
  std::FILE* out = nullptr;
  W4A8_RETURN_IF_ERROR(create_file(partial, &out));
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
