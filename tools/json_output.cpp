#include "json_output.h"

#include <fstream>

#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

std::string format_json(Json const& doc, bool one_line) {
  if (one_line || !doc.is_object()) return doc.dump();
  std::string text = "{";
  bool first = true;
  for (auto const& [key, value] : doc.items()) {
    text += (first ? "\n  " : ",\n  ") + Json(key).dump() + ": ";
    first = false;
    if (!value.is_array() || value.empty()) {
      text += value.dump();
      continue;
    }
    text += "[";
    for (size_t i = 0; i < value.size(); ++i) text += (i ? ",\n    " : "\n    ") + value[i].dump();
    text += "\n  ]";
  }
  return text + "\n}";
}

bool write_json(Json const& doc, std::string const& path, bool one_line) {
  std::ofstream file(path);
  file << format_json(doc, one_line) << "\n";
  return bool(file);
}

Json stage_times(std::vector<double> const& stage_us) {
  Json stages = Json::object();
  for (int stage = 0; stage < int(stage_us.size()); ++stage) stages[moe_stage_name(stage)] = stage_us[stage];
  return stages;
}

}  // namespace w4a8moe::tools
