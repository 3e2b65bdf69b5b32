// buffer — a contiguous byte queue (append at the back, consume from the front) and the pool
// that lends buffers to connections only while they have bytes pending.
//
// An idle connection holds no Buffer at all: reads land in one scratch area per endpoint and
// only an incomplete frame or unsent output takes a buffer from the pool; the buffer goes back
// as soon as it drains.  The pool keeps released buffers (up to a count and a size) so the
// steady state allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace evwheel {

class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  const char* data() const noexcept { return data_ + begin_; }
  char* data() noexcept { return data_ + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return capacity_; }

  // Copies `n` bytes to the back, growing the storage (throws std::bad_alloc) when needed.
  // `bytes` may point into this buffer (between data() and data() + size()).
  void append(const void* bytes, std::size_t n);
  // Drops `n` (<= size()) bytes from the front.
  void consume(std::size_t n) noexcept;
  void clear() noexcept { begin_ = end_ = 0; }

 private:
  void reserve_back(std::size_t n);

  char* data_ = nullptr;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t capacity_ = 0;
};

class BufferPool {
 public:
  // Keeps at most `max_kept` released buffers, and none larger than `max_kept_capacity`.
  explicit BufferPool(std::size_t max_kept = 1024, std::size_t max_kept_capacity = 64 * 1024)
      : max_kept_(max_kept), max_kept_capacity_(max_kept_capacity) {
    free_.reserve(max_kept);
  }
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Buffer* acquire();                    // an empty buffer
  void release(Buffer* buffer) noexcept;  // takes it back (null is ignored)
  std::size_t kept() const noexcept { return free_.size(); }

 private:
  std::size_t max_kept_;
  std::size_t max_kept_capacity_;
  std::vector<Buffer*> free_;
};

}  // namespace evwheel
