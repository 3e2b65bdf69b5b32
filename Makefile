# evwheel — build, test and bench.  Everything built lands in $(BUILD); sanitizer builds
# (SAN=address|undefined|thread) get a directory of their own so they never mix objects.
CXX      ?= g++
SAN      ?=
BUILD    ?= build$(if $(SAN),-$(SAN))
OPT      ?= -O2
CXXFLAGS ?= $(OPT) -g
WARN     := -Wall -Wextra -Wpedantic -Werror
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer)
ALLFLAGS := -std=c++17 $(WARN) $(SANFLAGS) -Iinclude -MMD -MP $(CXXFLAGS)
LDLIBS   := -pthread

DOCTEST  := /usr/include/doctest/doctest.h

LIB_SRC  := $(wildcard src/*.cpp)
LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
LIB      := $(BUILD)/libevwheel.a

TEST_SRC := $(wildcard tests/*.cpp)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/evwheel-tests

BENCH_SRC := $(wildcard bench/*.cpp)
BENCH_OBJ := $(BENCH_SRC:%.cpp=$(BUILD)/%.o)
BENCH_BIN := $(BUILD)/evwheel-bench

EXAMPLES := $(patsubst examples/%.cpp,$(BUILD)/%,$(wildcard examples/*.cpp))

.PHONY: all lib test bench clean
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

# The tests also cover the bench pieces other modes reuse (bench/floor_measure, bench/svg).
BENCH_SHARED_OBJ := $(BUILD)/bench/floor_measure.o $(BUILD)/bench/svg.o

$(TEST_BIN): $(TEST_OBJ) $(BENCH_SHARED_OBJ) $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

$(BENCH_BIN): $(BENCH_OBJ) $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/%: $(BUILD)/examples/%.o $(LIB)
	$(CXX) $(ALLFLAGS) $^ -o $@ $(LDLIBS)

# Tests run from the build directory's binaries (some start the examples and the bench).
test: $(TEST_BIN) $(EXAMPLES) $(BENCH_BIN)
	EVWHEEL_BUILD=$(BUILD) $(TEST_BIN)

bench: $(BENCH_BIN) $(EXAMPLES)
	$(BENCH_BIN) default

# doctest is Debian's doctest-dev: installed when we are root, otherwise named.
$(DOCTEST):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "evwheel: installing doctest-dev (Debian) for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq doctest-dev >/dev/null; \
	else \
	  echo "evwheel: the tests need doctest: install the Debian package doctest-dev (apt-get install doctest-dev)"; exit 1; \
	fi

clean:
	rm -rf build build-*

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(patsubst %.cpp,$(BUILD)/%.d,$(wildcard examples/*.cpp))
