// nlohmann-json for the checkpoint code: a parse that refuses what a checkpoint's JSON never holds (duplicate
// keys, deep nesting, containers larger than the file's format allows), short descriptions of values for messages,
// and the guard that keeps nlohmann's (and std's) exceptions from crossing the API.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <string_view>

#include "common/status_message.h"

namespace w4a8moe::checkpoint {

using Json = nlohmann::json;

// Deeper than any safetensors header, index or config.json nests; a bound on what a hostile file can make the
// parser allocate.
inline constexpr int kMaxJsonDepth = 32;

// What parse_json refuses besides invalid JSON and duplicate keys. A file's format may bound its containers
// tighter than the defaults, so that a hostile file is refused before a value of it is built.
struct JsonLimits {
  int max_depth = kMaxJsonDepth;
  size_t max_object_members = std::numeric_limits<size_t>::max();
  size_t max_array_elements = std::numeric_limits<size_t>::max();
};

// One pass over `text` that builds nothing but the keys of the open objects: JSON syntax, duplicate keys (a later
// value would silently replace an earlier one) and `limits`. Linear in the size of the text. On failure returns
// false with *reason set ("not valid JSON: ...", "duplicate key ...", "nested deeper ...", "... has more than ...").
bool check_json(std::string_view text, JsonLimits const& limits, std::string* reason);

// Parses `text` into *value after check_json() accepts it. The parse itself runs without a callback: nlohmann's
// callback parser rescans an object's parent each time the object closes, which is quadratic in the members.
template <class JsonType>
bool parse_json(std::string_view text, JsonType* value, std::string* reason, JsonLimits const& limits = {}) {
  if (!check_json(text, limits, reason)) return false;
  try {
    *value = JsonType::parse(text.begin(), text.end());
    return true;
  } catch (typename JsonType::exception const& error) {
    *reason = std::string("not valid JSON: ") + error.what();
  }
  return false;
}

// A value as messages show it: scalars in full (strings clipped), containers by kind.
template <class JsonType>
std::string describe(JsonType const& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  if (value.is_string()) {
    // A clipped string may end inside a UTF-8 sequence: replace rather than throw.
    std::string const& text = value.template get_ref<std::string const&>();
    std::string const shown = JsonType(text.substr(0, 64)).dump(-1, ' ', false, JsonType::error_handler_t::replace);
    return text.size() <= 64 ? shown : shown + "...";
  }
  return value.dump();
}

// An array as messages show it: its first `shown` elements described, then how many there are if more.
template <class JsonType>
std::string describe_elements(JsonType const& array, size_t shown = 4) {
  std::string text = "[";
  for (size_t i = 0; i < array.size() && i < shown; ++i) text += (i ? ", " : "") + describe(array[i]);
  if (array.size() > shown) text += concat(", ... (", array.size(), " elements)");
  return text + "]";
}

// Runs body() (which returns a Status) and turns an exception escaping it into a Status, so that none crosses
// the API: JSON type errors become kInvalidArgument, exhausted memory kNotSupported, anything else kInternal.
template <class Body>
Status guard_exceptions(std::string const& context, Body&& body) {
  try {
    return body();
  } catch (nlohmann::json::exception const& error) {
    return invalid_argument(context, ": ", error.what());
  } catch (std::bad_alloc const&) {
    return not_supported(context, ": out of host memory");
  } catch (std::exception const& error) {
    return Status(StatusCode::kInternal, concat(context, ": unexpected exception: ", error.what()));
  }
}

}  // namespace w4a8moe::checkpoint
