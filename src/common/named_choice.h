// An enum value from its name, for the public parse_* functions (prepack.h, moe.h) and the tools' flags: one
// wording for every such error, `layout='fancy': must be "lookup", "exact" or "mxfp4"`. Host only.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>

#include "common/status_message.h"

namespace w4a8moe {

// *out = the choice whose name_of(choice) is `name`; else an error naming arg_name, the name and every choice.
template <class T, size_t N, class NameOf>
Status parse_named_choice(char const* name, T const (&choices)[N], NameOf name_of, T* out, char const* arg_name) {
  if (out == nullptr) return invalid_argument(arg_name, ": the pointer for the parsed value is null");
  std::string names;
  for (size_t i = 0; i < N; ++i) {
    if (name != nullptr && std::strcmp(name, name_of(choices[i])) == 0) {
      *out = choices[i];
      return Status::Ok();
    }
    names += concat(i == 0 ? "" : i + 1 == N ? " or " : ", ", "\"", name_of(choices[i]), "\"");
  }
  return invalid_argument(arg_name, "='", name == nullptr ? "(null)" : name, "': must be ", names);
}

}  // namespace w4a8moe
