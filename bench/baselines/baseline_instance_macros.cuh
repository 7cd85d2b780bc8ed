// Defines the factory of one baseline config (see baseline_registry.cpp).
#pragma once

#include <memory>

#include "baselines/cutlass_grouped_baselines.cuh"

#define W8A8_CONFIG(tm, tn, cm, coop)                                                                         \
  namespace w4a8moe::bench {                                                                                  \
  std::unique_ptr<Method> make_w8a8_##tm##x##tn##_##cm##_##coop() {                                           \
    return std::make_unique<W8A8Grouped<tm, tn, cm, bool(coop)>>(std::string(#tm "x" #tn "_" #cm "x1_") +     \
                                                                 ((coop) ? "coop" : "pp"));                   \
  }                                                                                                           \
  }
#define W4A16_CONFIG(tm, tn, cm)                                                                              \
  namespace w4a8moe::bench {                                                                                  \
  std::unique_ptr<Method> make_w4a16_##tm##x##tn##_##cm() {                                                   \
    return std::make_unique<W4A16Grouped<tm, tn, cm>>(#tm "x" #tn "_" #cm "x1_coop");                        \
  }                                                                                                           \
  }
