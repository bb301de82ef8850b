// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF; the check
// value of "123456789" is 0xE3069283. The serial framing's trailer (serial_frame.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace arbsphere {

namespace detail {
constexpr std::array<std::uint32_t, 256> crc32c_table() noexcept {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    return table;
}
inline constexpr std::array<std::uint32_t, 256> kCrc32cTable = crc32c_table();
}  // namespace detail

// Continue a CRC-32C over more bytes: crc32c_update(crc32c_update(0, a), b) == crc32c(a || b).
inline std::uint32_t crc32c_update(std::uint32_t crc, const std::uint8_t* data,
                                   std::size_t n) noexcept {
    std::uint32_t c = ~crc;
    for (std::size_t i = 0; i < n; ++i) c = detail::kCrc32cTable[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
    return ~c;
}

inline std::uint32_t crc32c(const std::uint8_t* data, std::size_t n) noexcept {
    return crc32c_update(0, data, n);
}

}  // namespace arbsphere
