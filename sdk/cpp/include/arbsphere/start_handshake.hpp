// Device side of the start handshake (ARM / ARMED / START) of a feed device.
// The rig arms the device with an open-loop schedule (start_ns on the RIG timebase,
// tick_interval_ns, n_ticks, venue_id, n_assets), repeating ARM until it sees the ARMED with the
// same arm_seq; the device answers ARMED OK when it will run it, REFUSED when it cannot (and
// stays idle). Tick 0 is due at start_ns + offset on the device clock once the device has learned
// its offset (device minus rig) from clock sync, else when START arrives. An ARM or START older
// than the last accepted is ignored; a repeated ARM gets the same ARMED again.
//
// StartHandshake reads no clock: arrival times and the ARMED's device_time_ns are passed in on
// the device clock, the offset from SyncResponder::offset_ns().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "arbsphere/device_messages.hpp"
#include "arbsphere/wire.hpp"

namespace arbsphere {

// What the device can run.
struct Capabilities {
    std::uint16_t venue_id = 0;
    std::uint16_t n_assets = 1;
    std::int64_t min_interval_ns = 1'000;
    std::int64_t max_interval_ns = 60'000'000'000;
};

// An open-loop schedule as ARM carries it (start_ns on the rig timebase).
struct Schedule {
    std::uint64_t arm_seq = 0;
    std::int64_t start_ns = 0;
    std::int64_t tick_interval_ns = 0;
    std::uint64_t n_ticks = 0;
    std::uint16_t venue_id = 0;
    std::uint16_t n_assets = 0;
};

class StartHandshake {
public:
    StartHandshake(std::uint32_t device_id, Capabilities caps) noexcept
        : device_id_(device_id), caps_(caps) {}

    // Handle one ARM or START (exactly one record) that arrived at device time rx_device_ns;
    // `offset_ns` is the learned offset (device minus rig), if any. True when an ARMED must
    // be sent: write_armed() right away.
    bool on_message(Bytes msg, std::int64_t rx_device_ns, std::optional<std::int64_t> offset_ns) {
        if (!device::check_message(msg, 0).ok() || msg.size != device::Header(msg.data).length()) {
            ++ignored;
            return false;
        }
        const device::Header h(msg.data);
        if (h.device_id() != device_id_) {
            ++ignored;
            return false;
        }
        if (h.msg_type() == static_cast<std::uint8_t>(device::MsgType::START)) {
            on_start(device::Start(msg.data).arm_seq(), rx_device_ns);
            return false;
        }
        if (h.msg_type() != static_cast<std::uint8_t>(device::MsgType::ARM)) {
            ++ignored;
            return false;
        }
        const device::Arm a(msg.data);
        return on_arm(Schedule{a.arm_seq(), a.start_ns(), a.tick_interval_ns(), a.n_ticks(),
                               a.venue_id(), a.n_assets()},
                      offset_ns);
    }

    // Write the ARMED for the last ARM answered; device_time_ns read just before the write.
    Status write_armed(MutBytes out, std::int64_t device_time_ns) const noexcept {
        device::ArmedWriter w;
        const Status st = device::encode(out, 0, device_id_, &w);
        if (!st.ok()) return st;
        w.set_arm_seq(last_seq_)
            .set_status(static_cast<std::uint8_t>(answer_status_))
            .set_start_device_ns(answer_start_)
            .set_device_time_ns(device_time_ns);
        return st;
    }

    // When (device clock) tick 0 is due: START's arrival if it came first, else start_ns +
    // offset; nullopt while neither is known or nothing is accepted.
    std::optional<std::int64_t> start_due_device_ns(std::optional<std::int64_t> offset_ns) const {
        if (!accepted_ || running_) return std::nullopt;
        if (start_arrival_) return start_arrival_;
        if (!offset_ns) return std::nullopt;
        return accepted_->start_ns + *offset_ns;
    }

    // The accepted schedule starts now / ran to its end (idle again, ready for a newer ARM).
    void begin() noexcept { running_ = true; }
    void finish() noexcept {
        accepted_.reset();
        start_arrival_.reset();
        running_ = false;
        ++schedules_run;
    }
    const std::optional<Schedule>& accepted() const noexcept { return accepted_; }
    bool running() const noexcept { return running_; }

    std::uint64_t arms = 0, arms_repeated = 0, armed_ok = 0, armed_refused = 0, starts = 0,
                  ignored = 0, schedules_run = 0;

private:
    bool refuse(const Schedule& s) const noexcept {
        return s.venue_id != caps_.venue_id || s.n_assets != caps_.n_assets ||
               s.tick_interval_ns < caps_.min_interval_ns ||
               s.tick_interval_ns > caps_.max_interval_ns || s.n_ticks < 1 || running_;
    }

    bool on_arm(const Schedule& s, std::optional<std::int64_t> offset_ns) {
        ++arms;
        if (answered_ && s.arm_seq < last_seq_) {
            ++ignored;
            return false;
        }
        if (answered_ && s.arm_seq == last_seq_) {
            ++arms_repeated;
            return true;
        }
        answered_ = true;
        last_seq_ = s.arm_seq;
        if (refuse(s)) {
            ++armed_refused;
            answer_status_ = device::ArmStatus::REFUSED;
            answer_start_ = 0;
            return true;
        }
        ++armed_ok;
        accepted_ = s;
        start_arrival_.reset();
        answer_status_ = device::ArmStatus::OK;
        answer_start_ = start_due_device_ns(offset_ns).value_or(0);
        return true;
    }

    void on_start(std::uint64_t arm_seq, std::int64_t rx) noexcept {
        if (!accepted_ || arm_seq != accepted_->arm_seq || running_) {
            ++ignored;
            return;
        }
        ++starts;
        if (!start_arrival_) start_arrival_ = rx;
    }

    std::uint32_t device_id_;
    Capabilities caps_;
    std::optional<Schedule> accepted_;
    std::optional<std::int64_t> start_arrival_;
    bool running_ = false, answered_ = false;
    std::uint64_t last_seq_ = 0;
    device::ArmStatus answer_status_ = device::ArmStatus::REFUSED;
    std::int64_t answer_start_ = 0;
};

}  // namespace arbsphere
