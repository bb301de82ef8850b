"""The C++ SDK's minimal contract example (``sdk/cpp/examples``) against the rig, as external
hardware: a feed on UDP, a feed on a serial pty and a broker on UDP (or on a pty), started by
this test on loopback, pass ``arbsphere conformance`` on a campaign whose devices are ``device =
"hardware"``, and a short hardware campaign against them produces a complete result set.

Builds the CMake project first (``build/sdk-cpp``; quick when ``test_cpp_sdk`` built it) and
skips, saying why, without cmake or a C++ compiler. Waits have deadlines; nothing is timed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arbsphere.adapters.pty import open_pty_pair
from arbsphere.clock import RealtimeClock
from arbsphere.rig import cli
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import load_campaign

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "sdk-cpp"
LOOPBACK = ROOT / "campaigns" / "loopback.toml"
READY_S = 30.0
FEED_A, FEED_B, BROKER = 31, 32, 201


@pytest.fixture(scope="module")
def binaries() -> Path:
    missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (c++/g++)")
    if missing:
        pytest.skip(f"the C++ example device needs {', '.join(missing)} (Debian: cmake g++)")
    for cmd in (
        ["cmake", "-S", str(ROOT / "sdk" / "cpp"), "-B", str(BUILD)],
        ["cmake", "--build", str(BUILD), "--parallel", "2"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"
    return BUILD


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CppDevices:
    """The example devices, each started with its documented command line."""

    def __init__(self, bin_dir: Path, tmp: Path) -> None:
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.feed_port = _free_udp_port()
        self.broker_port = 0

    def start(self, name: str, exe: str, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        ready = self.tmp / f"{name}.ready.json"
        cmd = [str(self.bin_dir / exe), *args, "--ready-path", str(ready),
               "--stats-path", str(self.tmp / f"{name}.stats.json")]  # fmt: skip
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds
        )
        deadline = time.monotonic() + READY_S
        while not ready.exists() or not ready.read_text().strip():
            assert self.procs[name].poll() is None, f"{name} exited: {self.log(name)}"
            assert time.monotonic() < deadline, f"{name} not ready"
            time.sleep(0.05)
        if name == "broker":
            self.broker_port = int(json.loads(ready.read_text())["port"])

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> dict[str, dict[str, Any]]:
        """SIGTERM every device; their stats (each must exit 0 on its own)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{name} did not stop on SIGTERM") from None
            assert code == 0, f"{name} exited {code}: {self.log(name)}"
        return {
            name: json.loads((self.tmp / f"{name}.stats.json").read_text()) for name in self.procs
        }


@contextlib.contextmanager
def _raw_pty() -> Iterator[tuple[int, str]]:
    """A pty pair (master fd for the device, slave path for the rig), the slave held open in
    raw mode until the rig has opened it (a slave nobody holds resets to cooked mode)."""
    master, slave = open_pty_pair()
    held = os.open(slave, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(held)
    try:
        yield master, slave
    finally:
        os.close(held)
        os.close(master)


@contextlib.contextmanager
def _devices(
    bin_dir: Path, tmp: Path, serial_broker: bool
) -> Iterator[tuple[CppDevices, str, str]]:
    """Feed A on UDP, feed B on a pty, the broker on UDP (or a pty): (devices, feed B's slave
    path, the broker's slave path or "")."""
    d = CppDevices(bin_dir, tmp)
    with _raw_pty() as (feed_master, feed_slave), _raw_pty() as (broker_master, broker_slave):
        try:
            link = (["--serial-fd", str(broker_master)] if serial_broker
                    else ["--bind-host", "127.0.0.1", "--bind-port", "0"])  # fmt: skip
            d.start("broker", "arbsphere_broker_device",
                    ["--device-id", str(BROKER), *link, "--clock-offset-ns", "-120000"],
                    pass_fds=(broker_master,) if serial_broker else ())  # fmt: skip
            d.start("feed-a", "arbsphere_feed_device",
                    ["--device-id", str(FEED_A), "--venue-id", "0", "--session", "CPPA",
                     "--udp-target", f"127.0.0.1:{d.feed_port}", "--bind-host", "127.0.0.1",
                     "--clock-offset-ns", "2500000"])  # fmt: skip
            d.start("feed-b", "arbsphere_feed_device",
                    ["--device-id", str(FEED_B), "--venue-id", "1", "--serial-fd", str(feed_master),
                     "--clock-offset-ns", "-900000"], pass_fds=(feed_master,))  # fmt: skip
            yield d, feed_slave, broker_slave if serial_broker else ""
        finally:
            for proc in d.procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _campaign(tmp: Path, name: str, d: CppDevices, slave: str, broker_slave: str) -> Path:
    """loopback.toml, shortened (1 s warm-up, 2 s measured at 200 ticks/s), its devices the
    C++ example devices as hardware."""
    text = LOOPBACK.read_text()
    head = text[: text.index("[venues.venue_a]")].replace('name = "loopback"', f'name = "{name}"')
    for key, value in (("duration_s", "2.0"), ("rate_hz", "200"), ("warmup_s", "1.0")):
        start = head.index(f"\n{key} = ") + 1
        head = head[:start] + f"{key} = {value}" + head[head.index("\n", start) :]
    devices = f"""
[venues.venue_a]
venue_id = 0
link = "udp"
device = "hardware"
device_id = {FEED_A}
bind_host = "127.0.0.1"
bind_port = {d.feed_port}

[venues.venue_b]
venue_id = 1
link = "serial"
device = "hardware"
device_id = {FEED_B}
port = "{slave}"
"""
    if broker_slave:
        devices += f'\n[broker]\nlink = "serial"\ndevice = "hardware"\ndevice_id = {BROKER}\n'
        devices += f'port = "{broker_slave}"\n'
    else:
        devices += f'\n[broker]\nlink = "udp"\ndevice = "hardware"\ndevice_id = {BROKER}\n'
        devices += f'device_host = "127.0.0.1"\ndevice_port = {d.broker_port}\n'
    path = tmp / f"{name}.toml"
    path.write_text(head + devices)
    return path


@pytest.mark.parametrize("serial_broker", [False, True], ids=["udp-broker", "serial-broker"])
def test_cpp_example_devices_pass_conformance(
    binaries: Path, tmp_path: Path, serial_broker: bool
) -> None:
    with _devices(binaries, tmp_path, serial_broker) as (d, slave, broker_slave):
        campaign = _campaign(tmp_path, "cpp-conf", d, slave, broker_slave)
        out = tmp_path / "conformance.json"
        code = cli.main(["conformance", str(campaign), "--json", str(out)])
        stats = d.stop()
    report = json.loads(out.read_text())
    failed = [(s["device"], c["name"], c["detail"]) for s in report["suites"]
              for c in s["checks"] if c["verdict"] == "fail"]  # fmt: skip
    assert code == 0 and report["passed"], failed
    assert {s["device"] for s in report["suites"]} == {
        "venue_a-device", "venue_b-device", "broker-device"
    }  # fmt: skip
    for feed in ("feed-a", "feed-b"):
        assert stats[feed]["armed_ok"] == 1 and stats[feed]["schedules_run"] == 1, stats[feed]
        assert stats[feed]["sync_exchanges"] > 0
    assert stats["broker"]["acks_sent"] > 0


def test_hardware_campaign_against_the_cpp_example_devices(binaries: Path, tmp_path: Path) -> None:
    with _devices(binaries, tmp_path, serial_broker=False) as (d, slave, broker_slave):
        campaign = load_campaign(_campaign(tmp_path, "cpp-run", d, slave, broker_slave))
        result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
        stats = d.stop()
    assert result.complete, result.reason
    run = result.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    kpi = json.loads((run / "kpi.json").read_text())
    assert manifest["status"] == "complete"
    for name in ("latency.hlog", "trace.parquet", "report.html"):
        assert (run / name).is_file(), name
    # 2 venues x 200/s x 2 s measured, the warm-up's apart: every tick arrived
    assert kpi["throughput"]["ticks_in"] == 800 and kpi["throughput"]["warmup_ticks"] == 400
    assert kpi["hedge"]["ticks_solved"] > 0
    tp = kpi["throughput"]
    assert tp["orders_out"] == tp["acks_in"] > 0 and kpi["loss"]["unacked_orders"] == 0
    for venue, device_id in (("venue_a", FEED_A), ("venue_b", FEED_B)):
        clock = kpi["clock"]["devices"][f"{venue}-device"]
        assert clock["device_id"] == device_id and clock["exchanges"] > 0
    assert stats["broker"]["acks_sent"] == tp["orders_out"]
    for feed in ("feed-a", "feed-b"):
        assert stats[feed]["ticks_sent"] == 600 and stats[feed]["schedules_run"] == 1
