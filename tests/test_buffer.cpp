// Unit tests for evwheel::Buffer and evwheel::BufferPool (include/evwheel/buffer.hpp).
//
// Buffer is checked against a std::string reference: after every operation the buffer's bytes
// must equal the reference's.  A seeded random test interleaves 100,000 appends and consumes of
// varied sizes, which exercises growth, the consumed-front reclaim and the reset on empty.
#include <doctest/doctest.h>

#include "evwheel/buffer.hpp"

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using evwheel::Buffer;
using evwheel::BufferPool;

std::string_view view(const Buffer& buffer) { return std::string_view(buffer.data(), buffer.size()); }

void append(Buffer& buffer, std::string_view bytes) { buffer.append(bytes.data(), bytes.size()); }

}  // namespace

TEST_CASE("a new buffer is empty") {
  Buffer buffer;
  CHECK(buffer.empty());
  CHECK(buffer.size() == 0);
  CHECK(buffer.capacity() == 0);
}

TEST_CASE("append adds bytes at the back and consume drops them from the front") {
  Buffer buffer;
  append(buffer, "hello");
  CHECK_FALSE(buffer.empty());
  CHECK(buffer.size() == 5);
  CHECK(view(buffer) == "hello");
  CHECK(buffer.capacity() >= 5);

  append(buffer, ", world");
  CHECK(view(buffer) == "hello, world");

  buffer.consume(7);
  CHECK(buffer.size() == 5);
  CHECK(view(buffer) == "world");

  append(buffer, std::string("\0\x01\xff", 3));
  CHECK(view(buffer) == std::string("world\0\x01\xff", 8));

  buffer.consume(0);
  CHECK(view(buffer) == std::string("world\0\x01\xff", 8));

  // Appending nothing changes nothing (and a null source is fine for zero bytes).
  buffer.append(nullptr, 0);
  CHECK(buffer.size() == 8);
}

TEST_CASE("many appends grow the storage and keep every byte in order") {
  Buffer buffer;
  std::string reference;
  std::size_t last_capacity = 0;
  int growths = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string piece = std::to_string(i) + ",";
    append(buffer, piece);
    reference += piece;
    if (buffer.capacity() != last_capacity) {
      ++growths;
      CHECK(buffer.capacity() > last_capacity);
      last_capacity = buffer.capacity();
    }
    CHECK(buffer.capacity() >= buffer.size());
  }
  CHECK(growths > 3);
  CHECK(buffer.size() == reference.size());
  CHECK(view(buffer) == reference);

  // One append much larger than the current capacity.
  std::string big(5 * buffer.capacity() + 17, 'z');
  append(buffer, big);
  reference += big;
  CHECK(view(buffer) == reference);
}

TEST_CASE("consuming everything empties the buffer and later appends start afresh") {
  Buffer buffer;
  append(buffer, "abcdef");
  buffer.consume(2);
  buffer.consume(4);
  CHECK(buffer.empty());
  CHECK(buffer.size() == 0);
  std::size_t capacity = buffer.capacity();

  // The consumed front is reused: refilling up to the capacity does not reallocate.
  std::string fill(capacity, 'q');
  append(buffer, fill);
  CHECK(buffer.capacity() == capacity);
  CHECK(view(buffer) == fill);

  buffer.clear();
  CHECK(buffer.empty());
  append(buffer, "x");
  CHECK(view(buffer) == "x");
}

TEST_CASE("a consumed front is reclaimed so a steady trickle does not grow the storage") {
  Buffer buffer;
  std::string reference;
  append(buffer, std::string(100, 'a'));
  reference.append(100, 'a');
  std::size_t capacity = buffer.capacity();
  // Keep about 100 bytes queued while pushing 1000x the capacity through.
  for (std::size_t i = 0; i < 1000 * capacity / 10; ++i) {
    std::string piece(10, static_cast<char>('a' + i % 26));
    append(buffer, piece);
    reference += piece;
    buffer.consume(10);
    reference.erase(0, 10);
  }
  CHECK(view(buffer) == reference);
  CHECK(buffer.capacity() == capacity);
}

// Found by the buffer fuzz target: append() copied from its source after reserve_back() had
// moved or freed the storage that source pointed into.
TEST_CASE("appending a buffer's own bytes copies them, also when that grows or compacts the storage") {
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += static_cast<char>('A' + i % 50);

  SUBCASE("growth: the source lives in the storage being replaced") {
    Buffer buffer;
    append(buffer, pattern);
    const std::size_t capacity = buffer.capacity();
    buffer.append(buffer.data(), buffer.size());
    CHECK(buffer.capacity() > capacity);
    CHECK(view(buffer) == pattern + pattern);
  }
  SUBCASE("compaction: the source moves to the front before the copy") {
    Buffer buffer;
    append(buffer, std::string(250, '-'));
    const std::size_t capacity = buffer.capacity();
    buffer.consume(210);
    append(buffer, pattern.substr(0, 6));  // fills the storage to its end
    const std::string before(view(buffer));
    buffer.append(buffer.data() + 40, 6);  // no room at the back: the 46 live bytes move
    CHECK(buffer.capacity() == capacity);
    CHECK(view(buffer) == before + before.substr(40, 6));
  }
}

TEST_CASE("100k random interleaved appends and consumes match a std::string reference") {
  std::mt19937_64 rng(0xb0ffe7);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  Buffer buffer;
  std::string reference;
  uint8_t next = 0;
  int compared = 0, emptied = 0;  // byte-for-byte comparisons made; drains to empty
  for (int op = 0; op < 100000; ++op) {
    CAPTURE(op);
    if (uniform(0, 99) < 52) {
      // Mostly small, sometimes large appends.
      std::size_t n = uniform(0, 9) == 0 ? uniform(0, 5000) : uniform(0, 64);
      std::string piece(n, '\0');
      for (char& c : piece) c = static_cast<char>(next++);
      append(buffer, piece);
      reference += piece;
    } else {
      std::size_t n;
      switch (uniform(0, 3)) {
        case 0: n = reference.size(); break;  // drain
        case 1: n = 0; break;
        default: n = uniform(0, reference.size()); break;
      }
      buffer.consume(n);
      reference.erase(0, n);
    }
    REQUIRE(buffer.size() == reference.size());
    REQUIRE(buffer.empty() == reference.empty());
    REQUIRE(buffer.capacity() >= buffer.size());
    if (!reference.empty()) REQUIRE(view(buffer) == reference);
    compared += !reference.empty();
    emptied += reference.empty();
  }
  CHECK(compared > 10000);
  CHECK(emptied > 100);
}

TEST_CASE("BufferPool::acquire gives empty buffers, also ones that went back with bytes in them") {
  BufferPool pool(4, 1024);
  CHECK(pool.kept() == 0);
  Buffer* a = pool.acquire();
  REQUIRE(a != nullptr);
  CHECK(a->empty());
  append(*a, "left over");
  pool.release(a);
  CHECK(pool.kept() == 1);

  Buffer* b = pool.acquire();
  CHECK(b == a);  // the kept buffer is reused
  CHECK(b->empty());
  CHECK(b->size() == 0);
  CHECK(pool.kept() == 0);
  append(*b, "fresh");
  CHECK(view(*b) == "fresh");
  pool.release(b);
}

TEST_CASE("BufferPool::release keeps at most max_kept buffers") {
  BufferPool pool(3, 1024);
  std::vector<Buffer*> buffers;
  for (int i = 0; i < 5; ++i) buffers.push_back(pool.acquire());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    CHECK(buffers[i]->empty());
    for (std::size_t j = 0; j < i; ++j) CHECK(buffers[i] != buffers[j]);
  }
  std::size_t want[] = {1, 2, 3, 3, 3};
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    pool.release(buffers[i]);  // the ones above max_kept are freed (ASan would see a leak)
    CHECK(pool.kept() == want[i]);
  }
  // Acquiring takes the kept ones (the first three released) before allocating.
  std::vector<Buffer*> again;
  for (int i = 0; i < 3; ++i) {
    again.push_back(pool.acquire());
    CHECK((again.back() == buffers[0] || again.back() == buffers[1] || again.back() == buffers[2]));
  }
  CHECK(pool.kept() == 0);
  for (Buffer* b : again) pool.release(b);
  CHECK(pool.kept() == 3);
}

TEST_CASE("BufferPool::release frees a buffer whose capacity is above max_kept_capacity") {
  BufferPool pool(8, 1024);
  Buffer* big = pool.acquire();
  append(*big, std::string(4000, 'b'));
  REQUIRE(big->capacity() > 1024);
  pool.release(big);
  CHECK(pool.kept() == 0);

  Buffer* small = pool.acquire();
  append(*small, std::string(10, 's'));
  REQUIRE(small->capacity() <= 1024);
  pool.release(small);
  CHECK(pool.kept() == 1);

  // A pool that keeps nothing frees everything.
  BufferPool none(0, 1024);
  Buffer* b = none.acquire();
  none.release(b);
  CHECK(none.kept() == 0);
}

TEST_CASE("BufferPool::release(nullptr) is harmless") {
  BufferPool pool(2, 1024);
  pool.release(nullptr);
  CHECK(pool.kept() == 0);
  Buffer* a = pool.acquire();
  pool.release(a);
  pool.release(nullptr);
  CHECK(pool.kept() == 1);
}
