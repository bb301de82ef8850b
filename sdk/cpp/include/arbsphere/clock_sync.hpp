// Device side of the clock-sync exchange (IEEE 1588 two-step; the rig is the time master).
// The rig sends SYNC (sync_seq) and FOLLOW_UP (its precise send time t1); the device stamps t2
// (its own clock) when SYNC arrives and answers at once with DELAY_REQ carrying t2 and t3 (its
// clock, read as the last thing before the write); the rig answers DELAY_RESP with t4. The
// device never steps its clock: it only learns offset = ((t2-t1)-(t4-t3))/2 (device minus
// rig) of the shortest-round-trip exchange, which the start handshake uses.
//
// SyncResponder reads no clock: the caller passes arrival times and t3 on the device clock.
// sync_seq 1 after a second without SYNC starts a new rig session (earlier exchanges are
// forgotten: a device outlives a run). Bad input is never answered, only counted by reason.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "arbsphere/device_messages.hpp"
#include "arbsphere/wire.hpp"

namespace arbsphere {

enum class SyncReject : std::uint8_t {
    malformed_message, unknown_type, unexpected_type, wrong_device, duplicate_sync,
    out_of_order_sync, unmatched_follow_up, duplicate_follow_up, unmatched_delay_resp,
    duplicate_delay_resp, count_  // number of reasons
};

// A DELAY_REQ owed: the SYNC's sequence and its arrival t2 (device clock).
struct DelayReqDue {
    std::uint64_t sync_seq = 0;
    std::int64_t t2_ns = 0;
};

struct SyncExchange {
    std::uint64_t sync_seq = 0;
    std::int64_t t1_ns = 0, t2_ns = 0, t3_ns = 0, t4_ns = 0;
    // Integer arithmetic: exact whatever the clocks' epochs (a double would round large ones).
    std::int64_t offset_ns() const noexcept { return ((t2_ns - t1_ns) - (t4_ns - t3_ns)) / 2; }
    std::int64_t rtt_ns() const noexcept { return (t4_ns - t1_ns) - (t3_ns - t2_ns); }
};

class SyncResponder {
public:
    static constexpr std::int64_t kSessionGapNs = 1'000'000'000;
    static constexpr std::size_t kHistory = 64;

    explicit SyncResponder(std::uint32_t device_id) noexcept : device_id_(device_id) {}

    // Handle one rig -> device message (exactly one record) that arrived at device time
    // rx_device_ns. For a SYNC to answer: the answer owed; write_delay_req() it right away.
    std::optional<DelayReqDue> on_message(Bytes msg, std::int64_t rx_device_ns) noexcept {
        const Status st = device::check_message(msg, 0);
        if (!st.ok()) {
            const bool unknown = st.problem == Problem::unknown_type ||
                                 st.problem == Problem::reserved_type;
            return reject(unknown ? SyncReject::unknown_type : SyncReject::malformed_message);
        }
        const device::Header h(msg.data);
        if (msg.size != h.length()) return reject(SyncReject::malformed_message);
        const auto type = static_cast<device::MsgType>(h.msg_type());
        if (type != device::MsgType::SYNC && type != device::MsgType::FOLLOW_UP &&
            type != device::MsgType::DELAY_RESP) {
            return reject(SyncReject::unexpected_type);
        }
        if (h.device_id() != device_id_) return reject(SyncReject::wrong_device);
        if (type == device::MsgType::SYNC) {
            return on_sync(device::Sync(msg.data).sync_seq(), rx_device_ns);
        }
        if (type == device::MsgType::FOLLOW_UP) {
            const device::FollowUp f(msg.data);
            ++follow_ups;
            fill(f.sync_seq(), f.t1_ns(), true);
        } else {
            const device::DelayResp r(msg.data);
            ++delay_resps;
            fill(r.sync_seq(), r.t4_ns(), false);
        }
        return std::nullopt;
    }

    // Write the DELAY_REQ owed for a SYNC, with t3 = now on the device clock (read it as the
    // last thing before the write).
    Status write_delay_req(MutBytes out, const DelayReqDue& due, std::int64_t t3_device_ns) noexcept {
        device::DelayReqWriter w;
        const Status st = device::encode(out, 0, device_id_, &w);
        if (!st.ok()) return st;
        w.set_sync_seq(due.sync_seq).set_t2_ns(due.t2_ns).set_t3_ns(t3_device_ns);
        Entry& e = slots_[due.sync_seq % kHistory];
        if (e.used && e.ex.sync_seq == due.sync_seq && !(e.have & kT3)) {
            e.ex.t3_ns = t3_device_ns;
            e.have |= kT3;
            complete(e);
        }
        ++delay_reqs_sent;
        return st;
    }

    // Device minus rig (ns) of the shortest-round-trip complete exchange of this session.
    std::optional<std::int64_t> offset_ns() const noexcept {
        if (!best_) return std::nullopt;
        return best_->offset_ns();
    }
    const std::optional<SyncExchange>& best_exchange() const noexcept { return best_; }
    const std::optional<SyncExchange>& last_exchange() const noexcept { return last_; }
    std::uint64_t rejects(SyncReject r) const noexcept {
        return rejects_[static_cast<std::size_t>(r)];
    }

    std::uint64_t syncs_received = 0, delay_reqs_sent = 0, follow_ups = 0, delay_resps = 0,
                  sync_exchanges = 0, sync_restarts = 0;

private:
    static constexpr unsigned kT1 = 1, kT2 = 2, kT3 = 4, kT4 = 8;
    struct Entry {
        bool used = false;
        unsigned have = 0;
        SyncExchange ex;
    };

    std::nullopt_t reject(SyncReject r) noexcept {
        ++rejects_[static_cast<std::size_t>(r)];
        return std::nullopt;
    }

    std::optional<DelayReqDue> on_sync(std::uint64_t seq, std::int64_t rx) noexcept {
        ++syncs_received;
        const bool quiet = have_rx_ && rx - last_rx_ >= kSessionGapNs;
        last_rx_ = rx;
        have_rx_ = true;
        if (seq == 1 && answered_ && quiet) {
            ++sync_restarts;
            slots_ = {};
            best_.reset();
            last_.reset();
            answered_ = false;
        }
        if (answered_ && seq <= last_answered_) {
            return reject(seq == last_answered_ ? SyncReject::duplicate_sync
                                                : SyncReject::out_of_order_sync);
        }
        answered_ = true;
        last_answered_ = seq;
        Entry& e = slots_[seq % kHistory];
        e = Entry{true, kT2, SyncExchange{}};
        e.ex.sync_seq = seq;
        e.ex.t2_ns = rx;
        return DelayReqDue{seq, rx};
    }

    void fill(std::uint64_t seq, std::int64_t value, bool is_t1) noexcept {
        Entry& e = slots_[seq % kHistory];
        if (!e.used || e.ex.sync_seq != seq) {
            reject(is_t1 ? SyncReject::unmatched_follow_up : SyncReject::unmatched_delay_resp);
            return;
        }
        const unsigned bit = is_t1 ? kT1 : kT4;
        if (e.have & bit) {
            reject(is_t1 ? SyncReject::duplicate_follow_up : SyncReject::duplicate_delay_resp);
            return;
        }
        (is_t1 ? e.ex.t1_ns : e.ex.t4_ns) = value;
        e.have |= bit;
        complete(e);
    }

    void complete(const Entry& e) noexcept {
        if (e.have != (kT1 | kT2 | kT3 | kT4)) return;
        ++sync_exchanges;
        last_ = e.ex;
        if (!best_ || e.ex.rtt_ns() < best_->rtt_ns()) best_ = e.ex;
    }

    std::uint32_t device_id_;
    std::array<Entry, kHistory> slots_{};
    std::array<std::uint64_t, static_cast<std::size_t>(SyncReject::count_)> rejects_{};
    std::optional<SyncExchange> best_, last_;
    std::uint64_t last_answered_ = 0;
    bool answered_ = false, have_rx_ = false;
    std::int64_t last_rx_ = 0;
};

}  // namespace arbsphere
