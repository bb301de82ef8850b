"""Devices as a campaign configures them: ids (defaults, overrides, clashes named), the broker's
rig-side bind address, and what the orchestrator hands the adapters for hardware devices (arming,
ids, link settings) — checked on the role configs it writes, without starting processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arbsphere.adapters.local_address import route_source
from arbsphere.clock import RealtimeClock
from arbsphere.errors import ConfigError, LinkError
from arbsphere.rig.config import BROKER_DEVICE_ID, VENUE_DEVICE_ID_BASE, load_campaign
from arbsphere.rig.orchestrator import Orchestrator, synced_devices

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()
HW_BROKER = """[broker]
link = "udp"
device = "hardware"
device_host = "127.0.0.1"
device_port = 4100
"""


def _campaign(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def _with_broker(broker: str, venues: str | None = None) -> str:
    head = LOOPBACK[: LOOPBACK.index("[broker]")]
    if venues is not None:
        head = head[: head.index("[venues.venue_a]")] + venues
    return head + broker


def test_device_ids_default_and_configured(tmp_path: Path) -> None:
    c = load_campaign(_campaign(tmp_path, LOOPBACK))
    assert [v.device_id for v in c.venues] == [VENUE_DEVICE_ID_BASE, VENUE_DEVICE_ID_BASE + 1]
    assert c.broker.device_id == BROKER_DEVICE_ID
    text = LOOPBACK.replace("venue_id = 1\n", "venue_id = 1\ndevice_id = 4000000000\n")
    text = text.replace("[broker]\n", "[broker]\ndevice_id = 7\n")
    c = load_campaign(_campaign(tmp_path, text))
    assert [v.device_id for v in c.venues] == [10, 4_000_000_000] and c.broker.device_id == 7
    devices = {d.device: d.device_id for d in synced_devices(c)}
    assert devices == {"venue_a-device": 10, "venue_b-device": 4_000_000_000, "broker-device": 7}
    assert c.resolved()["broker"]["device_id"] == 7


@pytest.mark.parametrize(
    ("old", "new", "key", "other"),
    [
        ("venue_id = 1\n", "venue_id = 1\ndevice_id = 10\n", "venues.venue_b.device_id",
         "venues.venue_a.device_id"),
        ("[broker]\n", "[broker]\ndevice_id = 11\n", "broker.device_id",
         "venues.venue_b.device_id"),
        ("venue_id = 0\n", "venue_id = 0\ndevice_id = 200\n", "broker.device_id",
         "venues.venue_a.device_id"),
    ],
)  # fmt: skip
def test_two_devices_with_one_id_are_refused_naming_both_keys(
    tmp_path: Path, old: str, new: str, key: str, other: str
) -> None:
    path = _campaign(tmp_path, LOOPBACK.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key '{key}'"), info.value
    assert other in str(info.value)


def test_device_id_out_of_range_refused(tmp_path: Path) -> None:
    path = _campaign(tmp_path, LOOPBACK.replace("[broker]\n", "[broker]\ndevice_id = -1\n"))
    with pytest.raises(ConfigError, match=r"broker\.device_id"):
        load_campaign(path)


def test_broker_bind_host_is_for_udp_links_only(tmp_path: Path) -> None:
    c = load_campaign(_campaign(tmp_path, _with_broker(HW_BROKER + 'bind_host = "10.1.2.3"\n')))
    assert c.broker.bind_host == "10.1.2.3"
    assert load_campaign(_campaign(tmp_path, _with_broker(HW_BROKER))).broker.bind_host == ""
    serial = HW_BROKER.replace('"udp"', '"serial"').replace("device_port = 4100\n",
                                                             'port = "/dev/ttyUSB3"\n')  # fmt: skip
    path = _campaign(tmp_path, _with_broker(serial + 'bind_host = "10.1.2.3"\n'))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'broker.bind_host'"), info.value


def test_route_source_is_the_kernels_answer() -> None:
    assert route_source("127.0.0.1") == "127.0.0.1"
    assert route_source("localhost") == "127.0.0.1"
    with pytest.raises(LinkError, match="cannot resolve device host"):
        route_source("no-such-host.invalid")


class _Recorder(Orchestrator):
    """An orchestrator whose processes are never started: every spawn's config is kept."""

    spawned: dict[str, dict[str, Any]]

    def spawn(self, name: str, kind: str, module: str, cfg: dict[str, Any],
               pass_fds: tuple[int, ...] = ()) -> Any:  # fmt: skip
        self.spawned[name] = {"kind": kind, "module": module, "cfg": cfg}
        return None

    def wait_file(self, role: Any, path: Path) -> dict[str, Any]:
        return {"port": 4999, "address": ["127.0.0.1", 4998]}


def _recorder(tmp_path: Path, text: str) -> _Recorder:
    orch = _Recorder(load_campaign(_campaign(tmp_path, text)), tmp_path / "run", RealtimeClock())
    orch.spawned = {}
    return orch


def test_hardware_devices_wired_with_their_ids_arming_and_bind(tmp_path: Path) -> None:
    venues = LOOPBACK[LOOPBACK.index("[venues.venue_a]") : LOOPBACK.index("[broker]")]
    venues = venues.replace('device = "emulator"\nbind_host = "127.0.0.1"\nbind_port = 0',
                            'device = "hardware"\ndevice_id = 77\nbind_host = "127.0.0.1"\n'
                            "bind_port = 4200")  # fmt: skip
    orch = _recorder(tmp_path, _with_broker(HW_BROKER + "device_id = 201\n", venues))
    orch._start_broker()
    assert list(orch.spawned) == ["broker"]  # a hardware broker is not launched
    cfg = orch.spawned["broker"]["cfg"]
    assert cfg["sync"]["device_id"] == 201
    settings = cfg["link"]["settings"]
    assert (settings["device_host"], settings["device_port"]) == ("127.0.0.1", 4100)
    assert settings["bind_host"] == "127.0.0.1" == orch.broker_bind_host  # the route's source
    hw, emulated = orch.campaign.venues
    role = orch.venue_config(hw, hw.port)
    assert role.sync is not None and role.sync.device_id == 77
    assert role.arming is not None and role.arming.device_id == 77
    assert role.arming.schedule_path.endswith("venue_a.arm.json")
    assert orch.venue_config(emulated, "/dev/pts/99").arming is None
    orch._venue_ready = {"venue_b": {}}
    orch.proc_dir.mkdir(parents=True, exist_ok=True)
    orch.open_pty("venue_b-device")
    try:
        start_at = orch.start_feeds()
    finally:
        for fd in orch._pty_masters.values():
            os.close(fd)
    schedule = json.loads((orch.proc_dir / "venue_a.arm.json").read_text())
    c = orch.campaign
    assert schedule == {
        "arm_seq": schedule["arm_seq"], "start_ns": start_at,
        "tick_interval_ns": round(1e9 / c.rate_hz), "n_ticks": c.n_ticks, "venue_id": 0,
        "n_assets": c.n_assets,
    }  # fmt: skip
    assert orch.spawned["venue_b-device"]["cfg"]["device_id"] == emulated.device_id == 11
    assert "venue_a-device" not in orch.spawned


def test_a_hardware_serial_broker_gets_its_port(tmp_path: Path) -> None:
    serial = HW_BROKER.replace('"udp"', '"serial"').replace("device_port = 4100\n",
                                                             'port = "/dev/ttyUSB3"\n')  # fmt: skip
    orch = _recorder(tmp_path, _with_broker(serial))
    orch._start_broker()
    assert list(orch.spawned) == ["broker"]
    assert orch.spawned["broker"]["cfg"]["link"]["settings"]["port"] == "/dev/ttyUSB3"


def test_an_explicit_broker_bind_host_is_used(tmp_path: Path) -> None:
    orch = _recorder(tmp_path, _with_broker(HW_BROKER + 'bind_host = "127.0.0.2"\n'))
    orch._start_broker()
    assert orch.spawned["broker"]["cfg"]["link"]["settings"]["bind_host"] == "127.0.0.2"


def test_arm_deadline_and_refusal_end_the_run_naming_the_device(tmp_path: Path) -> None:
    from arbsphere.errors import PipelineError

    venues = LOOPBACK[LOOPBACK.index("[venues.venue_a]") : LOOPBACK.index("[broker]")]
    emulated = 'device = "emulator"\nbind_host = "127.0.0.1"\nbind_port = 0'
    hardware = 'device = "hardware"\nbind_host = "127.0.0.1"\nbind_port = 4200'
    venues = venues.replace(emulated, hardware)
    orch = _recorder(tmp_path, _with_broker(HW_BROKER, venues))
    orch.proc_dir.mkdir(parents=True, exist_ok=True)
    now = orch.clock.now_ns()
    with pytest.raises(PipelineError, match=r"'venue_a-device' \(device id 10\) did not answer"):
        orch._await_armed(now - 2_000_000_000, now - 1)  # the warm-up is over
    (orch.proc_dir / "venue_a.armed.json").write_text(json.dumps({"status": "refused"}))
    with pytest.raises(PipelineError, match=r"'venue_a-device' \(device id 10\) refused"):
        orch._await_armed(now, now + 10**12)
    (orch.proc_dir / "venue_a.armed.json").write_text(json.dumps({"status": "ok"}))
    orch._await_armed(now, now - 1)  # answered: no wait


def test_the_device_command_runs_an_emulator_and_names_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "feed.json"
    cfg.write_text(json.dumps({"device_id": 10, "venue_id": 0, "session": "X",
                               "target_host": "127.0.0.1", "target_port": 9,
                               "market": {"n_venues": 2}, "n_ticks": 5}))  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "device", "feed-udp", "--config", str(cfg)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"{cfg}: key 'n_ticks'" in out.stderr and "ARM brings the schedule" in out.stderr
    stats = json.loads((tmp_path / "feed.stats.json").read_text())  # beside the config
    assert stats["exit_code"] == 2 and stats["device"] == "feed_udp"


def test_resolved_campaign_keeps_configured_ids_across_replace(tmp_path: Path) -> None:
    c = load_campaign(_campaign(tmp_path, LOOPBACK))
    moved = dataclasses.replace(c.venues[0], clock=c.venues[0].clock)
    assert moved.device_id == c.venues[0].device_id
