// UDP datagrams of device messages (MoldUDP64-like): a 24-byte header (session u8[10], count,
// sequence of the first message) then `count` messages back to back that exactly fill the
// datagram; count 0 is a heartbeat announcing the next sequence. unpack_datagram checks a
// datagram like the Python rig (short, count_mismatch, bad_length, trailing_bytes); GapTracker
// turns header sequences into gap, loss, duplicate and reorder counts per session.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "arbsphere/device_messages.hpp"
#include "arbsphere/wire.hpp"

namespace arbsphere {

// Write a datagram header at the start of `out`: `session` space padded to 10 bytes (longer
// names are cut), `count` messages following, `sequence` of the first.
inline Status write_datagram_header(MutBytes out, const std::string& session,
                                    std::uint16_t count, std::uint64_t sequence) noexcept {
    if (out.size < device::kDatagramHeaderSize) return fail(Problem::no_space, out.size);
    std::memset(out.data, 0, device::kDatagramHeaderSize);
    device::DatagramHeaderWriter w(out.data);
    for (std::size_t i = 0; i < device::kDatagramSessionSize; ++i) {
        w.set_session(i, i < session.size() ? static_cast<std::uint8_t>(session[i]) : ' ');
    }
    w.set_count(count).set_sequence(sequence);
    return Status{};
}

// The session field of a header as a string (10 bytes, padding kept).
inline std::string datagram_session(device::DatagramHeader h) {
    std::string s(device::kDatagramSessionSize, ' ');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(h.session(i));
    return s;
}

// Check that `buf` is one well-formed datagram, then call on_message(Bytes) for each message
// in order (nothing is called for a malformed datagram). Message contents are checked by
// device::decode. *header views the datagram header.
template <class OnMessage>
Status unpack_datagram(Bytes buf, device::DatagramHeader* header, OnMessage&& on_message) {
    using device::DatagramHeader;
    using device::Header;
    if (buf.size < device::kDatagramHeaderSize) return fail(Problem::short_buffer, buf.size);
    const DatagramHeader h(buf.data);
    std::size_t pos = device::kDatagramHeaderSize;
    for (std::size_t i = 0; i < h.count(); ++i) {
        if (pos == buf.size) return fail(Problem::count_mismatch, DatagramHeader::Offset::count);
        if (buf.size - pos < device::kHeaderSize) return fail(Problem::short_buffer, buf.size);
        const std::size_t length = Header(buf.data + pos).length();
        if (length < device::kHeaderSize || length > buf.size - pos) {
            return fail(Problem::bad_length, pos + Header::Offset::length);
        }
        pos += length;
    }
    if (pos != buf.size) return fail(Problem::trailing_bytes, pos);
    *header = h;
    pos = device::kDatagramHeaderSize;
    for (std::size_t i = 0; i < h.count(); ++i) {
        const std::size_t length = Header(buf.data + pos).length();
        on_message(Bytes{buf.data + pos, length});
        pos += length;
    }
    return Status{};
}

// Sequence tracking per session, as the rig's GapDetector: `gaps` gap events, `missing`
// messages still missing (a late arrival filling a hole moves them to `recovered` and counts
// one `reordered`), `duplicates` datagrams whose messages were all seen. The first datagram
// of a session starts it. At most max_holes open holes are remembered per session.
class GapTracker {
public:
    explicit GapTracker(std::size_t max_holes = 1024) : max_holes_(max_holes) {}

    std::uint64_t datagrams = 0, messages = 0, gaps = 0, missing = 0, recovered = 0,
                  duplicates = 0, reordered = 0, session_changes = 0;

    // Account one datagram; returns how many messages are missing just before it.
    std::uint64_t observe(const std::string& session, std::uint64_t sequence,
                          std::uint64_t count) {
        ++datagrams;
        messages += count;
        if (!last_session_.empty() && session != last_session_) ++session_changes;
        last_session_ = session;
        auto found = sessions_.find(session);
        if (found == sessions_.end()) found = sessions_.emplace(session, State{sequence, {}}).first;
        State& s = found->second;
        const std::uint64_t stop = sequence + count;
        if (sequence >= s.expected) {
            const std::uint64_t lost = sequence - s.expected;
            if (lost) {
                ++gaps;
                missing += lost;
                s.holes.push_back({s.expected, sequence});
                if (s.holes.size() > max_holes_) s.holes.erase(s.holes.begin());
            }
            s.expected = stop;
            return lost;
        }
        const std::uint64_t filled = fill(s, sequence, std::min(stop, s.expected));
        if (filled) {
            ++reordered;
            recovered += filled;
            missing -= filled;
        } else {
            ++duplicates;
        }
        s.expected = std::max(s.expected, stop);
        return 0;
    }

private:
    struct Hole { std::uint64_t lo, hi; };  // [lo, hi)
    struct State { std::uint64_t expected; std::vector<Hole> holes; };

    static std::uint64_t fill(State& s, std::uint64_t start, std::uint64_t stop) {
        std::uint64_t filled = 0;
        std::vector<Hole> kept;
        for (const Hole& h : s.holes) {
            const std::uint64_t a = std::max(h.lo, start), b = std::min(h.hi, stop);
            if (a >= b) {
                kept.push_back(h);
                continue;
            }
            filled += b - a;
            if (h.lo < a) kept.push_back({h.lo, a});
            if (b < h.hi) kept.push_back({b, h.hi});
        }
        s.holes = kept;
        return filled;
    }

    std::size_t max_holes_;
    std::map<std::string, State> sessions_;
    std::string last_session_;
};

}  // namespace arbsphere
