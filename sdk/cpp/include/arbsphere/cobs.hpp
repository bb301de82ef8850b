// COBS (Cheshire & Baker 1999): encoding that removes every zero byte, so 0x00 can end a serial
// frame. Encode and decode into caller buffers; decode reports the offset of the first invalid
// byte (a zero, or a code running past the end) like the Python rig.
#pragma once

#include <cstddef>
#include <cstdint>

#include "arbsphere/wire.hpp"

namespace arbsphere {

// Longest encoding of n bytes (no delimiter).
constexpr std::size_t cobs_max_encoded(std::size_t n) noexcept { return n + n / 254 + 1; }

// Encode `in` into `out` (no delimiter); *written is the encoded length. no_space if `out` is
// shorter than cobs_max_encoded(in.size).
inline Status cobs_encode(Bytes in, MutBytes out, std::size_t* written) noexcept {
    if (out.size < cobs_max_encoded(in.size)) return fail(Problem::no_space, out.size);
    std::size_t code_at = 0;
    std::size_t o = 1;
    std::uint8_t code = 1;
    for (std::size_t i = 0; i < in.size; ++i) {
        if (in.data[i] == 0) {
            out.data[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out.data[o++] = in.data[i];
        if (++code == 0xFF) {  // a full block: its code implies no zero after it
            out.data[code_at] = code;
            if (i + 1 == in.size) {
                *written = o;
                return Status{};
            }
            code_at = o++;
            code = 1;
        }
    }
    out.data[code_at] = code;
    *written = o;
    return Status{};
}

// Decode `in` (no delimiter) into `out`; *written is the decoded length. Problem cobs at the
// offending byte of `in`; no_space if the decoding does not fit `out`.
inline Status cobs_decode(Bytes in, MutBytes out, std::size_t* written) noexcept {
    std::size_t i = 0;
    std::size_t o = 0;
    while (i < in.size) {
        const std::uint8_t code = in.data[i];
        if (code == 0) return fail(Problem::cobs, i);
        const std::size_t stop = i + code;
        if (stop > in.size) return fail(Problem::cobs, i);
        for (std::size_t k = i + 1; k < stop; ++k) {
            if (in.data[k] == 0) return fail(Problem::cobs, k);
            if (o == out.size) return fail(Problem::no_space, k);
            out.data[o++] = in.data[k];
        }
        i = stop;
        if (code != 0xFF && i < in.size) {
            if (o == out.size) return fail(Problem::no_space, i);
            out.data[o++] = 0;
        }
    }
    *written = o;
    return Status{};
}

// Offset in a valid encoding `raw` of decoded byte `target` (for error offsets).
inline std::size_t cobs_encoded_index(Bytes raw, std::size_t target) noexcept {
    std::size_t i = 0;
    std::size_t d = 0;
    while (i < raw.size) {
        const std::size_t code = raw.data[i];
        const std::size_t n = code - 1;
        if (target < d + n) return i + 1 + (target - d);
        d += n;
        i += code;
        if (code != 0xFF && i < raw.size) {
            if (target == d) return i;
            d += 1;
        }
    }
    return raw.size;
}

}  // namespace arbsphere
