// utf8 — an incremental UTF-8 validator (RFC 3629) whose whole state is one byte, so that a
// connection can keep it between the pieces of a text message.
//
// The state is a DFA state: kUtf8Boundary between characters, kUtf8Invalid once the bytes can
// no longer be valid UTF-8 whatever follows, or one of the states inside a character.  Feeding
// bytes in any number of pieces gives the state of feeding them at once, and it fails fast:
// the state turns invalid at the first byte that cannot continue a valid sequence, not at the
// end of the character or message.  Refused: stray continuation bytes, the overlong forms
// (leads 0xC0, 0xC1, and 0xE0 / 0xF0 followed by too small a second byte), surrogates
// U+D800..U+DFFF (0xED followed by 0xA0..0xBF), code points above U+10FFFF (0xF4 followed by
// 0x90.. and leads 0xF5..0xFF).  Runs of ASCII are checked 8 bytes at a time, the rest at
// about two cycles of dependency per byte (a shift-based DFA, see utf8.cpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace evwheel {

using Utf8State = uint8_t;
inline constexpr Utf8State kUtf8Boundary = 0;  // the start, and after each whole character
inline constexpr Utf8State kUtf8Invalid = 48;  // stays so, whatever is fed next

// The state after `bytes` when the bytes before them left `state`.
Utf8State utf8_feed(Utf8State state, std::string_view bytes) noexcept;

// Whether everything fed so far is valid and ends on a character boundary (a text message may
// end here).
constexpr bool utf8_complete(Utf8State state) noexcept { return state == kUtf8Boundary; }

// Whether `text` as a whole is valid UTF-8.
inline bool utf8_valid(std::string_view text) noexcept { return utf8_complete(utf8_feed(kUtf8Boundary, text)); }

}  // namespace evwheel
