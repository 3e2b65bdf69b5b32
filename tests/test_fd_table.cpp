// Unit tests for evwheel::FdTable (include/evwheel/fd_table.hpp).
#include <doctest/doctest.h>

#include <vector>

#include "evwheel/fd_table.hpp"

using evwheel::FdTable;

TEST_CASE("a claimed descriptor's slot is found; an unclaimed or released one is not") {
  FdTable<int, 64> table;
  CHECK(table.find(5) == nullptr);
  CHECK(table.find(-1) == nullptr);
  table.claim(5) = 42;
  REQUIRE(table.find(5) != nullptr);
  CHECK(*table.find(5) == 42);
  CHECK(table.find(6) == nullptr);
  table.release(5);
  CHECK(table.find(5) == nullptr);
  table.release(100000);  // never claimed, no chunk: harmless
}

TEST_CASE("a released slot keeps its value for peek() and the next claim()") {
  FdTable<int, 64> table;
  CHECK(table.peek(3) == nullptr);  // no chunk yet
  table.claim(3) = 7;
  table.release(3);
  REQUIRE(table.peek(3) != nullptr);
  CHECK(*table.peek(3) == 7);
  CHECK(table.claim(3) == 7);
  REQUIRE(table.peek(4) != nullptr);  // same chunk, never claimed: default value
  CHECK(*table.peek(4) == 0);
}

TEST_CASE("slots never move when later chunks are added") {
  FdTable<int, 64> table;
  int* low = &table.claim(1);
  for (int fd = 64; fd < 64 * 200; fd += 64) table.claim(fd);
  CHECK(&table.claim(1) == low);
  CHECK(&table.at(1) == low);
}

TEST_CASE("for_each visits claimed slots in descriptor order, across chunk and word boundaries") {
  FdTable<int, 128> table;
  std::vector<int> claimed = {0, 63, 64, 127, 128, 1000, 5000};
  for (int fd : claimed) table.claim(fd) = fd * 2;
  std::vector<int> seen;
  table.for_each([&](int fd, int& value) {
    CHECK(value == fd * 2);
    seen.push_back(fd);
  });
  CHECK(seen == claimed);
}

TEST_CASE("for_each skips a slot released by an earlier visit in the same walk") {
  FdTable<int, 64> table;
  for (int fd : {1, 2, 3, 70}) table.claim(fd);
  std::vector<int> seen;
  table.for_each([&](int fd, int&) {
    seen.push_back(fd);
    if (fd == 1) {
      table.release(2);
      table.release(70);
    }
  });
  CHECK(seen == std::vector<int>{1, 3});
}
