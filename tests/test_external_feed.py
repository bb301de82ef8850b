"""An external feed device (``arbsphere device feed-udp``) driven by the rig side of the start
handshake over loopback: it idles with heartbeats, answers the clock sync, is armed, runs the
schedule, idles again and runs the next one. No campaign: the venue adapter's link, sync master
and arming, stepped by this test. Waits have generous deadlines; nothing is timed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arbsphere.adapters.feed_arming import ArmingSettings, FeedArming, schedule_record
from arbsphere.adapters.sync_master import SyncMaster
from arbsphere.adapters.udp_link import UdpFeedLink, UdpLinkConfig
from arbsphere.clock import RealtimeClock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.sync_responder import SESSION_GAP_NS

pytestmark = pytest.mark.slow

DEVICE = 42
DEADLINE_S = 60.0


class Rig:
    """The rig side of one feed link: receive, clock sync, arming; what arrived, by type."""

    def __init__(self, tmp: Path, clock: RealtimeClock) -> None:
        self.tmp = tmp
        self.clock = clock
        self.link = UdpFeedLink(UdpLinkConfig(name="venue"), clock)
        self.sync = SyncMaster(self.link, clock, interval_ns=20_000_000, device_id=DEVICE)
        self.ticks: list[tuple[Any, ...]] = []
        self.heartbeats = 0
        self.arming: FeedArming | None = None

    def arm(self, n: int, seq: int, start_in_s: float) -> int:
        """A new arming with its schedule file (as the orchestrator writes it)."""
        paths = (str(self.tmp / f"a{n}.arm.json"), str(self.tmp / f"a{n}.armed.json"))
        self.arming = FeedArming(ArmingSettings(DEVICE, *paths), self.link)
        start = self.clock.now_ns() + round(start_in_s * 1e9)
        Path(paths[0]).write_text(json.dumps(schedule_record(seq, start, 2_000_000, 25, 0, 1)))
        return start

    def serve_until(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not done():
            assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S} s"
            for rec in self.link.receive(timeout_ms=5):
                mtype, values = dm.decode_values(rec.payload)
                if mtype == dm.MSG_TICK:
                    self.ticks.append(values)
                elif mtype == dm.MSG_HEARTBEAT:
                    self.heartbeats += 1
                elif mtype == dm.MSG_DELAY_REQ:
                    self.sync.on_delay_req(values, rec.rx_ns)
                elif mtype == dm.MSG_ARMED and self.arming is not None:
                    self.arming.on_armed(values, rec.rx_ns)
            now = self.clock.now_ns()
            self.sync.poll(now)
            if self.arming is not None:
                self.arming.poll(now)


def test_an_external_feed_is_armed_runs_idles_and_runs_the_next_schedule(tmp_path: Path) -> None:
    clock = RealtimeClock()
    rig = Rig(tmp_path, clock)
    host, port = rig.link.address
    cfg = tmp_path / "feed.json"
    cfg.write_text(json.dumps({
        "device_id": DEVICE, "venue_id": 0, "session": "EXT", "asset_order": "round_robin",
        "target_host": host, "target_port": port, "market": {"n_venues": 2},
        "clock": {"offset_ns": 3_000_000, "drift_ppm": -2.0},
        "ready_path": str(tmp_path / "feed.ready.json"),
    }))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbsphere.rig.cli", "device", "feed-udp", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        rig.serve_until(lambda: rig.heartbeats >= 2 and rig.sync.counts["delay_reqs"] >= 3,
                        "idle heartbeats and clock sync")  # fmt: skip
        assert not rig.ticks  # idle: nothing before it is armed
        first = rig.arm(1, seq=100, start_in_s=0.3)
        rig.serve_until(lambda: len(rig.ticks) == 25, "the first schedule's ticks")
        assert rig.arming is not None and rig.arming.answer is not None
        assert rig.arming.answer["status"] == "ok" and rig.arming.state == "started"
        # the device's start on its clock: the rig's start plus its offset (3 ms, sync-learned)
        assert abs(rig.arming.answer["start_device_ns"] - first - 3_000_000) < 1_000_000
        assert [t[6] for t in rig.ticks] == list(range(25))  # device_seq
        rig.ticks.clear()
        # the next run: a new sync master numbering from 1 after a quiet spell, as a new
        # adapter process would; the device starts a new sync session and answers it
        rig.sync = SyncMaster(rig.link, clock, interval_ns=20_000_000, device_id=DEVICE)
        time.sleep(SESSION_GAP_NS / 1e9 + 0.1)
        rig.serve_until(lambda: rig.sync.counts["delay_reqs"] >= 3, "the new sync session")
        rig.arm(2, seq=101, start_in_s=0.3)
        rig.serve_until(lambda: len(rig.ticks) == 25, "the second schedule's ticks")
        assert rig.arming.counts["armed_ok"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
        rig.link.close()
    assert proc.returncode == 0, out
    stats = json.loads((tmp_path / "feed.stats.json").read_text())
    hs = stats["start_handshake"]
    assert hs["schedules_run"] == 2 or (hs["schedules_run"] == 1 and hs["arm_seq"] == 101)
    assert hs["armed_ok"] == 2 and hs["started_on"] == "offset" and hs["refused"]["busy"] == 0
    assert stats["ticks_sent"] == 25 and stats["idle_heartbeats"] >= 2
    assert stats["sync_restarts"] == 1 and stats["sync_rejects"]["out_of_order_sync"] == 0
