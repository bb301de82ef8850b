"""The SDK's example device (``examples/python_feed_device.py``) passes ``arbsphere
conformance`` as a hardware device: two instances are started as external devices on loopback
(one with its clock 2 ms off the host's), a campaign with ``device = "hardware"`` venues points
at them, and the CLI's verdict and JSON are checked. The broker stays emulated. Waits have
generous deadlines; nothing is timed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "python_feed_device.py"
#: the devices' clock offsets: the sync exchange must find them
OFFSETS = (2_000_000, 0)

CAMPAIGN = """\
[campaign]
name = "python-example"
contract_graph = "toyPair"
rate_hz = 1000

[venues.venue_a]
venue_id = 0
link = "udp"
device = "hardware"
device_id = 10
bind_host = "127.0.0.1"
bind_port = {port_a}

[venues.venue_b]
venue_id = 1
link = "udp"
device = "hardware"
device_id = 11
bind_host = "127.0.0.1"
bind_port = {port_b}

[broker]
link = "udp"
device = "emulator"
device_host = "127.0.0.1"
device_port = 0
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ExampleFeeds:
    """Two example feeds as external devices, and the campaign file that points at them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        ports = [_free_udp_port(), _free_udp_port()]
        self.configs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        for venue, (port, offset) in enumerate(zip(ports, OFFSETS, strict=True)):
            cfg = tmp / f"feed{venue}.json"
            cfg.write_text(json.dumps({
                "device_id": 10 + venue, "venue_id": venue, "n_assets": 1,
                "session": f"PYFEED{venue}", "target_host": "127.0.0.1", "target_port": port,
                "clock_offset_ns": offset,
            }))  # fmt: skip
            self.configs.append(cfg)
            argv = [sys.executable, str(EXAMPLE), str(cfg)]
            with (tmp / f"feed{venue}.log").open("wb") as log:
                self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        self.campaign = tmp / "campaign.toml"
        self.campaign.write_text(CAMPAIGN.format(port_a=ports[0], port_b=ports[1]))

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM each; every one must exit 0. Their stats."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in self.procs]
        logs = [(self.tmp / f"feed{v}.log").read_text() for v in range(len(self.procs))]
        assert codes == [0] * len(self.procs), logs
        return [json.loads(c.with_suffix(".stats.json").read_text()) for c in self.configs]


@pytest.fixture
def example_feeds(tmp_path: Path) -> Iterator[ExampleFeeds]:
    feeds = ExampleFeeds(tmp_path)
    try:
        yield feeds
    finally:
        for p in feeds.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_the_python_example_feed_passes_conformance_as_hardware(
    example_feeds: ExampleFeeds, tmp_path: Path
) -> None:
    out = tmp_path / "conformance.json"
    run = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "conformance", str(example_feeds.campaign),
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    stats = example_feeds.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    report = json.loads(out.read_text())
    suites = {s["device"]: s for s in report["suites"]}
    assert report["passed"] and set(suites) == {"venue_a-device", "venue_b-device",
                                                "broker-device"}  # fmt: skip
    for device in ("venue_a-device", "venue_b-device"):
        checks: dict[str, Any] = {c["name"]: c for c in suites[device]["checks"]}
        assert suites[device]["passed"], checks
        # the hardware path: armed by the handshake, ticks on the armed schedule, sync answered
        for name in ("handshake_armed", "first_tick", "rate_arrival", "sync_answers"):
            assert checks[name]["verdict"] == "pass", checks[name]
    for s, offset in zip(stats, OFFSETS, strict=True):
        assert s["exit_code"] == 0 and s["ticks_sent"] > 0
        handshake = s["start_handshake"]
        assert handshake["armed_ok"] == 1 and handshake["refused"]["busy"] == 0
        # the device learned its clock offset (device minus host) from the sync exchange
        assert abs(s["sync_offset"]["min_rtt"]["offset_ns"] - offset) < 500_000, s["sync_offset"]
