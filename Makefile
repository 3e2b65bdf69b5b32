# evwheel — build, test, bench and fuzz.  Everything built lands in $(BUILD); sanitizer builds
# (SAN=address|undefined|thread, or a comma-separated list such as address,undefined) get a
# directory of their own (build-address-undefined) so they never mix objects, and
# the libFuzzer targets (make fuzz) build with clang++ into $(FUZZ_BUILD).
CXX      ?= g++
SAN      ?=
comma    := ,
empty    :=
space    := $(empty) $(empty)
SAN_LIST := $(strip $(subst $(comma), ,$(SAN)))
BUILD    ?= build$(if $(SAN),-$(subst $(space),-,$(SAN_LIST)))
OPT      ?= -O2
CXXFLAGS ?= $(OPT) -g
WARN     := -Wall -Wextra -Wpedantic -Werror
# No recovery: a sanitizer report ends the run with an error instead of scrolling past.
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer)
# UBSan's vptr check opens a pipe to probe memory: a process with no descriptor left reports
# false "invalid vptr" errors, so tests that exhaust descriptors need to know (see test_faults).
SANFLAGS += $(if $(filter undefined,$(SAN_LIST)),-DEVWHEEL_SANITIZE_UNDEFINED)
ALLFLAGS := -std=c++17 $(WARN) $(SANFLAGS) -Iinclude -MMD -MP $(CXXFLAGS)
LDLIBS   := -pthread

DOCTEST  := /usr/include/doctest/doctest.h
PKG_CONFIG := /usr/bin/pkg-config

# The version has one home, include/evwheel/version.hpp: evwheel.pc and the CMake version file
# take it from there.
version_part = $(shell sed -n 's/^\#define EVWHEEL_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/evwheel/version.hpp)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION_MINOR := $(call version_part,MINOR)
VERSION  := $(VERSION_MAJOR).$(VERSION_MINOR).$(call version_part,PATCH)
PREFIX   ?= /usr/local
DESTDIR  ?=
HEADERS  := $(wildcard include/evwheel/*.hpp)

LIB_SRC  := $(wildcard src/*.cpp)
LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
LIB      := $(BUILD)/libevwheel.a

TEST_SRC := $(wildcard tests/*.cpp)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/evwheel-tests

# The bench: the driver in bench/, one folder or file per mode, bench/common/ for what modes
# share, bench/baselines/ for the servers and timer structures evwheel is measured against.
BENCH_SRC := $(wildcard bench/*.cpp bench/*/*.cpp)
BENCH_OBJ := $(BENCH_SRC:%.cpp=$(BUILD)/%.o)
BENCH_BIN := $(BUILD)/evwheel-bench
CLI_OBJ   := $(BUILD)/bench/common/cli.o

# The examples parse their options with the bench's parser (bench/common/cli.hpp).
EXAMPLE_SRC := $(wildcard examples/*.cpp)
EXAMPLE_OBJ := $(EXAMPLE_SRC:%.cpp=$(BUILD)/%.o)
EXAMPLES    := $(patsubst examples/%.cpp,$(BUILD)/%,$(EXAMPLE_SRC))
$(EXAMPLE_OBJ): ALLFLAGS += -Ibench/common

.PHONY: all lib test bench fuzz mutants clean install uninstall
# Keep example objects (otherwise intermediate) so rebuilds stay incremental.
.SECONDARY:
all: $(LIB) $(BENCH_BIN) $(EXAMPLES)
lib: $(LIB)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(ALLFLAGS) -c $< -o $@

# Test objects need doctest before they can compile.
$(TEST_OBJ): | $(DOCTEST)

# The tests also cover the bench pieces the modes share (and the examples' option parser).
BENCH_SHARED_OBJ := $(patsubst %,$(BUILD)/bench/common/%.o,cli json svg system) $(BUILD)/bench/floor/measure.o

$(TEST_BIN): $(TEST_OBJ) $(BENCH_SHARED_OBJ) $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

$(BENCH_BIN): $(BENCH_OBJ) $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/%: $(BUILD)/examples/%.o $(CLI_OBJ) $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

# The runtime options of each sanitizer for `make test`: stop at the first report, with a
# stack; options already in the environment come after ours, so they win.
SAN_ENV_address   := ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}
SAN_ENV_undefined := UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1$${UBSAN_OPTIONS:+:$$UBSAN_OPTIONS}
SAN_ENV_thread    := TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1$${TSAN_OPTIONS:+:$$TSAN_OPTIONS}

# clang's sanitizer and libFuzzer runtimes are a Debian package of their own (g++ brings its
# own sanitizers); its libFuzzer archive stands for the whole package.
CLANG_RT := $(shell clang++ -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a
ifneq ($(and $(SAN),$(findstring clang,$(CXX))),)
$(TEST_BIN) $(BENCH_BIN) $(EXAMPLES): | $(CLANG_RT)
endif

# Tests run from the build directory's binaries (some start the examples and the bench); the
# install test builds a consumer with the same compiler and sanitizer, found through pkg-config.
test: $(TEST_BIN) $(EXAMPLES) $(BENCH_BIN) | $(PKG_CONFIG)
	EVWHEEL_BUILD=$(BUILD) EVWHEEL_CXX="$(CXX) $(SANFLAGS)" $(foreach san,$(SAN_LIST),$(SAN_ENV_$(san))) $(TEST_BIN)

bench: $(BENCH_BIN) $(EXAMPLES)
	$(BENCH_BIN) default

# The library, its headers, a pkg-config file written for PREFIX, the CMake package files
# (cmake/: find_package(evwheel) and evwheel::evwheel, no CMake needed here) and the license
# (DESTDIR stages the tree elsewhere, as packagers do).  uninstall removes exactly those files,
# and the evwheel directories it created; the shared lib/, include/, pkgconfig/, cmake/ and
# share/doc/ directories stay.
CMAKE_DIR := $(DESTDIR)$(PREFIX)/lib/cmake/evwheel
DOC_DIR   := $(DESTDIR)$(PREFIX)/share/doc/evwheel
install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/evwheel $(CMAKE_DIR) $(DOC_DIR)
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libevwheel.a
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/evwheel/
	sed -e '/^#/d' -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' evwheel.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/evwheel.pc
	install -m 644 cmake/evwheelConfig.cmake $(CMAKE_DIR)/
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|' \
	  -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|' cmake/evwheelConfigVersion.cmake.in \
	  > $(CMAKE_DIR)/evwheelConfigVersion.cmake
	install -m 644 LICENSE $(DOC_DIR)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libevwheel.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/evwheel.pc \
	  $(addprefix $(DESTDIR)$(PREFIX)/include/evwheel/,$(notdir $(HEADERS))) \
	  $(CMAKE_DIR)/evwheelConfig.cmake $(CMAKE_DIR)/evwheelConfigVersion.cmake $(DOC_DIR)/LICENSE
	for dir in $(DESTDIR)$(PREFIX)/include/evwheel $(CMAKE_DIR) $(DOC_DIR); do \
	  if [ -d $$dir ]; then rmdir $$dir; fi; \
	done

# Test tools come from Debian: installed when we are root, otherwise named.
# $(call debian_package,PACKAGE,WHY)
define debian_package
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "evwheel: installing $(1) (Debian) $(2)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else \
	  echo "evwheel: $(1) is needed $(2): install the Debian package $(1) (apt-get install $(1))"; exit 1; \
	fi
endef

$(DOCTEST):
	$(call debian_package,doctest-dev,for the tests)

$(PKG_CONFIG):
	$(call debian_package,pkg-config,for the install test)

$(CLANG_RT):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "evwheel: installing libclang-rt-14-dev (Debian) for clang's sanitizers and libFuzzer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-rt-14-dev >/dev/null; \
	else \
	  echo "evwheel: clang's sanitizers and libFuzzer need the Debian package libclang-rt-14-dev (apt-get install libclang-rt-14-dev)"; exit 1; \
	fi

# --- Fuzzing: one libFuzzer binary per tests/fuzz/fuzz_*.cpp, run by tests/fuzz/run.
# The library is instrumented for coverage too (fuzzer-no-link), or the fuzzer would be blind
# inside it.
FUZZ_CXX     ?= clang++
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_FLAGS   := -std=c++17 $(WARN) $(FUZZ_SAN) -Iinclude -MMD -MP -O1 -g
FUZZ_LIB_OBJ := $(LIB_SRC:%.cpp=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(patsubst tests/fuzz/%.cpp,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.cpp))

$(FUZZ_BUILD)/src/%.o: src/%.cpp | $(CLANG_RT)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/%: tests/fuzz/%.cpp $(FUZZ_LIB_OBJ) | $(CLANG_RT)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB_OBJ) -o $@

fuzz: $(FUZZ_BINS)
	tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BUILD) $(FUZZ_BINS)

# --- Mutants: each tests/mutants/*.patch is a small bug in one of the library's promises.
# tests/mutants/run applies each to a copy of this tree in $(BUILD)-mutants/ (started from
# $(BUILD)'s objects, so only what a patch touches recompiles), runs the tests its header names
# and fails if one survives.  MUTANTS="name ..." picks some, MUTANTS=fast the quick ones.
MUTANTS ?=
mutants:
	$(if $(SAN),$(error make mutants builds without a sanitizer: drop SAN=$(SAN)))
	MUTANTS="$(MUTANTS)" CXX="$(CXX)" tests/mutants/run $(BUILD)

clean:
	rm -rf build build-*

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(EXAMPLE_OBJ:.o=.d)
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BINS:=.d)
