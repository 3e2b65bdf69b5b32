// `make install` / `make uninstall`, end to end: install into a temporary staging tree (DESTDIR)
// under a temporary PREFIX, build tests/consumer/main.cpp with nothing but what
// `pkg-config --cflags --libs evwheel` says, run it, uninstall, and check nothing is left.
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

#include "fd_count.hpp"

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

std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (!entry.is_directory()) files.push_back(entry.path().string());
  return files;
}

}  // namespace

TEST_CASE("make install gives a tree that a pkg-config consumer builds against, and uninstall empties it") {
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

  // The sysroot makes pkg-config put the staging directory in front of the recorded prefix.
  const std::string pkg_config = "PKG_CONFIG_PATH=" + (installed / "lib/pkgconfig").string() +
                                 " PKG_CONFIG_SYSROOT_DIR=" + stage + " pkg-config";
  Outcome flags = run(pkg_config + " --cflags --libs evwheel");
  INFO("pkg-config: ", flags.output);
  REQUIRE(flags.status == 0);
  CHECK(flags.output.find("-I" + (installed / "include").string()) != std::string::npos);
  CHECK(flags.output.find("-levwheel") != std::string::npos);
  CHECK(flags.output.find("-std=c++17") != std::string::npos);  // clang before 16 defaults to C++14

  const std::string consumer = (tmp / "consumer").string();
  Outcome compile = run(cxx + " -Wall -Wextra -Wpedantic -Werror " + source + "/tests/consumer/main.cpp -o " +
                        consumer + " $(" + pkg_config + " --cflags --libs evwheel)");
  INFO("compiling the consumer: ", compile.output);
  REQUIRE(compile.status == 0);
  Outcome ran = run(consumer);
  CHECK(ran.status == 0);
  CHECK(ran.output == "echoed: hello\n");

  Outcome uninstall = run(make + " uninstall");
  INFO("make uninstall: ", uninstall.output);
  CHECK(uninstall.status == 0);
  CHECK(files_under(stage).empty());
  CHECK_FALSE(fs::exists(installed / "include/evwheel"));

  CHECK(open_fd_count() == fds_before);
}
