// utf8_reference — UTF-8 judged the plain way, as a reference for the table-driven validator
// (src/utf8.hpp): decode each character's code point, then check it is a Unicode scalar value
// that needed all its bytes.  A last character cut short is judged by the range of code points
// its missing continuation bytes could still make.  Shared by tests/test_utf8.cpp and the
// WebSocket frame fuzz target.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace utf8_reference {

enum class Verdict { complete, incomplete, invalid };

// Whether some code point in [low, high] is a Unicode scalar value of at least `minimum` (the
// smallest one that needs this many bytes: anything below is an overlong form).
inline bool reachable(uint32_t low, uint32_t high, uint32_t minimum) {
  low = std::max(low, minimum);
  high = std::min(high, uint32_t{0x10ffff});
  if (low > high) return false;
  return !(low >= 0xd800 && high <= 0xdfff);  // not surrogates only
}

inline Verdict judge(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length;
    uint32_t code_point, minimum;
    if (lead >= 0xc0 && lead < 0xe0) {
      length = 2, code_point = lead & 0x1fu, minimum = 0x80;
    } else if (lead >= 0xe0 && lead < 0xf0) {
      length = 3, code_point = lead & 0x0fu, minimum = 0x800;
    } else if (lead >= 0xf0 && lead < 0xf8) {
      length = 4, code_point = lead & 0x07u, minimum = 0x10000;
    } else {
      return Verdict::invalid;  // a continuation byte, or 0xF8..0xFF
    }
    const std::size_t present = std::min(length, text.size() - i);
    for (std::size_t j = 1; j < present; ++j) {
      const auto byte = static_cast<unsigned char>(text[i + j]);
      if ((byte & 0xc0) != 0x80) return Verdict::invalid;
      code_point = code_point << 6 | (byte & 0x3fu);
    }
    const unsigned missing_bits = 6 * static_cast<unsigned>(length - present);
    const uint32_t low = code_point << missing_bits;
    const uint32_t high = low | ((uint32_t{1} << missing_bits) - 1);
    if (!reachable(low, high, minimum)) return Verdict::invalid;
    if (present < length) return Verdict::incomplete;
    i += length;
  }
  return Verdict::complete;
}

}  // namespace utf8_reference
