// BLAKE2b (RFC 7693), unkeyed, any digest length 1..64: the plan hash uses an 8-byte digest.
// A straightforward single-call implementation after the RFC's reference code.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "arbsphere/wire.hpp"

namespace arbsphere {

class Blake2b {
public:
    explicit Blake2b(std::size_t digest_size) noexcept : outlen_(digest_size) {
        h_ = kIv;
        h_[0] ^= 0x01010000u ^ static_cast<std::uint64_t>(digest_size);
    }

    void update(const std::uint8_t* data, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i) {
            if (c_ == 128) {  // compress a full block only once more input follows
                t_ += c_;
                compress(false);
                c_ = 0;
            }
            b_[c_++] = data[i];
        }
    }

    // The digest (little-endian bytes of the state) into out[0 .. digest_size).
    void final(std::uint8_t* out) noexcept {
        t_ += c_;
        while (c_ < 128) b_[c_++] = 0;
        compress(true);
        for (std::size_t i = 0; i < outlen_; ++i) {
            out[i] = static_cast<std::uint8_t>((h_[i >> 3] >> (8 * (i & 7))) & 0xFFu);
        }
    }

private:
    static constexpr std::array<std::uint64_t, 8> kIv = {
        0x6A09E667F3BCC908ull, 0xBB67AE8584CAA73Bull, 0x3C6EF372FE94F82Bull,
        0xA54FF53A5F1D36F1ull, 0x510E527FADE682D1ull, 0x9B05688C2B3E6C1Full,
        0x1F83D9ABFB41BD6Bull, 0x5BE0CD19137E2179ull};
    static constexpr std::uint8_t kSigma[12][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

    static std::uint64_t rotr(std::uint64_t x, unsigned n) noexcept {
        return (x >> n) | (x << (64 - n));
    }

    static void g(std::uint64_t* v, int a, int b, int c, int d, std::uint64_t x,
                  std::uint64_t y) noexcept {
        v[a] = v[a] + v[b] + x;
        v[d] = rotr(v[d] ^ v[a], 32);
        v[c] = v[c] + v[d];
        v[b] = rotr(v[b] ^ v[c], 24);
        v[a] = v[a] + v[b] + y;
        v[d] = rotr(v[d] ^ v[a], 16);
        v[c] = v[c] + v[d];
        v[b] = rotr(v[b] ^ v[c], 63);
    }

    void compress(bool last) noexcept {
        std::uint64_t v[16];
        std::uint64_t m[16];
        for (int i = 0; i < 8; ++i) {
            v[i] = h_[static_cast<std::size_t>(i)];
            v[i + 8] = kIv[static_cast<std::size_t>(i)];
        }
        v[12] ^= t_;  // low 64 bits of the byte counter (the high word stays 0 here)
        if (last) v[14] = ~v[14];
        for (std::size_t i = 0; i < 16; ++i) m[i] = load_le<std::uint64_t>(b_.data() + 8 * i);
        for (int r = 0; r < 12; ++r) {
            const std::uint8_t* s = kSigma[r];
            g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for (std::size_t i = 0; i < 8; ++i) h_[i] ^= v[i] ^ v[i + 8];
    }

    std::array<std::uint64_t, 8> h_{};
    std::array<std::uint8_t, 128> b_{};
    std::uint64_t t_ = 0;
    std::size_t c_ = 0;
    std::size_t outlen_;
};

}  // namespace arbsphere
