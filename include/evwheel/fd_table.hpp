// fd_table — a table indexed by descriptor number, Redis-style (`events[fd]`), that grows in
// fixed chunks and never moves what it holds.
//
// Every per-descriptor table in evwheel is one of these: the reactor's registrations, an
// endpoint's connections, the observers of connector-made connections, the clients named by
// PROXY headers.  Descriptor numbers are small and dense (the kernel hands out the lowest free
// one), so a slot per number beats a map: one shift and one mask, no hashing, no allocation
// once the chunk exists.
//
// Chunks, not one vector: a doubling vector holds up to twice the slots in use and moves them
// on growth — and epoll cookies and the timing wheel point into these slots.  A chunk is
// allocated the first time one of its descriptors is claimed and lives as long as the table.
// Each chunk keeps a bit per slot saying whether the slot is in use, so a table can be walked
// in descriptor order without looking at free slots.
//
// Not thread-safe: a table belongs to its reactor's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace evwheel {

template <class T, std::size_t ChunkSlots>
class FdTable {
  static_assert(ChunkSlots % 64 == 0, "a chunk's in-use bits are whole 64-bit words");

 public:
  FdTable() = default;
  FdTable(const FdTable&) = delete;
  FdTable& operator=(const FdTable&) = delete;

  // The slot of `fd`, marked in use; its chunk is allocated (value-initialized: zero for
  // plain types) on first use, which may throw std::bad_alloc.  A slot keeps its value when
  // released and claimed again.
  T& claim(int fd) {
    auto index = static_cast<std::size_t>(fd);
    std::size_t chunk = index / ChunkSlots;
    if (chunk >= chunks_.size()) chunks_.resize(chunk + 1);
    if (!chunks_[chunk]) chunks_[chunk].reset(new Chunk());
    Chunk& c = *chunks_[chunk];
    std::size_t slot = index % ChunkSlots;
    c.used[slot / 64] |= uint64_t{1} << (slot % 64);
    return c.slots[slot];
  }

  // Marks the slot of `fd` free; harmless for one never claimed.
  void release(int fd) noexcept {
    if (Chunk* c = chunk_of(fd)) {
      std::size_t slot = static_cast<std::size_t>(fd) % ChunkSlots;
      c->used[slot / 64] &= ~(uint64_t{1} << (slot % 64));
    }
  }

  // The slot of `fd` if it is in use, else null.
  T* find(int fd) const noexcept {
    Chunk* c = chunk_of(fd);
    if (!c) return nullptr;
    std::size_t slot = static_cast<std::size_t>(fd) % ChunkSlots;
    if (!(c->used[slot / 64] & (uint64_t{1} << (slot % 64)))) return nullptr;
    return &c->slots[slot];
  }

  // The slot of `fd` whether in use or not (a released slot keeps its value); null when no
  // descriptor of its chunk was ever claimed.
  T* peek(int fd) const noexcept {
    Chunk* c = chunk_of(fd);
    return c ? &c->slots[static_cast<std::size_t>(fd) % ChunkSlots] : nullptr;
  }

  // The slot of a descriptor known to be claimed: no checks, for the dispatch loop.
  T& at(int fd) const noexcept {
    auto index = static_cast<std::size_t>(fd);
    return chunks_[index / ChunkSlots]->slots[index % ChunkSlots];
  }

  // Calls visit(fd, slot) for every slot in use, in descriptor order.  `visit` may release any
  // slot, claimed ones included: each bit is looked at again just before its visit.  Slots
  // claimed during the walk may or may not be visited.
  template <class Visit>
  void for_each(Visit&& visit) {
    for (std::size_t chunk = 0; chunk < chunks_.size(); ++chunk) {
      Chunk* c = chunks_[chunk].get();
      if (!c) continue;
      for (std::size_t word = 0; word < ChunkSlots / 64; ++word) {
        for (uint64_t pending = c->used[word]; pending; pending &= pending - 1) {
          auto bit = static_cast<std::size_t>(__builtin_ctzll(pending));
          if (!(c->used[word] & (uint64_t{1} << bit))) continue;
          std::size_t slot = word * 64 + bit;
          visit(static_cast<int>(chunk * ChunkSlots + slot), c->slots[slot]);
        }
      }
    }
  }

 private:
  struct Chunk {
    T slots[ChunkSlots];
    uint64_t used[ChunkSlots / 64] = {};
  };

  Chunk* chunk_of(int fd) const noexcept {
    if (fd < 0) return nullptr;
    std::size_t chunk = static_cast<std::size_t>(fd) / ChunkSlots;
    return chunk < chunks_.size() ? chunks_[chunk].get() : nullptr;
  }

  std::vector<std::unique_ptr<Chunk>> chunks_;  // pointers only: a chunk never moves
};

}  // namespace evwheel
