// Serial framing of device messages: frame = COBS(message || CRC-32C(message) as u32 LE) || 0x00.
// encode_frame / decode_frame handle one frame with the Python rig's problems and offsets
// (empty, oversize, cobs, short, crc); FrameDecoder deframes a byte stream read in arbitrary
// chunks with a fixed buffer, counting bad frames instead of failing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "arbsphere/cobs.hpp"
#include "arbsphere/crc32c.hpp"
#include "arbsphere/device_messages.hpp"
#include "arbsphere/wire.hpp"

namespace arbsphere {

inline constexpr std::size_t kCrcSize = 4;
inline constexpr std::size_t kMaxPayload = device::kSerialMaxPayload;
// Longest encoded frame (delimiter excluded) for kMaxPayload message bytes.
inline constexpr std::size_t kMaxEncodedFrame = cobs_max_encoded(kMaxPayload + kCrcSize);

// Write the frame carrying `payload` (delimiter included) to `out`; *written its length.
inline Status encode_frame(Bytes payload, MutBytes out, std::size_t* written) noexcept {
    if (payload.size > kMaxPayload) return fail(Problem::oversize, kMaxPayload);
    std::array<std::uint8_t, kMaxPayload + kCrcSize> raw{};
    for (std::size_t i = 0; i < payload.size; ++i) raw[i] = payload.data[i];
    store_le<std::uint32_t>(raw.data() + payload.size, crc32c(payload.data, payload.size));
    std::size_t n = 0;
    if (out.size == 0) return fail(Problem::no_space, 0);
    const Status st = cobs_encode(Bytes{raw.data(), payload.size + kCrcSize},
                                  MutBytes{out.data, out.size - 1}, &n);
    if (!st.ok()) return st;
    out.data[n] = 0;
    *written = n + 1;
    return st;
}

// The payload of one frame given WITHOUT its delimiter, decoded into `out` (at least
// kMaxPayload + kCrcSize bytes); *payload_size its length. Offsets are within `frame`.
inline Status decode_frame(Bytes frame, MutBytes out, std::size_t* payload_size) noexcept {
    if (frame.size == 0) return fail(Problem::empty, 0);
    if (frame.size > kMaxEncodedFrame) return fail(Problem::oversize, kMaxEncodedFrame);
    std::size_t n = 0;
    const Status st = cobs_decode(frame, out, &n);
    if (st.problem == Problem::no_space) {
        return fail(Problem::oversize, cobs_encoded_index(frame, kMaxPayload));
    }
    if (!st.ok()) return st;
    if (n < kCrcSize) return fail(Problem::short_buffer, frame.size);
    n -= kCrcSize;
    if (n > kMaxPayload) return fail(Problem::oversize, cobs_encoded_index(frame, kMaxPayload));
    if (load_le<std::uint32_t>(out.data + n) != crc32c(out.data, n)) {
        return fail(Problem::crc, cobs_encoded_index(frame, n));
    }
    *payload_size = n;
    return Status{};
}

// Stream deframer. feed() calls on_payload(Bytes) for every complete, CRC-valid frame; a run
// without a delimiter longer than the longest valid frame is discarded up to the next
// delimiter (oversize). Error offsets in last_error are absolute stream offsets.
class FrameDecoder {
public:
    std::uint64_t frames_ok = 0, crc_errors = 0, cobs_errors = 0, short_frames = 0,
                  oversize = 0, empty_frames = 0, bytes_in = 0;
    Status last_error;

    template <class OnPayload> void feed(Bytes data, OnPayload&& on_payload) {
        for (std::size_t i = 0; i < data.size; ++i, ++bytes_in) {
            const std::uint8_t b = data.data[i];
            if (b != 0) {
                if (discarding_) continue;
                if (len_ == 0) start_ = bytes_in;
                if (len_ == buf_.size()) {
                    error(fail(Problem::oversize, start_ + kMaxEncodedFrame));
                    len_ = 0;
                    discarding_ = true;
                    continue;
                }
                buf_[len_++] = b;
                continue;
            }
            if (discarding_) {
                discarding_ = false;
            } else if (len_ == 0) {
                ++empty_frames;
            } else {
                std::size_t n = 0;
                const Status st = decode_frame(Bytes{buf_.data(), len_},
                                               MutBytes{out_.data(), out_.size()}, &n);
                if (st.ok()) {
                    ++frames_ok;
                    on_payload(Bytes{out_.data(), n});
                } else {
                    error(fail(st.problem, start_ + st.offset));
                }
            }
            len_ = 0;
        }
    }

private:
    void error(Status st) noexcept {
        if (st.problem == Problem::crc) ++crc_errors;
        else if (st.problem == Problem::cobs) ++cobs_errors;
        else if (st.problem == Problem::short_buffer) ++short_frames;
        else ++oversize;
        last_error = st;
    }

    std::array<std::uint8_t, kMaxEncodedFrame> buf_{};
    std::array<std::uint8_t, kMaxEncodedFrame> out_{};
    std::size_t len_ = 0;
    std::uint64_t start_ = 0;
    bool discarding_ = false;
};

}  // namespace arbsphere
