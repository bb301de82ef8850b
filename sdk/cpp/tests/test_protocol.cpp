// The SDK's protocol state machines and the plan replica: the clock-sync responder and the
// start handshake on fixed exchanges (expected values worked out by hand in the comments), and
// the plan hash and delta merge against arbsphere/plan/plan_vectors.json (made by
// arbsphere.plan.vectors from the rig's own merge kernel and digest).
// Usage: test_protocol PLAN_VECTORS_JSON
#include <array>
#include <string>
#include <vector>

#include "arbsphere/clock_sync.hpp"
#include "arbsphere/plan.hpp"
#include "arbsphere/start_handshake.hpp"
#include "check.hpp"
#include "mini_json.hpp"

using namespace arbsphere;

namespace {

constexpr std::uint32_t kDevice = 7;

// One rig -> device message of Writer's type, its fields set by `set`.
template <class Writer, class Set> std::vector<std::uint8_t> msg(Set&& set, std::uint32_t device = kDevice) {
    std::vector<std::uint8_t> out(Writer::kSize);
    Writer w;
    device::encode(MutBytes{out.data(), out.size()}, 0, device, &w);
    set(w);
    return out;
}

Bytes bytes(const std::vector<std::uint8_t>& v) { return Bytes{v.data(), v.size()}; }

auto sync(std::uint64_t seq) {
    return msg<device::SyncWriter>([&](device::SyncWriter& w) { w.set_sync_seq(seq).set_origin_ns(1); });
}
auto follow_up(std::uint64_t seq, std::int64_t t1) {
    return msg<device::FollowUpWriter>([&](device::FollowUpWriter& w) { w.set_sync_seq(seq).set_t1_ns(t1); });
}
auto delay_resp(std::uint64_t seq, std::int64_t t4) {
    return msg<device::DelayRespWriter>([&](device::DelayRespWriter& w) { w.set_sync_seq(seq).set_t4_ns(t4); });
}

void test_sync_responder() {
    SyncResponder r(kDevice);
    std::array<std::uint8_t, 64> out{};
    const auto due = r.on_message(bytes(sync(1)), 1000);
    CHECK(due.has_value(), "SYNC 1 is answered");
    CHECK(r.write_delay_req(MutBytes{out.data(), out.size()}, *due, 1100).ok(), "DELAY_REQ written");
    device::DelayReq req;
    CHECK(device::decode(Bytes{out.data(), out.size()}, 0, &req).ok(), "DELAY_REQ decodes");
    CHECK_EQ(req.sync_seq(), 1u, "sync_seq");
    CHECK_EQ(req.t2_ns(), 1000, "t2 = SYNC arrival");
    CHECK_EQ(req.t3_ns(), 1100, "t3 = send time");
    CHECK_EQ(req.device_id(), kDevice, "device id");
    CHECK(!r.offset_ns().has_value(), "no offset before the exchange completes");
    r.on_message(bytes(follow_up(1, 500)), 1200);
    r.on_message(bytes(delay_resp(1, 700)), 1300);
    // offset = ((t2 - t1) - (t4 - t3)) / 2 = ((1000 - 500) - (700 - 1100)) / 2 = 450
    CHECK(r.offset_ns().has_value() && *r.offset_ns() == 450, "offset of exchange 1");
    CHECK_EQ(r.best_exchange()->rtt_ns(), 100, "rtt = (700 - 500) - (1100 - 1000)");
    CHECK(!r.on_message(bytes(sync(1)), 1400), "SYNC 1 again");
    CHECK_EQ(r.rejects(SyncReject::duplicate_sync), 1u, "duplicate_sync");
    CHECK(!r.on_message(bytes(msg<device::SyncWriter>([](device::SyncWriter& w) { w.set_sync_seq(9); }, 8)), 1500),
          "SYNC for another device");
    CHECK_EQ(r.rejects(SyncReject::wrong_device), 1u, "wrong_device");
    CHECK(!r.on_message(bytes(msg<device::TickWriter>([](device::TickWriter&) {})), 1500), "a TICK");
    CHECK_EQ(r.rejects(SyncReject::unexpected_type), 1u, "unexpected_type");
    r.on_message(bytes(follow_up(1, 500)), 1600);
    CHECK_EQ(r.rejects(SyncReject::duplicate_follow_up), 1u, "duplicate_follow_up");
    r.on_message(bytes(delay_resp(5, 1)), 1600);
    CHECK_EQ(r.rejects(SyncReject::unmatched_delay_resp), 1u, "unmatched_delay_resp");
    auto cut = sync(2);
    cut.pop_back();
    CHECK(!r.on_message(bytes(cut), 1700), "a short SYNC");
    CHECK_EQ(r.rejects(SyncReject::malformed_message), 1u, "malformed_message");
    // exchange 2: rtt = (1580 - 1560) - (2010 - 2000) = 10 < 100, offset ((2000 - 1560) - (1580 - 2010)) / 2 = 435
    const auto due2 = r.on_message(bytes(sync(2)), 2000);
    CHECK(due2.has_value(), "SYNC 2");
    r.write_delay_req(MutBytes{out.data(), out.size()}, *due2, 2010);
    r.on_message(bytes(follow_up(2, 1560)), 2020);
    r.on_message(bytes(delay_resp(2, 1580)), 2030);
    CHECK(*r.offset_ns() == 435, "the shortest round trip's offset");
    CHECK_EQ(r.sync_exchanges, 2u, "complete exchanges");
    // a new rig session: sync_seq 1 after more than a second without SYNC
    CHECK(r.on_message(bytes(sync(1)), 2000 + 1'500'000'000).has_value(), "SYNC 1 of a new session");
    CHECK_EQ(r.sync_restarts, 1u, "sync_restarts");
    CHECK(!r.offset_ns().has_value(), "the old session's offset is forgotten");
}

auto arm(std::uint64_t seq, std::uint16_t venue) {
    return msg<device::ArmWriter>([&](device::ArmWriter& w) {
        w.set_arm_seq(seq).set_start_ns(10'000).set_tick_interval_ns(1'000).set_n_ticks(3)
            .set_venue_id(venue).set_n_assets(2);
    });
}
auto start(std::uint64_t seq) {
    return msg<device::StartWriter>([&](device::StartWriter& w) { w.set_arm_seq(seq).set_start_ns(10'000); });
}

device::Armed armed_of(const StartHandshake& h, std::array<std::uint8_t, 64>& out, std::int64_t now) {
    h.write_armed(MutBytes{out.data(), out.size()}, now);
    device::Armed a;
    CHECK(device::decode(Bytes{out.data(), out.size()}, 0, &a).ok(), "ARMED decodes");
    return a;
}

void test_start_handshake() {
    std::array<std::uint8_t, 64> out{};
    StartHandshake h(kDevice, Capabilities{0, 2});
    CHECK(h.on_message(bytes(arm(5, 0)), 900, 450), "ARM 5 is answered");
    device::Armed a = armed_of(h, out, 777);
    CHECK_EQ(a.arm_seq(), 5u, "arm_seq");
    CHECK_EQ(a.status(), static_cast<std::uint8_t>(device::ArmStatus::OK), "OK");
    CHECK_EQ(a.start_device_ns(), 10'450, "start_ns + offset on the device clock");
    CHECK_EQ(a.device_time_ns(), 777, "device_time_ns");
    CHECK_EQ(*h.start_due_device_ns(450), 10'450, "tick 0 due");
    CHECK(h.on_message(bytes(arm(5, 0)), 950, 450), "a repeated ARM is answered again");
    CHECK_EQ(h.arms_repeated, 1u, "arms_repeated");
    CHECK(!h.on_message(bytes(arm(4, 0)), 960, 450), "a stale ARM");
    CHECK(h.on_message(bytes(arm(6, 1)), 970, 450), "ARM for another venue is answered");
    CHECK_EQ(armed_of(h, out, 980).status(), static_cast<std::uint8_t>(device::ArmStatus::REFUSED),
             "REFUSED");
    CHECK_EQ(h.accepted()->arm_seq, 5u, "a refusal keeps the accepted schedule");

    StartHandshake g(kDevice, Capabilities{0, 2});
    CHECK(g.on_message(bytes(arm(1, 0)), 100, std::nullopt), "ARM without an offset");
    CHECK_EQ(armed_of(g, out, 101).start_device_ns(), 0, "0: starts on START");
    CHECK(!g.start_due_device_ns(std::nullopt).has_value(), "not due before START");
    g.on_message(bytes(start(2)), 4000, std::nullopt);
    CHECK(!g.start_due_device_ns(std::nullopt).has_value(), "START of an unknown arm_seq");
    g.on_message(bytes(start(1)), 5000, std::nullopt);
    CHECK_EQ(*g.start_due_device_ns(std::nullopt), 5000, "due at START's arrival");
    g.begin();
    g.on_message(bytes(start(1)), 6000, std::nullopt);
    CHECK_EQ(g.starts, 1u, "START while running is ignored");
    g.finish();
    CHECK(!g.accepted().has_value() && !g.running(), "idle again after the schedule");
    CHECK(g.on_message(bytes(arm(2, 0)), 7000, 10), "the next ARM");
    CHECK_EQ(*g.start_due_device_ns(10), 10'010, "due by offset");
}

void test_plan(const std::string& path) {
    const mini_json::Value doc = mini_json::load(path);
    for (const auto& v : doc["hashes"].items) {
        std::vector<std::int64_t> cells;
        for (const auto& c : v["cells"].items) cells.push_back(c.i64());
        CHECK_EQ(plan_hash(cells), v["plan_hash"].hex(), v["name"].text);
    }
    const auto& rep = doc["replica"];
    PlanReplica replica(rep["n_venues"].u64(), rep["n_assets"].u64(), rep["n_senders"].u64());
    for (const auto& step : rep["steps"].items) {
        const auto raw = check::from_hex(step["message_hex"].text);
        bool diverged = false;
        const Status st = replica.apply(Bytes{raw.data(), raw.size()}, &diverged);
        const std::string& name = step["name"].text;
        CHECK(st.ok(), name + ": " + st.name());
        const auto& plan = replica.merger().plan();
        for (std::size_t i = 0; i < plan.size(); ++i) {
            CHECK_EQ(plan[i], step["plan"].items[i].i64(), name + " cell " + std::to_string(i));
        }
        CHECK_EQ(replica.hash(), step["plan_hash"].hex(), name);
        CHECK(diverged == step["diverged"].flag, name + ": divergence");
        CHECK_EQ(replica.merger().applied, step["counters"]["applied"].u64(), name);
        CHECK_EQ(replica.merger().duplicates, step["counters"]["duplicates"].u64(), name);
        CHECK_EQ(replica.merger().rejected, step["counters"]["rejected"].u64(), name);
    }
    // the snapshot: the plan after the next-to-last delta; that delta again is a duplicate
    const auto& snap = rep["snapshot"];
    const auto raw = check::from_hex(snap["message_hex"].text);
    bool matches = false;
    CHECK(replica.restore(Bytes{raw.data(), raw.size()}, &matches).ok(), "snapshot decodes");
    CHECK(matches, "the restored plan has the snapshot's hash");
    CHECK_EQ(replica.hash(), snap["plan_hash"].hex(), "snapshot hash");
    for (std::size_t i = 0; i < snap["plan"].items.size(); ++i) {
        CHECK_EQ(replica.merger().plan()[i], snap["plan"].items[i].i64(), "restored cell");
    }
    const auto& again = rep["steps"].items[rep["steps"].items.size() - 2];
    const auto redo = check::from_hex(again["message_hex"].text);
    const std::uint64_t dups = replica.merger().duplicates;
    bool diverged_again = true;
    replica.apply(Bytes{redo.data(), redo.size()}, &diverged_again);
    CHECK(!diverged_again, "the re-delivered delta's hash matches the restored plan");
    CHECK_EQ(replica.merger().duplicates - dups, 2u, "its two legs are duplicates");
    auto short_snap = raw;
    short_snap.resize(raw.size() - 8);
    CHECK(replica.restore(Bytes{short_snap.data(), short_snap.size()}, &matches).problem == Problem::bad_length,
          "a snapshot shorter than its payload_len");
    auto bad = check::from_hex(rep["steps"].items[0]["message_hex"].text);
    bad[0] ^= 1;
    bool diverged = false;
    const Status st = replica.apply(Bytes{bad.data(), bad.size()}, &diverged);
    CHECK(st.problem == Problem::bad_magic && st.offset == 0, "bad magic is reported");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PLAN_VECTORS_JSON\n", argv[0]);
        return 2;
    }
    test_sync_responder();
    test_start_handshake();
    test_plan(argv[1]);
    return check::finish("test_protocol");
}
