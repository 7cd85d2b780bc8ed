// libFuzzer target for the safetensors header parser (SafetensorsFile::parse): every input must be either refused
// with a Status or accepted with views that keep the reader's promises (safetensors_fuzz_input.h). Built only with
// -DW4A8_BUILD_FUZZ=ON and clang (tests/fuzz/CMakeLists.txt says how to build and run it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "safetensors_fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size) {
  std::string const broken = w4a8moe::fuzz::check_safetensors_input(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "safetensors fuzz: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
