// fuzz_check — how the fuzz properties report a failure: an exception naming the property.
// Under libFuzzer nothing catches it, so the process aborts and the input is kept as a crash;
// the doctest regression suite (tests/test_fuzz_regressions.cpp) runs the same properties on
// the inputs kept, where CHECK_NOTHROW turns it into a test failure that says what broke.
#pragma once

#include <stdexcept>
#include <string>

namespace fuzz {

[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
  throw std::logic_error(std::string(file) + ":" + std::to_string(line) + ": property failed: " + what);
}

[[noreturn]] inline void failed(const std::string& what) { throw std::logic_error("property failed: " + what); }

}  // namespace fuzz

#define FUZZ_CHECK(cond)                                             \
  do {                                                               \
    if (!(cond)) ::fuzz::property_failed(#cond, __FILE__, __LINE__); \
  } while (0)
