// check_json: nlohmann's SAX parser with a handler that keeps one frame per open container (its kind, how many
// members or elements it has so far, the keys of an object) and stops at the first rule broken.
#include "checkpoint/json_util.h"

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace w4a8moe::checkpoint {

namespace {

class JsonChecker {
 public:
  explicit JsonChecker(JsonLimits const& limits) : limits_(limits) {}

  std::string const& reason() const { return reason_; }

  bool null() { return element(); }
  bool boolean(bool) { return element(); }
  bool number_integer(Json::number_integer_t) { return element(); }
  bool number_unsigned(Json::number_unsigned_t) { return element(); }
  bool number_float(Json::number_float_t, Json::string_t const&) { return element(); }
  bool string(Json::string_t&) { return element(); }
  bool binary(Json::binary_t&) { return element(); }  // never produced by the JSON lexer

  bool start_object(size_t) { return open(true); }
  bool start_array(size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(Json::string_t& name) {
    Frame& object = frames_.back();
    if (++object.count > limits_.max_object_members) {
      return broken(concat("the object at ", path(), " has more than ", limits_.max_object_members, " members"));
    }
    if (!object.keys.insert(name).second) {
      return broken(concat("duplicate key ", describe(Json(name)), " in the object at ", path()));
    }
    object.key = name;
    return true;
  }

  bool parse_error(size_t, std::string const&, nlohmann::detail::exception const& error) {
    return broken(std::string("not valid JSON: ") + error.what());
  }

 private:
  struct Frame {
    explicit Frame(bool is_object) : object(is_object) {}
    bool object;
    size_t count = 0;                      // members or elements so far
    std::string key;                       // an object's latest key, for paths in messages
    std::unordered_set<std::string> keys;  // an object's keys
  };

  // A value (scalar or container) begins: an element of the enclosing array, if any.
  bool element() {
    if (frames_.empty() || frames_.back().object) return true;
    if (++frames_.back().count > limits_.max_array_elements) {
      return broken(concat("the array at ", path(), " has more than ", limits_.max_array_elements, " elements"));
    }
    return true;
  }

  bool open(bool object) {
    if (!element()) return false;
    if (frames_.size() >= size_t(limits_.max_depth)) {
      return broken(concat("nested deeper than ", limits_.max_depth, " levels"));
    }
    frames_.emplace_back(object);
    return true;
  }

  bool close() {
    frames_.pop_back();
    return true;
  }

  // Where the innermost open container sits: "the top level", or its keys and indices from the top, such as
  // "t"."shape" or "a"[1].
  std::string path() const {
    if (frames_.size() <= 1) return "the top level";
    std::string text;
    for (size_t depth = 0; depth + 1 < frames_.size(); ++depth) {
      Frame const& frame = frames_[depth];
      text += frame.object ? (depth ? "." : "") + describe(Json(frame.key)) : concat("[", frame.count - 1, "]");
    }
    return text;
  }

  bool broken(std::string reason) {
    reason_ = std::move(reason);
    return false;
  }

  JsonLimits limits_;
  std::vector<Frame> frames_;
  std::string reason_;
};

}  // namespace

bool check_json(std::string_view text, JsonLimits const& limits, std::string* reason) {
  JsonChecker checker(limits);
  if (Json::sax_parse(text.begin(), text.end(), &checker)) return true;
  *reason = checker.reason().empty() ? "not valid JSON" : checker.reason();
  return false;
}

}  // namespace w4a8moe::checkpoint
