// bench::Json (bench/common/json.hpp), the writer of every bench --json file: the exact text
// of a nested document, string escaping, and null for numbers that are not finite.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "../bench/common/json.hpp"

TEST_CASE("json: nested objects and arrays, one member per line, commas only between members") {
  bench::Json json;
  json.open()
      .text("mode", "conns")
      .open("options")
      .integer("conns", 300)
      .number("fraction", 0.1, 2)
      .boolean("seed", false)
      .close()
      .open_array("runs")
      .open()
      .text("timers", "wheel")
      .null("x_sweep")
      .close()
      .open()
      .close()
      .close()
      .open_array("empty")
      .close()
      .close();
  CHECK(json.str() ==
        "{\n"
        "  \"mode\": \"conns\",\n"
        "  \"options\": {\n"
        "    \"conns\": 300,\n"
        "    \"fraction\": 0.10,\n"
        "    \"seed\": false\n"
        "  },\n"
        "  \"runs\": [\n"
        "    {\n"
        "      \"timers\": \"wheel\",\n"
        "      \"x_sweep\": null\n"
        "    },\n"
        "    {}\n"
        "  ],\n"
        "  \"empty\": []\n"
        "}\n");
}

TEST_CASE("json: strings are escaped; numbers that are not finite become null") {
  CHECK(bench::Json::quote("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\u000a\\u0001\"");
  bench::Json json;
  json.open().number("nan", std::nan("")).number("inf", HUGE_VAL).number("pi", 3.14159, 1).integer("neg", -2).close();
  CHECK(json.str() == "{\n  \"nan\": null,\n  \"inf\": null,\n  \"pi\": 3.1,\n  \"neg\": -2\n}\n");
}

TEST_CASE("json: write_file writes the whole text, or says which path failed and why") {
  const std::string path = "/tmp/evwheel-json-test-" + std::to_string(::getpid()) + ".json";
  std::string error;
  REQUIRE(bench::write_file(path, "{}\n", &error));
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "{}\n");
  ::unlink(path.c_str());

  CHECK_FALSE(bench::write_file("/nonexistent-dir/x.json", "{}", &error));
  CHECK(error == "/nonexistent-dir/x.json: No such file or directory");
}
