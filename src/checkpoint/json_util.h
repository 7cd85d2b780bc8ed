// nlohmann-json for the checkpoint code: a parse that refuses what a checkpoint's JSON never holds (duplicate
// keys, deep nesting), short descriptions of values for messages, and the guard that keeps nlohmann's (and
// std's) exceptions from crossing the API.
#pragma once

#include <nlohmann/json.hpp>

#include <exception>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status_message.h"

namespace w4a8moe::checkpoint {

using Json = nlohmann::json;

// Deeper than any safetensors header, index or config.json nests; a bound on what a hostile file can make the
// parser allocate.
inline constexpr int kMaxJsonDepth = 32;

namespace detail {
struct JsonRuleBroken {
  std::string reason;
};
}  // namespace detail

// Parses `text` into *value. Refuses duplicate keys in an object (a later value would silently replace an
// earlier one) and nesting deeper than kMaxJsonDepth. On failure returns false with *reason set ("not valid JSON:
// ...", "duplicate key ...", "nested deeper ...").
template <class JsonType>
bool parse_json(std::string_view text, JsonType* value, std::string* reason) {
  std::vector<std::set<std::string>> keys_of_open_objects;
  auto check = [&](int depth, typename JsonType::parse_event_t event, JsonType& parsed) {
    using Event = typename JsonType::parse_event_t;
    if (depth > kMaxJsonDepth) throw detail::JsonRuleBroken{concat("nested deeper than ", kMaxJsonDepth, " levels")};
    if (event == Event::object_start) keys_of_open_objects.emplace_back();
    if (event == Event::object_end && !keys_of_open_objects.empty()) keys_of_open_objects.pop_back();
    if (event == Event::key && !keys_of_open_objects.empty() &&
        !keys_of_open_objects.back().insert(parsed.template get<std::string>()).second) {
      throw detail::JsonRuleBroken{concat("duplicate key \"", parsed.template get<std::string>(), "\"")};
    }
    return true;
  };
  try {
    *value = JsonType::parse(text.begin(), text.end(), check);
    return true;
  } catch (detail::JsonRuleBroken const& broken) {
    *reason = broken.reason;
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
