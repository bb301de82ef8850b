// The SDK's wire code against the project's vectors (firmware_interfaces/vectors/*.json):
// CRC-32C check values, COBS edge cases, one serial frame per message type (encoded from the
// vector's field values, decoded back, deframed from a noisy stream) and UDP datagrams (packed,
// unpacked, malformed variants), plus sequence gap tracking.
// Usage: test_wire_vectors VECTORS_DIR
#include <string>
#include <vector>

#include "arbsphere/crc32c.hpp"
#include "arbsphere/datagram.hpp"
#include "arbsphere/serial_frame.hpp"
#include "check.hpp"
#include "mini_json.hpp"
#include "vector_fields.hpp"

using namespace arbsphere;
using check::from_hex;
using check::to_hex;

namespace {

std::string dir;

void test_crc32c() {
    const mini_json::Value doc = mini_json::load(dir + "/crc32c.json");
    for (const auto& v : doc["vectors"].items) {
        const auto data = from_hex(v["data_hex"].text);
        CHECK_EQ(crc32c(data.data(), data.size()), v["crc32c"].hex(), v["name"].text);
    }
}

void test_cobs() {
    const mini_json::Value doc = mini_json::load(dir + "/cobs.json");
    for (const auto& v : doc["vectors"].items) {
        const auto decoded = from_hex(v["decoded_hex"].text);
        std::vector<std::uint8_t> buf(cobs_max_encoded(decoded.size()));
        std::size_t n = 0;
        CHECK(cobs_encode(Bytes{decoded.data(), decoded.size()}, MutBytes{buf.data(), buf.size()}, &n).ok(),
              v["name"].text);
        CHECK(to_hex(buf.data(), n) == v["encoded_hex"].text, "encode " + v["name"].text);
        const auto encoded = from_hex(v["encoded_hex"].text);
        std::vector<std::uint8_t> back(encoded.size());
        CHECK(cobs_decode(Bytes{encoded.data(), encoded.size()}, MutBytes{back.data(), back.size()}, &n).ok(),
              v["name"].text);
        CHECK(to_hex(back.data(), n) == v["decoded_hex"].text, "decode " + v["name"].text);
    }
    const std::uint8_t zero_inside[] = {0x03, 0x11, 0x00};
    const std::uint8_t past_end[] = {0x05, 0x11};
    std::uint8_t out[8];
    std::size_t n = 0;
    const Status a = cobs_decode(Bytes{zero_inside, 3}, MutBytes{out, 8}, &n);
    const Status b = cobs_decode(Bytes{past_end, 2}, MutBytes{out, 8}, &n);
    CHECK(a.problem == Problem::cobs && a.offset == 2, "a zero inside a COBS run");
    CHECK(b.problem == Problem::cobs && b.offset == 0, "a code running past the end");
}

// The message bytes of vector `v` built from its field values with the generated writers.
std::vector<std::uint8_t> build_message(const mini_json::Value& v) {
    std::vector<std::uint8_t> msg;
    const auto type = static_cast<std::uint8_t>(v["msg_type"].u64());
    const bool known = vector_fields::with_type(type, [&](auto view, auto writer) {
        using View = decltype(view);
        msg.assign(View::kSize, 0xEE);  // encode must zero the padding
        CHECK(device::encode(MutBytes{msg.data(), msg.size()}, 0,
                             static_cast<std::uint32_t>(v["device_id"].u64()), &writer).ok(),
              v["name"].text);
        for (const auto& [name, value] : v["fields"].members) {
            const FieldInfo* f = vector_fields::find<View>(name);
            CHECK(f != nullptr, "field " + name);
            if (f != nullptr) vector_fields::store(msg.data(), *f, value);
        }
    });
    CHECK(known, v["name"].text);
    return msg;
}

void check_fields(const mini_json::Value& v, const std::uint8_t* msg) {
    const auto type = static_cast<std::uint8_t>(v["msg_type"].u64());
    vector_fields::with_type(type, [&](auto view, auto) {
        using View = decltype(view);
        const Status st = device::decode(Bytes{msg, View::kSize}, 0, &view);
        CHECK(st.ok(), v["name"].text + " decodes: " + st.name());
        for (const auto& [name, value] : v["fields"].members) {
            const FieldInfo* f = vector_fields::find<View>(name);
            if (f != nullptr) CHECK(vector_fields::text(msg, *f) == value.text, v["name"].text + "." + name);
        }
    });
}

void test_serial_frames() {
    const auto vectors = mini_json::load(dir + "/serial_frames.json")["vectors"].items;
    std::vector<std::uint8_t> stream = {0x05, 0x11, 0x00};  // line noise: a bad frame first
    for (const auto& v : vectors) {
        const auto msg = build_message(v);
        CHECK(to_hex(msg.data(), msg.size()) == v["message_hex"].text, "message " + v["name"].text);
        CHECK_EQ(crc32c(msg.data(), msg.size()), v["crc32c"].hex(), v["name"].text);
        std::vector<std::uint8_t> frame(kMaxEncodedFrame + 1);
        std::size_t n = 0;
        CHECK(encode_frame(Bytes{msg.data(), msg.size()}, MutBytes{frame.data(), frame.size()}, &n).ok(),
              v["name"].text);
        CHECK(to_hex(frame.data(), n) == v["frame_hex"].text, "frame " + v["name"].text);
        std::vector<std::uint8_t> payload(kMaxPayload + kCrcSize);
        std::size_t got = 0;
        CHECK(decode_frame(Bytes{frame.data(), n - 1}, MutBytes{payload.data(), payload.size()}, &got).ok(),
              v["name"].text);
        CHECK_EQ(got, msg.size(), v["name"].text);
        check_fields(v, payload.data());
        frame[n / 2] = static_cast<std::uint8_t>(frame[n / 2] == 1 ? 2 : 1);  // corrupt one byte
        const Status bad = decode_frame(Bytes{frame.data(), n - 1}, MutBytes{payload.data(), payload.size()}, &got);
        CHECK(bad.problem == Problem::crc || bad.problem == Problem::cobs, v["name"].text + " corrupted");
        const auto good = from_hex(v["frame_hex"].text);
        stream.insert(stream.end(), good.begin(), good.end());
    }
    FrameDecoder dec;
    std::vector<std::string> seen;
    for (std::size_t i = 0; i < stream.size(); ++i) {  // one byte at a time
        dec.feed(Bytes{stream.data() + i, 1}, [&](Bytes p) { seen.push_back(to_hex(p.data, p.size)); });
    }
    CHECK_EQ(seen.size(), vectors.size(), "payloads deframed from the stream");
    for (std::size_t i = 0; i < seen.size() && i < vectors.size(); ++i) {
        CHECK(seen[i] == vectors[i]["message_hex"].text, "stream payload " + std::to_string(i));
    }
    CHECK_EQ(dec.cobs_errors, 1u, "the noise frame");
    CHECK(dec.last_error.problem == Problem::cobs && dec.last_error.offset == 0, "noise offset");
    const std::uint8_t empty[] = {0, 0};
    const std::uint8_t short_frame[] = {0x02, 0x11, 0x00};
    dec.feed(Bytes{empty, 2}, [](Bytes) {});
    dec.feed(Bytes{short_frame, 3}, [](Bytes) {});
    CHECK_EQ(dec.empty_frames, 2u, "empty frames");
    CHECK_EQ(dec.short_frames, 1u, "a frame shorter than its CRC");
    std::vector<std::uint8_t> flood(kMaxEncodedFrame + 10, 0x01);
    flood.push_back(0);
    dec.feed(Bytes{flood.data(), flood.size()}, [](Bytes) {});
    CHECK_EQ(dec.oversize, 1u, "a run without delimiter longer than any frame");
}

void test_datagrams() {
    const mini_json::Value doc = mini_json::load(dir + "/udp_datagram.json");
    for (const auto& v : doc["vectors"].items) {
        const auto& ticks = v["ticks"].items;
        std::vector<std::uint8_t> dg(device::kDatagramHeaderSize + ticks.size() * device::Tick::kSize);
        CHECK(write_datagram_header(MutBytes{dg.data(), dg.size()}, v["session"].text,
                                    static_cast<std::uint16_t>(ticks.size()), v["sequence"].u64()).ok(),
              v["name"].text);
        for (std::size_t i = 0; i < ticks.size(); ++i) {
            device::TickWriter w;
            device::encode(MutBytes{dg.data(), dg.size()}, device::kDatagramHeaderSize + i * device::Tick::kSize,
                           static_cast<std::uint32_t>(v["device_id"].u64()), &w);
            for (const auto& [name, value] : ticks[i].members) {
                vector_fields::store(w.data(), *vector_fields::find<device::Tick>(name), value);
            }
        }
        CHECK(to_hex(dg.data(), dg.size()) == v["datagram_hex"].text, "datagram " + v["name"].text);
        device::DatagramHeader h;
        std::size_t n = 0;
        const Status st = unpack_datagram(Bytes{dg.data(), dg.size()}, &h, [&](Bytes m) {
            device::Tick t;
            CHECK(device::decode(m, 0, &t).ok(), "tick in datagram");
            CHECK_EQ(t.device_seq(), ticks[n]["device_seq"].u64(), v["name"].text);
            ++n;
        });
        CHECK(st.ok(), v["name"].text);
        CHECK_EQ(n, ticks.size(), v["name"].text);
        CHECK_EQ(h.sequence(), v["sequence"].u64(), v["name"].text);
        CHECK(datagram_session(h) == v["session"].text, v["name"].text);
        if (ticks.size() != 2) continue;
        auto cut = dg;  // the last message loses its last byte
        cut.pop_back();
        const Status c = unpack_datagram(Bytes{cut.data(), cut.size()}, &h, [](Bytes) {});
        CHECK(c.problem == Problem::bad_length && c.offset == 24 + 72 + 2, "truncated datagram");
        auto extra = dg;
        extra.push_back(0);
        const Status e = unpack_datagram(Bytes{extra.data(), extra.size()}, &h, [](Bytes) {});
        CHECK(e.problem == Problem::trailing_bytes && e.offset == dg.size(), "trailing byte");
        auto fewer = std::vector<std::uint8_t>(dg.begin(), dg.begin() + 24 + 72);
        const Status f = unpack_datagram(Bytes{fewer.data(), fewer.size()}, &h, [](Bytes) {});
        CHECK(f.problem == Problem::count_mismatch && f.offset == 10, "count says more");
    }
}

void test_gap_tracker() {
    GapTracker g;
    CHECK_EQ(g.observe("A", 10, 2), 0u, "first datagram starts the session");
    CHECK_EQ(g.observe("A", 15, 1), 3u, "12..14 missing");
    CHECK_EQ(g.observe("A", 12, 2), 0u, "late 12..13");
    CHECK_EQ(g.observe("A", 12, 1), 0u, "12 again");
    CHECK_EQ(g.observe("B", 0, 1), 0u, "another session");
    CHECK_EQ(g.gaps, 1u, "gaps");
    CHECK_EQ(g.missing, 1u, "14 still missing");
    CHECK_EQ(g.recovered, 2u, "recovered");
    CHECK_EQ(g.reordered, 1u, "reordered");
    CHECK_EQ(g.duplicates, 1u, "duplicates");
    CHECK_EQ(g.session_changes, 1u, "session changes");
    CHECK_EQ(g.messages, 7u, "messages");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    test_crc32c();
    test_cobs();
    test_serial_frames();
    test_datagrams();
    test_gap_tracker();
    return check::finish("test_wire_vectors");
}
