"""The SDK's example devices (``examples/python_feed_device.py``,
``examples/python_broker_device.py``) pass ``arbsphere conformance`` as hardware devices: two
feeds (one on a serial pty with its clock 2 ms off the host's, one on UDP) and a broker are
started as external devices on loopback, a campaign whose devices are all ``device =
"hardware"`` points at them, and the CLI's verdict and JSON are checked; a short campaign run
against them must give a complete result set. Waits have generous deadlines; nothing is
timed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbsphere.adapters.pty import open_pty_pair
from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import load_campaign

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FEED = ROOT / "examples" / "python_feed_device.py"
BROKER = ROOT / "examples" / "python_broker_device.py"
#: the devices' clock offsets: the sync exchange must find them
OFFSETS = (2_000_000, 0)

CAMPAIGN = """\
[campaign]
name = "{name}"
contract_graph = "toyPair"
{schedule}

[venues.venue_a]
venue_id = 0
link = "serial"
device = "hardware"
device_id = 10
port = "{slave}"
baudrate = 921600

[venues.venue_b]
venue_id = 1
link = "udp"
device = "hardware"
device_id = 11
bind_host = "127.0.0.1"
bind_port = {port_b}

[broker]
link = "udp"
device = "hardware"
device_id = 200
device_host = "127.0.0.1"
device_port = {port_broker}
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ExampleDevices:
    """The example feeds (venue_a on a serial pty, venue_b on UDP) and broker as external
    devices, and the campaign that points at them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.configs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        udp_feed, udp_broker = _free_udp_port(), _free_udp_port()
        master, slave = open_pty_pair()
        # the cable's far end stays open in raw mode while the devices run: a pty slave nobody
        # holds resets to cooked mode, and the feed's master would read EIO until the rig opens it
        self.held = os.open(slave, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.held)
        try:
            self._start(
                FEED,
                "feed0",
                {
                    "device_id": 10,
                    "venue_id": 0,
                    "serial_fd": master,
                    "clock_offset_ns": OFFSETS[0],
                },
                pass_fds=(master,),
            )
        finally:
            os.close(master)  # the device holds it now
        self._start(
            FEED,
            "feed1",
            {
                "device_id": 11,
                "venue_id": 1,
                "target_host": "127.0.0.1",
                "target_port": udp_feed,
                "clock_offset_ns": OFFSETS[1],
            },
        )
        self._start(
            BROKER,
            "broker",
            {
                "device_id": 200,
                "bind_host": "127.0.0.1",
                "bind_port": udp_broker,
                "clock_offset_ns": -1_000_000,
            },
        )
        self.ports = {"slave": slave, "port_b": udp_feed, "port_broker": udp_broker}

    def campaign(self, name: str, schedule: str) -> Path:
        """A campaign file pointing at the devices (``schedule``: its rate and lengths)."""
        path = self.tmp / f"{name}.toml"
        path.write_text(CAMPAIGN.format(name=name, schedule=schedule, **self.ports))
        return path

    def _start(
        self, example: Path, name: str, config: dict[str, Any], pass_fds: tuple[int, ...] = ()
    ) -> None:
        cfg = self.tmp / f"{name}.json"
        cfg.write_text(json.dumps(config))
        self.configs.append(cfg)
        with (self.tmp / f"{name}.log").open("wb") as log:
            self.procs.append(subprocess.Popen([sys.executable, str(example), str(cfg)],
                                               stdout=log, stderr=subprocess.STDOUT,
                                               pass_fds=pass_fds))  # fmt: skip

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM each; every one must exit 0. Their stats."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in self.procs]
        logs = [c.with_suffix(".log").read_text() for c in self.configs]
        assert codes == [0] * len(self.procs), logs
        return [json.loads(c.with_suffix(".stats.json").read_text()) for c in self.configs]


@pytest.fixture
def examples(tmp_path: Path) -> Iterator[ExampleDevices]:
    devices = ExampleDevices(tmp_path)
    try:
        yield devices
    finally:
        for p in devices.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        os.close(devices.held)


def test_the_python_example_devices_pass_conformance_as_hardware(
    examples: ExampleDevices, tmp_path: Path
) -> None:
    out = tmp_path / "conformance.json"
    run = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "conformance",
         str(examples.campaign("python-example", "rate_hz = 1000")), "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    *stats, broker = examples.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    report = json.loads(out.read_text())
    suites = {s["device"]: s for s in report["suites"]}
    # every suite passed: the three device suites and any the campaign's adapters get
    assert report["passed"] and all(s["passed"] for s in suites.values())
    assert {"venue_a-device", "venue_b-device", "broker-device"} <= set(suites)
    assert broker["exit_code"] == 0 and broker["fills"] > 0 and broker["rejects"] > 0
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


def test_a_campaign_runs_against_the_python_example_devices(
    examples: ExampleDevices, tmp_path: Path
) -> None:
    """1 s warm-up and 2 s measured at 200 ticks/s: a complete result set, every tick in."""
    schedule = "rate_hz = 200\nduration_s = 2.0\nwarmup_s = 1.0"
    campaign = load_campaign(examples.campaign("python-example-run", schedule))
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    *feeds, broker = examples.stop()
    assert result.complete, result.reason
    run = result.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for name in ("latency.hlog", "trace.parquet", "report.html"):
        assert (run / name).is_file(), name
    kpi = json.loads((run / "kpi.json").read_text())
    tp = kpi["throughput"]
    assert tp["ticks_in"] == 800 and tp["warmup_ticks"] == 400
    assert tp["orders_out"] == tp["acks_in"] > 0 and kpi["loss"]["unacked_orders"] == 0
    assert kpi["hedge"]["ticks_solved"] > 0
    assert broker["fills"] + broker["rejects"] == tp["orders_out"]
    assert [f["ticks_sent"] for f in feeds] == [600, 600]
