// ArbSphere C++ SDK: byte spans, little-endian loads and stores, and the Status every decoder
// returns (a problem code naming what is wrong and the byte offset at fault; no exceptions).
//
// Loads and stores go through std::memcpy, so they are defined behaviour on unaligned data,
// and swap bytes on a big-endian host: the wire is always little-endian. The problem names are
// the tags the Python rig uses in DecodeError / FrameError / DatagramError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace arbsphere {

struct Bytes {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
};

struct MutBytes {
    std::uint8_t* data = nullptr;
    std::size_t size = 0;
    operator Bytes() const noexcept { return Bytes{data, size}; }
};

enum class Problem : std::uint8_t {
    ok = 0,
    short_buffer,     // "short": the bytes end before what the header announces
    bad_magic,        // envelope magic is not "ARBS"
    unknown_schema,   // schema id not declared
    unexpected_schema,// a valid schema, but not the one asked for
    bad_version,      // schema or device message version not supported
    bad_length,       // a length or count field disagrees with the bytes
    unknown_type,     // device message type not declared
    reserved_type,    // device message type reserved for future use
    unexpected_type,  // a valid message, but not the type asked for
    count_mismatch,   // datagram count says more messages than it holds
    trailing_bytes,   // datagram bytes after the announced messages
    empty,            // an empty serial frame
    oversize,         // frame longer than the largest valid one
    cobs,             // invalid COBS encoding
    crc,              // CRC-32C trailer does not match
    no_space,         // an encoder's output buffer is too small
};

constexpr const char* problem_name(Problem p) noexcept {
    switch (p) {
        case Problem::ok: return "ok";
        case Problem::short_buffer: return "short";
        case Problem::bad_magic: return "bad_magic";
        case Problem::unknown_schema: return "unknown_schema";
        case Problem::unexpected_schema: return "unexpected_schema";
        case Problem::bad_version: return "bad_version";
        case Problem::bad_length: return "bad_length";
        case Problem::unknown_type: return "unknown_type";
        case Problem::reserved_type: return "reserved_type";
        case Problem::unexpected_type: return "unexpected_type";
        case Problem::count_mismatch: return "count_mismatch";
        case Problem::trailing_bytes: return "trailing_bytes";
        case Problem::empty: return "empty";
        case Problem::oversize: return "oversize";
        case Problem::cobs: return "cobs";
        case Problem::crc: return "crc";
        case Problem::no_space: return "no_space";
    }
    return "?";
}

struct Status {
    Problem problem = Problem::ok;
    std::size_t offset = 0;  // byte offset of the offending byte or field
    constexpr bool ok() const noexcept { return problem == Problem::ok; }
    const char* name() const noexcept { return problem_name(problem); }
};

// The wire type of a declared field, and where it sits (views list theirs in kFields, so
// generic code can read or set a field by name).
enum class WireType : std::uint8_t { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64 };

struct FieldInfo {
    const char* name;
    std::size_t offset;
    WireType type;
    std::size_t count;  // 1 for a scalar
};

constexpr Status fail(Problem p, std::size_t offset) noexcept { return Status{p, offset}; }

namespace detail {
template <std::size_t N> struct UInt;
template <> struct UInt<1> { using type = std::uint8_t; };
template <> struct UInt<2> { using type = std::uint16_t; };
template <> struct UInt<4> { using type = std::uint32_t; };
template <> struct UInt<8> { using type = std::uint64_t; };

template <class U> constexpr U byteswap(U v) noexcept {
    U out = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        out = static_cast<U>((out << 8) | ((v >> (8 * i)) & 0xFFu));
    }
    return out;
}

constexpr bool host_is_little() noexcept {
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return false;
#else
    return true;
#endif
}
}  // namespace detail

// The value of type T stored little-endian at p (any alignment).
template <class T> T load_le(const std::uint8_t* p) noexcept {
    static_assert(std::is_arithmetic<T>::value, "load_le reads integers and floats");
    using U = typename detail::UInt<sizeof(T)>::type;
    U bits;
    std::memcpy(&bits, p, sizeof bits);
    if (!detail::host_is_little()) bits = detail::byteswap(bits);
    T value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// Store v little-endian at p (any alignment).
template <class T> void store_le(std::uint8_t* p, T v) noexcept {
    static_assert(std::is_arithmetic<T>::value, "store_le writes integers and floats");
    using U = typename detail::UInt<sizeof(T)>::type;
    U bits;
    std::memcpy(&bits, &v, sizeof bits);
    if (!detail::host_is_little()) bits = detail::byteswap(bits);
    std::memcpy(p, &bits, sizeof bits);
}

}  // namespace arbsphere
