// utf8 — see utf8.hpp.  Each byte falls in one of 12 classes by what it can be (ASCII, the
// three ranges of continuation bytes that the lead bytes E0, ED, F0 and F4 care about, the
// groups of lead bytes, never-valid bytes), and the DFA's transitions are written by state and
// class.  They are stored as a shift-based DFA: a state is stored as a bit offset (6 bits per
// state, 9 states in 54 bits), and each byte's 64-bit row holds, at the offset of every state,
// the offset of the state that byte leads to.  One step is then a load that does not depend on
// the state and a shift and mask that do — two cycles of dependency per byte instead of a
// multiply and a second load.
#include "utf8.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace evwheel {

namespace {

enum Class : uint8_t {
  ascii,          // 00..7F
  cont_low,       // 80..8F
  cont_mid,       // 90..9F
  cont_high,      // A0..BF
  lead2,          // C2..DF
  lead_e0,        // E0: the second byte must be A0..BF (else overlong)
  lead3,          // E1..EC, EE, EF
  lead_ed,        // ED: the second byte must be 80..9F (else a surrogate)
  lead_f0,        // F0: the second byte must be 90..BF (else overlong)
  lead4,          // F1..F3
  lead_f4,        // F4: the second byte must be 80..8F (else above U+10FFFF)
  never,          // C0, C1 (overlong by themselves), F5..FF (above U+10FFFF)
};

// The states between kUtf8Boundary and kUtf8Invalid: how many continuation bytes are still
// due, and for the four constrained leads, which range the next one must fall in.
enum State : uint8_t { boundary, need1, need2, need3, after_e0, after_ed, after_f0, after_f4, invalid, kStates };

constexpr Class class_of(unsigned byte) {
  if (byte < 0x80) return ascii;
  if (byte < 0x90) return cont_low;
  if (byte < 0xa0) return cont_mid;
  if (byte < 0xc0) return cont_high;
  if (byte < 0xc2) return never;
  if (byte < 0xe0) return lead2;
  if (byte == 0xe0) return lead_e0;
  if (byte == 0xed) return lead_ed;
  if (byte < 0xf0) return lead3;
  if (byte == 0xf0) return lead_f0;
  if (byte < 0xf4) return lead4;
  if (byte == 0xf4) return lead_f4;
  return never;
}

constexpr State next_state(State state, Class c) {
  const bool continuation = c == cont_low || c == cont_mid || c == cont_high;
  switch (state) {
    case boundary:
      switch (c) {
        case ascii: return boundary;
        case lead2: return need1;
        case lead3: return need2;
        case lead4: return need3;
        case lead_e0: return after_e0;
        case lead_ed: return after_ed;
        case lead_f0: return after_f0;
        case lead_f4: return after_f4;
        default: return invalid;
      }
    case need1: return continuation ? boundary : invalid;
    case need2: return continuation ? need1 : invalid;
    case need3: return continuation ? need2 : invalid;
    case after_e0: return c == cont_high ? need1 : invalid;
    case after_ed: return c == cont_low || c == cont_mid ? need1 : invalid;
    case after_f0: return c == cont_mid || c == cont_high ? need2 : invalid;
    case after_f4: return c == cont_low ? need2 : invalid;
    default: return invalid;
  }
}

constexpr unsigned kBitsPerState = 6;
constexpr unsigned offset_of(State state) { return state * kBitsPerState; }
static_assert(offset_of(boundary) == kUtf8Boundary && offset_of(invalid) == kUtf8Invalid,
              "the header's constants are these states' offsets");
static_assert(offset_of(invalid) + kBitsPerState <= 64, "every state's next offset fits in a 64-bit row");

// rows[byte]: at bit offset_of(s), the offset of the state `byte` leads to from state s.
constexpr std::array<uint64_t, 256> make_rows() {
  std::array<uint64_t, 256> rows{};
  for (unsigned byte = 0; byte < 256; ++byte)
    for (unsigned s = 0; s < kStates; ++s)
      rows[byte] |= uint64_t{offset_of(next_state(static_cast<State>(s), class_of(byte)))} << offset_of(static_cast<State>(s));
  return rows;
}
constexpr std::array<uint64_t, 256> kRows = make_rows();
constexpr uint64_t kStateMask = (uint64_t{1} << kBitsPerState) - 1;

constexpr uint64_t kHighBits = 0x8080808080808080u;
constexpr std::ptrdiff_t kBlock = 16;

}  // namespace

Utf8State utf8_feed(Utf8State state, std::string_view bytes) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* const end = p + bytes.size();
  while (p < end) {
    if (state == kUtf8Boundary) {
      // Between characters, 8 ASCII bytes in a row cannot change the state.
      for (; end - p >= 8; p += 8) {
        uint64_t word;
        std::memcpy(&word, p, 8);
        if (word & kHighBits) break;
      }
    }
    // Then a block through the DFA with no test per byte: invalid is a state it never leaves,
    // so looking for it once per block loses nothing.
    const unsigned char* const block_end = p + std::min<std::ptrdiff_t>(end - p, kBlock);
    while (p < block_end) state = static_cast<Utf8State>(kRows[*p++] >> state & kStateMask);
    if (state == kUtf8Invalid) break;
  }
  return state;
}

}  // namespace evwheel
