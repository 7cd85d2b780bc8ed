// libFuzzer target for the config.json parser (parse_model_config): every input must be either refused with a
// Status or accepted with a configuration that keeps the parser's promises (config_fuzz_input.h). Built only with
// -DW4A8_BUILD_FUZZ=ON and clang (tests/fuzz/CMakeLists.txt says how to build and run it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "config_fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size) {
  std::string const broken = w4a8moe::fuzz::check_config_input(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "config fuzz: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
