// The JSON the program and the benchmarks write (nlohmann-json), in one layout: an object's members one a line, and
// an array member's elements one a line each, so results diff by row.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace w4a8moe::tools {

using Json = nlohmann::ordered_json;

// `doc` as text: members one a line (one_line: the whole document on one line, for JSON Lines files that runs
// append to).
std::string format_json(Json const& doc, bool one_line = false);

// Writes format_json(doc, one_line) and a newline to `path`; false when the file cannot be written.
bool write_json(Json const& doc, std::string const& path, bool one_line = false);

// A layer's stage times, {"route": us, "permute+quantize": us, ...}, named as moe_stage_name() names them.
Json stage_times(std::vector<double> const& stage_us);

}  // namespace w4a8moe::tools
