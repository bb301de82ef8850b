// The minimal contract example, broker side: a broker device on UDP or a serial port, built on
// the C++ SDK.
//
//   arbsphere_broker_device --device-id 200
//       (--bind-host 127.0.0.1 --bind-port 0 | --serial-fd FD | --serial-port PATH)
//       [--clock-offset-ns N] [--ready-path FILE] [--stats-path FILE]
//
// Every valid ORDER (side +-1, size > 0) is filled in full at its limit price: one ACK with
// status FILL, the order's id, device_rx_ns = when the datagram arrived and device_tx_ns = just
// before the reply, both on the device's own clock. The ACKs of one datagram go back in one
// datagram to its sender (on serial: one frame each); invalid orders are counted and not answered. Clock sync is answered
// on the same socket, each DELAY_REQ in its own datagram after the ACKs. Runs until SIGTERM.
#include <cstdio>
#include <vector>

#include "arbsphere/clock_sync.hpp"
#include "arbsphere/device_messages.hpp"
#include "device_io.hpp"

using namespace arbsphere;
using example::Message;

int main(int argc, char** argv) {
    const example::Options o(argc, argv);
    example::install_stop_handlers();
    const example::DeviceClock clock{o.num("--clock-offset-ns", "0")};
    const auto id = static_cast<std::uint32_t>(o.num("--device-id", "200"));
    const auto link = example::open_link(o, "BROKER");
    example::write_ready(o, *link);
    SyncResponder sync(id);
    unsigned long long orders = 0, acks = 0, invalid = 0;
    while (!example::g_stop) {
        example::wait_readable(link->fd(), clock, clock.now() + 100'000'000);
        std::vector<Message> replies;
        std::vector<DelayReqDue> delay_reqs;
        link->receive(clock, [&](Bytes m, std::int64_t rx) {
            device::Order order;
            if (!device::decode(m, 0, &order).ok()) {
                if (const auto due = sync.on_message(m, rx)) delay_reqs.push_back(*due);
                return;
            }
            ++orders;
            if ((order.side() != 1 && order.side() != -1) || order.size_lots() <= 0) {
                ++invalid;
                return;
            }
            Message ack(device::Ack::kSize);
            device::AckWriter w;
            device::encode(MutBytes{ack.data(), ack.size()}, 0, id, &w);
            w.set_status(static_cast<std::uint8_t>(device::AckStatus::FILL))
                .set_order_id(order.order_id())
                .set_filled_lots(order.size_lots())
                .set_fill_px(order.limit_px())
                .set_device_rx_ns(rx);
            replies.push_back(ack);
        });
        if (!replies.empty()) {
            const std::int64_t tx = clock.now();
            for (Message& a : replies) device::AckWriter(a.data()).set_device_tx_ns(tx);
            link->send(replies);
            acks += replies.size();
        }
        for (const DelayReqDue& due : delay_reqs) {
            Message req(device::DelayReq::kSize);
            sync.write_delay_req(MutBytes{req.data(), req.size()}, due, clock.now());
            link->send({req});
        }
    }
    if (o.values.count("--stats-path")) {
        FILE* f = std::fopen(o.get("--stats-path").c_str(), "w");
        if (f != nullptr) {
            std::fprintf(f, "{\"orders_received\": %llu, \"acks_sent\": %llu, \"invalid_orders\": %llu, "
                            "\"sync_exchanges\": %llu, \"exit_code\": 0}\n",
                         orders, acks, invalid, static_cast<unsigned long long>(sync.sync_exchanges));
            std::fclose(f);
        }
    }
    return 0;
}
