#include "checkpoint/expert_names.h"

#include <limits>

namespace w4a8moe::checkpoint {

namespace {

constexpr std::string_view kLayerField = "{L}";
constexpr std::string_view kExpertField = "{e}";
constexpr std::string_view kProjectionField = "{p}";

// Reads a decimal index at text[*pos]: digits, no leading zero (so that format and parse are inverse), fits int.
bool read_index(std::string_view text, size_t* pos, int* value) {
  size_t const start = *pos;
  long long number = 0;
  while (*pos < text.size() && text[*pos] >= '0' && text[*pos] <= '9') {
    number = number * 10 + (text[*pos] - '0');
    if (number > std::numeric_limits<int>::max()) return false;
    ++*pos;
  }
  size_t const digits = *pos - start;
  if (digits == 0 || (digits > 1 && text[start] == '0')) return false;
  *value = int(number);
  return true;
}

bool parse_with(ExpertNaming const& naming, std::string_view name, ExpertModule* module) {
  std::string_view const pattern = naming.module_template;
  size_t p = 0;  // in pattern
  size_t n = 0;  // in name
  while (p < pattern.size()) {
    std::string_view const rest = pattern.substr(p);
    if (rest.substr(0, kLayerField.size()) == kLayerField) {
      if (!read_index(name, &n, &module->layer)) return false;
      p += kLayerField.size();
    } else if (rest.substr(0, kExpertField.size()) == kExpertField) {
      if (!read_index(name, &n, &module->expert)) return false;
      p += kExpertField.size();
    } else if (rest.substr(0, kProjectionField.size()) == kProjectionField) {
      // {p} ends every template: the remainder of the name must be exactly one projection name.
      for (ExpertProjection projection : kProjections) {
        if (name.substr(n) == naming.projection_names[int(projection)]) {
          module->projection = projection;
          module->naming = &naming;
          return p + kProjectionField.size() == pattern.size();
        }
      }
      return false;
    } else {
      if (n >= name.size() || name[n] != pattern[p]) return false;
      ++n;
      ++p;
    }
  }
  return false;
}

}  // namespace

char const* projection_label(ExpertProjection projection) {
  switch (projection) {
    case ExpertProjection::kGate: return "gate";
    case ExpertProjection::kUp: return "up";
    case ExpertProjection::kDown: return "down";
  }
  return "unknown";
}

std::string expert_module_name(ExpertNaming const& naming, int layer, int expert, ExpertProjection projection) {
  std::string name = naming.module_template;
  auto replace = [&name](std::string_view field, std::string const& value) {
    name.replace(name.find(field), field.size(), value);
  };
  replace(kLayerField, std::to_string(layer));
  replace(kExpertField, std::to_string(expert));
  replace(kProjectionField, naming.projection_names[int(projection)]);
  return name;
}

bool parse_expert_module(std::string_view module_name, ExpertModule* module) {
  for (ExpertNaming const& naming : kExpertNamings) {
    ExpertModule parsed;
    if (parse_with(naming, module_name, &parsed)) {
      *module = parsed;
      return true;
    }
  }
  return false;
}

}  // namespace w4a8moe::checkpoint
