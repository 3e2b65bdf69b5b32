// skip — what a test does when it cannot run here (a tool such as haproxy or ip is not
// installed, or it needs root).  Outside CI it says so visibly and passes: a developer's machine
// need not have everything.  Under CI (CI=true in the environment, as .ci/run and CI runners
// set it) it fails: CI installs everything the tests use, so a skip there is a broken install,
// and it must not be counted among the passes.  Tools are found with programs::find().
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

namespace skip {

// Whether this run is CI's: CI=true (or 1) in the environment.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && (std::string(ci) == "true" || std::string(ci) == "1");
}

// Ends the calling test for `why` (e.g. "haproxy is not installed (apt-get install haproxy)"):
// a failure under CI, a visible "SKIPPED: ..." message elsewhere.  The caller returns after it.
inline void because(const std::string& why) {
  if (in_ci()) FAIL_CHECK("SKIPPED under CI=true, which must run every test: " << why);
  else MESSAGE("SKIPPED: " << why);
}

}  // namespace skip
