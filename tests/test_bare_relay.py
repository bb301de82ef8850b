"""The pipeline benchmark's floor: the relay's middle hop forwards exactly the pipeline's traded
ticks, with their leg counts and hop stamps, over real ZeroMQ sockets."""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import zmq

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.runtime import StopFlag
from benchmarks.bare_relay import (
    FORWARD_DTYPE,
    LEGS_OFFSET,
    MID_STAMPS_OFFSET,
    PLAN_BYTES,
    PROBLEM_BYTES,
    REPORT_BYTES,
    SIGNALS_BYTES,
    STAMPS,
    RelayConfig,
    forward_table,
    relay_mid,
)


def _tick(venue: int, seq: int) -> bytes:
    rec = dm.new_record(dm.MSG_TICK, 1)
    rec["venue_id"] = venue
    rec["device_seq"] = seq
    rec["intended_send_ns"] = 1_000 + seq
    return dm.encode(rec).ljust(PROBLEM_BYTES, b"\0")


def test_forward_table_keys_venue_and_sequence(tmp_path: Path) -> None:
    rows = np.zeros(3, FORWARD_DTYPE)
    rows["venue"] = [0, 1, 1]
    rows["seq"] = [5, 5, 2**40]
    rows["legs"] = [2, 3, 1]
    np.save(tmp_path / "f.npy", rows)
    assert forward_table(str(tmp_path / "f.npy")) == {5: 2, (1 << 48) | 5: 3, (1 << 48) | 2**40: 1}
    assert forward_table(None) is None
    np.save(tmp_path / "bad.npy", np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"bad\.npy: forward rows"):
        forward_table(str(tmp_path / "bad.npy"))


def test_relay_mid_forwards_only_the_traded_ticks_and_takes_reports(tmp_path: Path) -> None:
    rows = np.zeros(2, FORWARD_DTYPE)
    rows["venue"] = [1, 0]
    rows["seq"] = [11, 12]
    rows["legs"] = [2, 3]
    np.save(tmp_path / "forward.npy", rows)
    cfg = RelayConfig(role="mid", name="relay-mid", out_dir=str(tmp_path),
                      bind="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*",
                      forward=str(tmp_path / "forward.npy"))  # fmt: skip
    stop = StopFlag()
    worker = threading.Thread(target=relay_mid, args=(cfg, stop), daemon=True)
    worker.start()
    ready_path = tmp_path / "relay-mid.ready.json"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    pull = ctx.socket(zmq.PULL)
    try:
        for _ in range(200):
            if ready_path.exists():
                break
            threading.Event().wait(0.02)
        ready = json.loads(ready_path.read_text())
        push.connect(ready["inbound_endpoint"])
        pull.connect(ready["outbound_endpoint"])
        # (venue 0, seq 11) and (venue 1, seq 12) are not in the table: same numbers, other venue
        for venue, seq in [(0, 11), (1, 11), (1, 12), (0, 12), (0, 13)]:
            push.send_multipart((_tick(venue, seq), bytes(SIGNALS_BYTES)))
            if seq == 12 and venue == 1:  # relay_out's reports of one datagram, between ticks
                push.send(bytes(2 * REPORT_BYTES))
        got = []
        while pull.poll(1000):
            got.append(pull.recv())
    finally:
        stop.is_set = True
        worker.join(2)
        push.close(0)
        pull.close(0)
    assert [len(m) for m in got] == [PLAN_BYTES, PLAN_BYTES]  # reports are not relayed on
    assert json.loads((tmp_path / "relay-mid.stats.json").read_text()) == {"reports": 2}
    fields = dm.TICK_DTYPE.fields
    assert fields is not None
    seen = [(struct.unpack_from("<H", m, fields["venue_id"][1])[0],
             struct.unpack_from("<Q", m, fields["device_seq"][1])[0],
             struct.unpack_from("<H", m, LEGS_OFFSET)[0]) for m in got]  # fmt: skip
    assert seen == [(1, 11, 2), (0, 12, 3)]
    for m in got:
        mid_rx, mid_tx = STAMPS.unpack_from(m, MID_STAMPS_OFFSET)
        assert 0 < mid_rx <= mid_tx
