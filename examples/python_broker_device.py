"""A minimal broker device on the ArbSphere Python SDK: every ORDER answered over UDP with one
final ACK, filled in full at its limit price (REJECT for an invalid order).

Run it as an external device (``[broker] device = "hardware"`` in the campaign, with
``device_host`` / ``device_port`` = this device's ``bind_host`` / ``bind_port``)::

    python examples/python_broker_device.py broker.json

with ``broker.json``::

    {"device_id": 200, "bind_host": "127.0.0.1", "bind_port": 47320}

Optional: ``clock_offset_ns`` (the device clock's offset from the host's), ``stats_path``
(default ``<config stem>.stats.json``). Each ACK carries ``device_rx_ns`` (the ORDER's arrival:
the kernel's receive stamp on the device clock) and ``device_tx_ns`` (stamped right before the
write); it goes to whoever sent the ORDER. The SDK's :class:`DeviceLoop` answers the clock sync
on the same socket. Runs until SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from arbsphere.sdk import (
    AckStatus,
    ConfigReader,
    DeviceClock,
    DeviceContext,
    DeviceLoop,
    MsgType,
    RealtimeClock,
    Received,
    UdpDeviceLink,
    new_record,
    run_device,
)

CONFIG_KEYS = ("device_id", "bind_host", "bind_port", "clock_offset_ns", "stats_path")


class BrokerDevice(DeviceLoop):
    """The broker: the SDK's loop serves the clock sync; :meth:`on_message` answers ORDERs."""

    def __init__(self, link: UdpDeviceLink, device_id: int, clock: DeviceClock,
                 ctx: DeviceContext) -> None:  # fmt: skip
        super().__init__(link, device_id, ctx, clock=clock, heartbeat_interval_ns=None)
        self.ack = new_record(MsgType.ACK, device_id)
        self.answered = {"fills": 0, "rejects": 0}

    def on_message(self, msg_type: int, record: np.ndarray, msg: Received) -> None:
        if msg_type != MsgType.ORDER:
            return super().on_message(msg_type, record, msg)  # counted as unexpected
        order = record[0]
        valid = order["size_lots"] > 0 and order["side"] in (1, -1)
        ack = self.ack
        ack["status"] = AckStatus.FILL if valid else AckStatus.REJECT
        ack["order_id"] = order["order_id"]
        ack["filled_lots"] = order["size_lots"] if valid else 0
        ack["fill_px"] = order["limit_px"]
        ack["device_rx_ns"] = self.clock.device_time(msg.rx_ns)
        self.send_stamped([ack], "device_tx_ns")
        self.answered["fills" if valid else "rejects"] += 1

    def counters(self) -> dict[str, object]:
        return {**super().counters(), **self.answered}


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    cfg.only(CONFIG_KEYS)
    device_id = cfg.get_int("device_id", min_value=0, max_value=2**32 - 1)
    bind = (cfg.get_str("bind_host", "127.0.0.1"),
            cfg.get_int("bind_port", min_value=1, max_value=65535))  # fmt: skip
    clock = DeviceClock(RealtimeClock(), offset_ns=cfg.get_int("clock_offset_ns", 0))
    link = UdpDeviceLink("PYBROKER", bind=bind)  # no target: each answer goes to the sender
    try:
        BrokerDevice(link, device_id, clock, ctx).run()
    finally:
        link.close()


if __name__ == "__main__":
    stem = Path(sys.argv[1]).with_suffix("") if len(sys.argv) == 2 else Path("broker")
    sys.exit(run_device(main, "python_broker_device", stats_default=f"{stem}.stats.json"))
