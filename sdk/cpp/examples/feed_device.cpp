// The minimal contract example, feed side: a feed device speaking the ArbSphere device
// protocol end to end on UDP or on a serial port, built on the C++ SDK.
//
//   arbsphere_feed_device --device-id 10 --venue-id 0 --n-assets 1
//       (--udp-target HOST:PORT [--bind-host H] [--bind-port P] [--session NAME]
//        | --serial-fd FD | --serial-port PATH)
//       [--clock-offset-ns N] [--ready-path FILE] [--stats-path FILE]
//
// Idle, it sends a HEARTBEAT every 100 ms and answers the clock sync (SyncResponder) from its
// own clock. On ARM it answers ARMED (StartHandshake) and starts the open-loop schedule at the
// ARM's start_ns converted with the offset it learned, or on START: tick k is due at
// t0 + k * interval (its intended_send_ns) and quotes asset k mod n_assets; then it idles for the
// next ARM. HEARTBEATs go on during the schedule. It runs until SIGTERM / SIGINT.
#include <cstdio>
#include <memory>
#include <optional>

#include "arbsphere/clock_sync.hpp"
#include "arbsphere/device_messages.hpp"
#include "arbsphere/start_handshake.hpp"
#include "device_io.hpp"

using namespace arbsphere;
using example::Message;

namespace {

constexpr std::int64_t kHeartbeatNs = 100'000'000;

// A synthetic quote: around 100.00, 1 bp half spread, with a +8 bp episode on venue 0 for 8
// ticks in every 256 (beyond a ~3 bp fee dead-band, so a campaign's coordinator trades).
void quote(device::TickWriter& t, std::uint16_t venue, std::uint64_t k) {
    const double dev_bp = (venue == 0 && (k / 8) % 32 == 0) ? 8.0 : 0.0;
    const double mid = 100.0 * (1.0 + dev_bp * 1e-4);
    const auto px = [](double p) { return static_cast<std::int64_t>(p * device::kPriceScale); };
    t.set_bid_px(px(mid * (1.0 - 1e-4))).set_ask_px(px(mid * (1.0 + 1e-4)));
    t.set_bid_size(50).set_ask_size(50);
}

class Feed {
public:
    Feed(std::unique_ptr<example::Link> link, example::DeviceClock clock, std::uint32_t id, Capabilities caps)
        : link_(std::move(link)), clock_(clock), id_(id), sync_(id), start_(id, caps) {}

    void run() {
        std::int64_t next_hb = clock_.now();
        while (!example::g_stop) {
            const std::optional<std::int64_t> due = next_due();
            example::wait_readable(link_->fd(), clock_, std::min(next_hb, due.value_or(next_hb)));
            link_->receive(clock_, [&](Bytes m, std::int64_t rx) { on_message(m, rx); });
            send_due_ticks();
            if (clock_.now() >= next_hb) {
                heartbeat();
                next_hb += kHeartbeatNs;
            }
        }
    }

    void write_stats(const std::string& path) const {
        if (path.empty()) return;
        FILE* f = std::fopen(path.c_str(), "w");
        if (f == nullptr) return;
        std::fprintf(f,
                     "{\"ticks_sent\": %llu, \"heartbeats_sent\": %llu, \"schedules_run\": %llu, "
                     "\"armed_ok\": %llu, \"armed_refused\": %llu, \"sync_exchanges\": %llu, "
                     "\"delay_reqs_sent\": %llu, \"exit_code\": 0}\n",
                     ull(ticks_sent_), ull(heartbeats_), ull(start_.schedules_run), ull(start_.armed_ok),
                     ull(start_.armed_refused), ull(sync_.sync_exchanges), ull(sync_.delay_reqs_sent));
        std::fclose(f);
    }

private:
    static unsigned long long ull(std::uint64_t v) { return v; }

    // When the next tick is due on the device clock (or the schedule's start), if any.
    std::optional<std::int64_t> next_due() const {
        if (start_.running()) return t0_ + static_cast<std::int64_t>(k_) * start_.accepted()->tick_interval_ns;
        return start_.start_due_device_ns(sync_.offset_ns());
    }

    void on_message(Bytes m, std::int64_t rx) {
        if (m.size < device::kHeaderSize) return;
        const auto type = static_cast<device::MsgType>(m.data[0]);
        Message out(64);
        MutBytes buf{out.data(), out.size()};
        if (type == device::MsgType::ARM || type == device::MsgType::START) {
            if (start_.on_message(m, rx, sync_.offset_ns()) && start_.write_armed(buf, clock_.now()).ok()) {
                out.resize(device::Armed::kSize);
                link_->send({out});
            }
        } else if (const auto due = sync_.on_message(m, rx)) {
            sync_.write_delay_req(buf, *due, clock_.now());  // t3 read just before the write
            out.resize(device::DelayReq::kSize);
            link_->send({out});
        }
    }

    void send_due_ticks() {
        if (!start_.running()) {
            const std::optional<std::int64_t> t0 = start_.start_due_device_ns(sync_.offset_ns());
            if (!t0 || clock_.now() < *t0) return;
            start_.begin();
            t0_ = *t0;
            k_ = 0;
        }
        const Schedule s = *start_.accepted();
        while (start_.running() && clock_.now() >= t0_ + static_cast<std::int64_t>(k_) * s.tick_interval_ns) {
            Message tick(device::Tick::kSize);
            device::TickWriter t;
            device::encode(MutBytes{tick.data(), tick.size()}, 0, id_, &t);
            t.set_venue_id(s.venue_id)
                .set_asset_id(static_cast<std::uint16_t>(k_ % s.n_assets))
                .set_device_seq(k_)
                .set_intended_send_ns(t0_ + static_cast<std::int64_t>(k_) * s.tick_interval_ns);
            quote(t, s.venue_id, k_);
            t.set_send_ns(clock_.now());
            link_->send({tick});
            ++ticks_sent_;
            if (++k_ == s.n_ticks) start_.finish();  // idle again, ready for the next ARM
        }
    }

    void heartbeat() {
        Message hb(device::Heartbeat::kSize);
        device::HeartbeatWriter w;
        device::encode(MutBytes{hb.data(), hb.size()}, 0, id_, &w);
        w.set_device_seq(start_.running() ? k_ : 0).set_device_time_ns(clock_.now());
        link_->send({hb});
        ++heartbeats_;
    }

    std::unique_ptr<example::Link> link_;
    example::DeviceClock clock_;
    std::uint32_t id_;
    SyncResponder sync_;
    StartHandshake start_;
    std::int64_t t0_ = 0;
    std::uint64_t k_ = 0;
    std::uint64_t ticks_sent_ = 0, heartbeats_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    const example::Options o(argc, argv);
    example::install_stop_handlers();
    auto link = example::open_link(o, "FEED");
    example::write_ready(o, *link);
    Capabilities caps;
    caps.venue_id = static_cast<std::uint16_t>(o.num("--venue-id"));
    caps.n_assets = static_cast<std::uint16_t>(o.num("--n-assets", "1"));
    Feed feed(std::move(link), example::DeviceClock{o.num("--clock-offset-ns", "0")},
              static_cast<std::uint32_t>(o.num("--device-id")), caps);
    feed.run();
    feed.write_stats(o.get("--stats-path", ""));
    return 0;
}
