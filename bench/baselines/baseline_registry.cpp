// Factories of the benchmark's baselines, from baseline_configs.def.
#include <memory>
#include <string>
#include <vector>

#include "method.h"

namespace w4a8moe::bench {

#define W8A8_CONFIG(tm, tn, cm, coop) std::unique_ptr<Method> make_w8a8_##tm##x##tn##_##cm##_##coop();
#define W4A16_CONFIG(tm, tn, cm) std::unique_ptr<Method> make_w4a16_##tm##x##tn##_##cm();
#include "baselines/baseline_configs.def"
#undef W8A8_CONFIG
#undef W4A16_CONFIG

namespace {

struct Factory {
  std::string name;
  std::unique_ptr<Method> (*make)();
};

std::vector<Factory> const& w8a8_factories() {
  static std::vector<Factory> const factories = {
#define W8A8_CONFIG(tm, tn, cm, coop) \
  {std::string(#tm "x" #tn "_" #cm "x1_") + ((coop) ? "coop" : "pp"), &make_w8a8_##tm##x##tn##_##cm##_##coop},
#define W4A16_CONFIG(tm, tn, cm)
#include "baselines/baseline_configs.def"
#undef W8A8_CONFIG
#undef W4A16_CONFIG
  };
  return factories;
}

std::vector<Factory> const& w4a16_factories() {
  static std::vector<Factory> const factories = {
#define W8A8_CONFIG(tm, tn, cm, coop)
#define W4A16_CONFIG(tm, tn, cm) {#tm "x" #tn "_" #cm "x1_coop", &make_w4a16_##tm##x##tn##_##cm},
#include "baselines/baseline_configs.def"
#undef W8A8_CONFIG
#undef W4A16_CONFIG
  };
  return factories;
}

std::vector<std::string> names(std::vector<Factory> const& factories) {
  std::vector<std::string> out;
  for (auto const& f : factories) out.push_back(f.name);
  return out;
}

std::unique_ptr<Method> make(std::vector<Factory> const& factories, std::string const& name) {
  for (auto const& f : factories) {
    if (f.name == name) return f.make();
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> w8a8_config_names() { return names(w8a8_factories()); }
std::unique_ptr<Method> make_w8a8_method(std::string const& config) { return make(w8a8_factories(), config); }
std::vector<std::string> w4a16_config_names() { return names(w4a16_factories()); }
std::unique_ptr<Method> make_w4a16_method(std::string const& config) { return make(w4a16_factories(), config); }

}  // namespace w4a8moe::bench
