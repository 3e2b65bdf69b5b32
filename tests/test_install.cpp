// `make install` / `make uninstall`, end to end: install into a temporary staging tree (DESTDIR)
// under a temporary PREFIX, build tests/consumer/main.cpp with nothing but what
// `pkg-config --cflags --libs evwheel` says, and again with CMake's find_package (when cmake is
// installed), run it, uninstall, and check nothing is left.  The versions pkg-config and CMake
// report are the one of include/evwheel/version.hpp.
//
// Runs from the repository root (or $EVWHEEL_SOURCE_DIR); $EVWHEEL_BUILD names the build
// directory whose library is installed and $EVWHEEL_CXX the compiler (`make test` sets both).
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "evwheel/version.hpp"
#include "fd_count.hpp"
#include "skip.hpp"

namespace {

namespace fs = std::filesystem;

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

struct Outcome {
  int status = -1;     // the exit status, or -1 if the command did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs `command` with sh; the make variables of an outer `make test` are dropped so the inner
// make neither joins its jobserver nor inherits its command-line variables.
Outcome run(const std::string& command) {
  Outcome outcome;
  std::string full = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL sh -c '" + command + "' 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (!pipe) return outcome;
  char chunk[4096];
  while (std::size_t got = std::fread(chunk, 1, sizeof chunk, pipe)) outcome.output.append(chunk, got);
  int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) outcome.status = WEXITSTATUS(status);
  return outcome;
}

bool have_cmake() { return run("command -v cmake").status == 0; }

std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (!entry.is_directory()) files.push_back(entry.path().string());
  return files;
}

}  // namespace

TEST_CASE("make install gives a tree that pkg-config and CMake consumers build against, and uninstall empties it") {
  const std::string source = env_or("EVWHEEL_SOURCE_DIR", ".");
  const std::string build = env_or("EVWHEEL_BUILD", "build");
  const std::string cxx = env_or("EVWHEEL_CXX", "c++");
  std::size_t fds_before = open_fd_count();

  char pattern[] = "/tmp/evwheel-install-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const fs::path tmp = pattern;
  struct RemoveTree {  // also when a REQUIRE fails half-way
    fs::path path;
    ~RemoveTree() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } remove_tmp{tmp};
  const std::string stage = (tmp / "stage").string();
  const std::string prefix = (tmp / "prefix").string();  // recorded in evwheel.pc
  const fs::path installed = stage + prefix;
  const std::string make = "make -s -C " + source + " BUILD=" + build + " PREFIX=" + prefix +
                           " DESTDIR=" + stage;

  Outcome install = run(make + " install");
  INFO("make install: ", install.output);
  REQUIRE(install.status == 0);
  CHECK(fs::is_regular_file(installed / "lib/libevwheel.a"));
  CHECK(fs::is_regular_file(installed / "include/evwheel/reactor.hpp"));
  CHECK(fs::is_regular_file(installed / "lib/pkgconfig/evwheel.pc"));
  CHECK(fs::is_regular_file(installed / "include/evwheel/version.hpp"));
  CHECK(fs::is_regular_file(installed / "lib/cmake/evwheel/evwheelConfig.cmake"));
  CHECK(fs::is_regular_file(installed / "lib/cmake/evwheel/evwheelConfigVersion.cmake"));
  CHECK(fs::is_regular_file(installed / "share/doc/evwheel/LICENSE"));

  // The sysroot makes pkg-config put the staging directory in front of the recorded prefix.
  const std::string pkg_config = "PKG_CONFIG_PATH=" + (installed / "lib/pkgconfig").string() +
                                 " PKG_CONFIG_SYSROOT_DIR=" + stage + " pkg-config";
  Outcome flags = run(pkg_config + " --cflags --libs evwheel");
  INFO("pkg-config: ", flags.output);
  REQUIRE(flags.status == 0);
  CHECK(flags.output.find("-I" + (installed / "include").string()) != std::string::npos);
  CHECK(flags.output.find("-levwheel") != std::string::npos);
  CHECK(flags.output.find("-std=c++17") != std::string::npos);  // clang before 16 defaults to C++14
  CHECK(run(pkg_config + " --modversion evwheel").output == EVWHEEL_VERSION_STRING "\n");

  const std::string consumer = (tmp / "consumer").string();
  Outcome compile = run(cxx + " -Wall -Wextra -Wpedantic -Werror " + source + "/tests/consumer/main.cpp -o " +
                        consumer + " $(" + pkg_config + " --cflags --libs evwheel)");
  INFO("compiling the consumer: ", compile.output);
  REQUIRE(compile.status == 0);
  Outcome ran = run(consumer);
  CHECK(ran.status == 0);
  CHECK(ran.output == "echoed: hello\n");

  if (have_cmake()) {
    // The same compiler and sanitizer flags as the pkg-config build: $EVWHEEL_CXX is
    // "COMPILER [FLAGS...]".
    const std::size_t space = cxx.find(' ');
    const std::string compiler = cxx.substr(0, space);
    const std::string flags_only = space == std::string::npos ? "" : cxx.substr(space + 1);
    const std::string configure = "cmake -S " + source + "/tests/consumer -DCMAKE_PREFIX_PATH=" +
                                  installed.string() + " -DCMAKE_CXX_COMPILER=" + compiler +
                                  " \"-DCMAKE_CXX_FLAGS=" + flags_only + "\" -B ";
    const std::string cmake_build = (tmp / "cmake-build").string();
    Outcome configured = run(configure + cmake_build);
    INFO("cmake (configure): ", configured.output);
    REQUIRE(configured.status == 0);
    CHECK(configured.output.find("found evwheel " EVWHEEL_VERSION_STRING "\n") != std::string::npos);
    Outcome built = run("cmake --build " + cmake_build);
    INFO("cmake --build: ", built.output);
    REQUIRE(built.status == 0);
    Outcome cmake_ran = run(cmake_build + "/consumer");
    CHECK(cmake_ran.status == 0);
    CHECK(cmake_ran.output == "echoed: hello\n");

    // An install of another major version does not satisfy find_package.
    Outcome mismatch = run(configure + (tmp / "cmake-mismatch").string() + " -DEVWHEEL_WANTED=9.0");
    INFO("cmake asking for 9.0: ", mismatch.output);
    CHECK(mismatch.status != 0);
    CHECK(mismatch.output.find("compatible with requested version \"9.0\"") != std::string::npos);
  } else {
    skip::because("cmake is not installed (apt-get install cmake); the CMake consumer was not built");
  }

  Outcome uninstall = run(make + " uninstall");
  INFO("make uninstall: ", uninstall.output);
  CHECK(uninstall.status == 0);
  CHECK(files_under(stage).empty());
  CHECK_FALSE(fs::exists(installed / "include/evwheel"));
  CHECK_FALSE(fs::exists(installed / "lib/cmake/evwheel"));
  CHECK_FALSE(fs::exists(installed / "share/doc/evwheel"));

  CHECK(open_fd_count() == fds_before);
}
