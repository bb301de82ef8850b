"""``arbsphere conformance [CAMPAIGN]``: every device of a campaign through its conformance suite.

For each venue's feed device and the broker device, in turn: an emulated device
(``device = "emulator"``) is started here as the orchestrator starts it (same emulator module
from the backend registry, same wiring: the UDP feed sends to the suite's link, the UDP broker
binds and reports its port, a serial device gets the master of a pty whose slave the suite's
link opens) and stopped after its suite; a hardware device is expected to be on its
configured port or address. The suite itself (:mod:`arbsphere.conformance`) only sees the
rig-side link. Emulated link impairment (``impairment``) is left out: the suite judges the
device, not a link made bad on purpose.

An emulated feed is started without a schedule: it idles until the suite arms it with the
start handshake, as a hardware feed is (with :data:`EMULATED_FEED_HANDSHAKE` False it gets its
schedule in its config instead, and the suite reports the handshake skipped). ``misbehave``
(tests) passes a misbehaving-device table to the emulators
(``firmware_interfaces/emulators/misbehave.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbsphere.adapters.backends import WIRING_PTY, BrokerLinkSpec, FeedLinkSpec, backend
from arbsphere.adapters.links import FeedLink, LinkParams
from arbsphere.adapters.local_address import route_source
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.clock import Clock
from arbsphere.conformance import (
    BrokerSuiteSettings,
    BrokerTarget,
    FeedSuiteSettings,
    FeedTarget,
    SuiteResult,
    run_broker_suite,
    run_feed_suite,
)
from arbsphere.conformance.model import PASS
from arbsphere.errors import DeviceError
from arbsphere.rig.config import Campaign, VenueConfig, serial_options
from arbsphere.rig.orchestrator import device_name
from arbsphere.rig.probe import serial_endpoint, udp_endpoint
from arbsphere.runtime import write_json_atomic

#: whether the feed emulators idle until armed (the start handshake) instead of starting on
#: the schedule in their config
EMULATED_FEED_HANDSHAKE = True
#: an emulated feed's schedule starts this long after it is spawned (imports, Numba caches)
EMULATOR_START_S = 2.0
#: ... and, when it was not up by then, once more this long after it is spawned
EMULATOR_RETRY_START_S = 6.0
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ConformanceSettings:
    feed: FeedSuiteSettings = field(default_factory=FeedSuiteSettings)
    broker: BrokerSuiteSettings = field(default_factory=BrokerSuiteSettings)
    #: per device role name: a misbehave table for its emulator (tests)
    misbehave: Mapping[str, Mapping[str, Any]] | None = None
    #: only these devices (role names); None: every device of the campaign
    only: tuple[str, ...] | None = None
    #: the adapters' contract suite: how long each venue adapter's traffic is judged, and how
    #: long the broker adapter's answers are waited for after its last PlanDelta (0: off)
    adapter_s: float = 1.5


class Emulator:
    """One emulated device process: spawned with its JSON config, awaited, stopped."""

    def __init__(
        self,
        name: str,
        module: str,
        cfg: dict[str, Any],
        work: Path,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        cfg_path = work / f"{name}.config.json"
        write_json_atomic(cfg_path, cfg)
        self.stderr_path = work / f"{name}.stderr.log"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, str(cfg_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                start_new_session=True,
            )

    def wait_file(self, path: Path) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text())
                return data
            if self.proc.poll() is not None:
                raise DeviceError(
                    f"emulated device {self.name} exited with code "
                    f"{self.proc.returncode} before it was ready: {self.tail()}"
                )
            time.sleep(0.02)
        raise DeviceError(f"emulated device {self.name} not ready after {READY_TIMEOUT_S:g} s")

    def tail(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after :data:`STOP_TIMEOUT_S`; the exit code (None: it had to be
        killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def run_conformance(
    campaign: Campaign,
    clock: Clock,
    settings: ConformanceSettings | None = None,
    *,
    on_device: Callable[[str], None] | None = None,
) -> list[SuiteResult]:
    """The suite of every device of ``campaign`` (venues' feeds in order, then the broker),
    then the adapters' contract suites (each emulated-feed venue's adapter, the broker's)."""
    s = settings or ConformanceSettings()
    out: list[SuiteResult] = []
    with tempfile.TemporaryDirectory(prefix="arbsphere-conformance-") as tmp:
        work = Path(tmp)
        for v in campaign.venues:
            if s.only is None or device_name(v.name) in s.only:
                if on_device is not None:
                    on_device(device_name(v.name))
                out.append(_feed(campaign, v, clock, s, work))
        b = device_name(campaign.broker.name)
        if s.only is None or b in s.only:
            if on_device is not None:
                on_device(b)
            out.append(_broker(campaign, clock, s, work))
        for v in campaign.venues:
            if s.adapter_s > 0 and v.device == "emulator" and (s.only is None or v.name in s.only):
                if on_device is not None:
                    on_device(f"{v.name} (adapter)")
                out.append(_adapter(campaign, v, clock, s, work))
        if s.adapter_s > 0 and (s.only is None or campaign.broker.name in s.only):
            if on_device is not None:
                on_device(f"{campaign.broker.name} (adapter)")
            from arbsphere.rig.conformance_broker import run_broker_adapter_suite

            out.append(run_broker_adapter_suite(campaign, clock, work, listen_s=s.adapter_s))
    return out


def _adapter(
    campaign: Campaign, v: VenueConfig, clock: Clock, s: ConformanceSettings, work: Path
) -> SuiteResult:
    """Venue ``v``'s adapter against the contract graph, its emulated feed behind it."""
    from arbsphere.rig.conformance_adapters import run_venue_adapter_suite

    start_ns = clock.now_ns() + round(EMULATOR_START_S * 1e9)
    feed = feed_emulator_config(campaign, v, start_ns, s.adapter_s + 2.0, work)
    feed["stats_path"] = str(work / f"{v.name}-adapter-device.stats.json")
    feed["ready_path"] = str(work / f"{v.name}-adapter-device.ready.json")
    return run_venue_adapter_suite(campaign, v, clock, work, listen_s=s.adapter_s,
                                   feed_config=feed, start_ns=start_ns)  # fmt: skip


def _misbehave(s: ConformanceSettings, device: str) -> dict[str, Any]:
    table = (s.misbehave or {}).get(device)
    return {} if not table else {"misbehave": dict(table)}


def feed_emulator_config(
    campaign: Campaign, v: VenueConfig, start_ns: int | None, duration_s: float, work: Path
) -> dict[str, Any]:
    """An emulated feed's config for a conformance session (as the orchestrator writes it,
    without impairment or outage): its schedule from ``start_ns`` for ``duration_s``, or, with
    ``start_ns`` None, none: it idles until the suite arms it."""
    c = campaign
    name = device_name(v.name)
    market = {
        **dict(c.market.values),
        "seed": c.seed,
        "n_venues": len(c.venues),
        "n_assets": c.n_assets,
        "rate_hz": c.rate_hz,
    }
    schedule = {} if start_ns is None else {"start_at_ns": start_ns, "duration_s": duration_s}
    return schedule | {
        "device_id": v.device_id,
        "venue_id": v.venue_id,
        "asset_order": "round_robin",
        "session": f"VENUE{v.venue_id:02d}",
        "market": market,
        "heartbeat_interval_ms": 100,
        "clock": {"offset_ns": v.clock.offset_ns, "drift_ppm": v.clock.drift_ppm},
        "stats_path": str(work / f"{name}.stats.json"),
        "ready_path": str(work / f"{name}.ready.json"),
    }


def _feed(
    campaign: Campaign, v: VenueConfig, clock: Clock, s: ConformanceSettings, work: Path
) -> SuiteResult:
    """The feed suite of venue ``v``'s device: a hardware one where it is, an emulated one
    started here (once more with a longer lead when it was not up by its schedule's start: a
    loaded host, not the device, would be judged)."""
    if v.device != "emulator":
        spec = _feed_spec(v, v.port)
        return run_feed_suite(_feed_target(campaign, v, spec, None), clock, s.feed)
    attempt = 1
    result, late = _emulated_feed(campaign, v, clock, s, work, EMULATOR_START_S)
    if late:
        attempt = 2
        result, _ = _emulated_feed(campaign, v, clock, s, work, EMULATOR_RETRY_START_S)
    return SuiteResult(result.device, result.interface, result.backend, result.checks,
                       {**result.info, "emulator_attempts": attempt})  # fmt: skip


def _feed_spec(v: VenueConfig, port: str) -> FeedLinkSpec:
    params = LinkParams(name=v.name, bind_host=v.bind_host, bind_port=v.bind_port, port=port,
                        baudrate=v.baudrate, timestamping=v.timestamping, hw_config=v.hw_config,
                        **serial_options(v))  # fmt: skip
    return FeedLinkSpec.of(v.link, params)


def _feed_target(
    campaign: Campaign, v: VenueConfig, spec: FeedLinkSpec, start_ns: int | None
) -> FeedTarget:
    port = str(getattr(spec.settings, "port", v.port))
    findings = udp_endpoint(v.bind_host) if v.link == "udp" else serial_endpoint(port)
    return FeedTarget(device_name(v.name), spec, v.device_id, v.venue_id,
                      campaign.rate_hz, campaign.n_assets, start_ns=start_ns,
                      findings=findings)  # fmt: skip


def _emulated_feed(
    campaign: Campaign,
    v: VenueConfig,
    clock: Clock,
    s: ConformanceSettings,
    work: Path,
    lead_s: float,
) -> tuple[SuiteResult, bool]:
    """One session with an emulated feed started ``lead_s`` before its schedule; the result
    and whether the emulator was late (its ready file after the schedule's start, or its first
    tick not in time: its first market batch compiles and loads kernels after the ready
    file)."""
    link = backend(v.link)
    name = device_name(v.name)
    with _pty_if(link.wiring == WIRING_PTY) as (master, slave):
        spec = _feed_spec(v, slave or v.port)
        start_ns = None if EMULATED_FEED_HANDSHAKE else clock.now_ns() + round(lead_s * 1e9)
        target = _feed_target(campaign, v, spec, start_ns)
        cfg = feed_emulator_config(campaign, v, start_ns, s.feed.schedule_s(),
                                   work) | _misbehave(s, name)  # fmt: skip
        ready = Path(cfg["ready_path"])
        ready.unlink(missing_ok=True)
        emulators: list[Emulator] = []

        def start(opened: FeedLink) -> None:
            module = str(link.emulator("feed"))
            if master is not None:
                emulators.append(Emulator(name, module, {**cfg, "master_fd": master}, work,
                                          pass_fds=(master,)))  # fmt: skip
                return
            host, port = getattr(opened, "address", ("127.0.0.1", 0))
            wired = {**cfg, "target_host": host, "target_port": int(port)}
            emulators.append(Emulator(name, module, wired, work))

        try:
            result = run_feed_suite(target, clock, s.feed, on_open=start)
        finally:
            codes = [e.stop() for e in emulators]
    first = next((c for c in result.checks if c.name == "first_tick"), None)
    late = start_ns is not None and (
        not ready.exists()
        or ready.stat().st_mtime_ns > start_ns
        or (first is not None and first.verdict != PASS)
    )
    return _with_exit(result, codes, emulators), late


def _broker(campaign: Campaign, clock: Clock, s: ConformanceSettings, work: Path) -> SuiteResult:
    b = campaign.broker
    name = device_name(b.name)
    link = backend(b.link, role="broker")
    emulated = b.device == "emulator"
    emulators: list[Emulator] = []
    with _pty_if(emulated and link.wiring == WIRING_PTY) as (master, slave):
        host, port, serial_port = b.device_host, b.device_port, slave or b.port
        try:
            if emulated:
                ready = work / f"{name}.port.json"
                cfg: dict[str, Any] = {
                    "device_id": b.device_id,
                    "fill_mode": b.fill_mode,
                    "fills": dict(b.fills),
                    "ready_path": str(ready),
                    "clock": {"offset_ns": b.clock.offset_ns, "drift_ppm": b.clock.drift_ppm},
                    "stats_path": str(work / f"{name}.stats.json"),
                    **_misbehave(s, name),
                }
                module = str(link.emulator("broker"))
                if master is not None:
                    emu = Emulator(name, module, {**cfg, "master_fd": master}, work, (master,))
                    emulators.append(emu)
                    emu.wait_file(ready)
                else:
                    emu = Emulator(
                        name, module, {**cfg, "bind_host": host, "bind_port": port}, work
                    )
                    emulators.append(emu)
                    port = int(emu.wait_file(ready)["port"])
            # the rig's socket where the campaign says, else where the kernel routes from
            bind = b.bind_host or (route_source(host) if link.wiring != WIRING_PTY else "")
            params = LinkParams(name=b.name, bind_host=bind or LinkParams.bind_host,
                                device_host=host, device_port=port, port=serial_port,
                                baudrate=b.baudrate, timestamping=b.timestamping,
                                hw_config=b.hw_config, **serial_options(b))  # fmt: skip
            spec = BrokerLinkSpec.of(b.link, params)
            findings = udp_endpoint(bind) if b.link == "udp" else serial_endpoint(serial_port)
            target = BrokerTarget(name, spec, b.device_id, findings)
            result = run_broker_suite(target, clock, s.broker)
        finally:
            codes = [e.stop() for e in emulators]
    return _with_exit(result, codes, emulators)


@contextmanager
def _pty_if(wanted: bool) -> Iterator[tuple[int | None, str | None]]:
    """A pty pair (master fd, slave path) for an emulated serial device, closed afterwards."""
    if not wanted:
        yield None, None
        return
    master, slave = open_pty_pair()
    try:
        yield master, slave
    finally:
        os.close(master)


def _with_exit(
    result: SuiteResult, codes: list[int | None], emulators: list[Emulator]
) -> SuiteResult:
    """The result with the emulator's exit (a crash shows in ``info``)."""
    if not emulators:
        return result
    info = {**result.info, "emulator_exit_code": codes[0]}
    if codes[0] not in (0, -signal.SIGTERM):
        info["emulator_output"] = emulators[0].tail()
    return SuiteResult(result.device, result.interface, result.backend, result.checks, info)
