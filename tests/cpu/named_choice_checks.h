// The round trip every named choice keeps (packed layouts, layer paths, the benchmarks' L2 flushes): each choice's
// name parses back to it, into a value that held another choice first.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>

namespace w4a8moe::testing {

// parse(name, &value) is the choice's parse_* function, name_of its *_name.
template <class T, class NameOf, class Parse>
void expect_names_parse_back(std::initializer_list<T> choices, NameOf name_of, Parse parse) {
  T const first = *choices.begin(), second = *(choices.begin() + 1);
  for (T const choice : choices) {
    T parsed = choice == first ? second : first;
    ASSERT_TRUE(parse(name_of(choice), &parsed).ok()) << name_of(choice);
    EXPECT_EQ(parsed, choice);
  }
}

}  // namespace w4a8moe::testing
