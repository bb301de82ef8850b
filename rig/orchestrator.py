"""Process orchestration of one campaign run.

Starts every role as its own OS process (coordinator, broker device + broker adapter, venue
adapters, feed devices) in dependency order, each with a resolved JSON config in
``<run>/proc/``; waits for each role's ready file; lets the feed devices run their open-loop
schedule; watches for roles that die; drains; stops everything with SIGTERM (SIGKILL after a
grace period) and returns what happened. It never reads traces: that is the analysis's job.

Devices configured as ``device = "hardware"`` are not started: their adapters open the
configured port / address, a hardware feed is armed with the schedule by its adapter (the start
handshake: the orchestrator writes the schedule to ``<proc>/<venue>.arm.json`` and waits for
the device's answer in ``<venue>.armed.json``, see adapters/feed_arming.py) and the run lasts
``duration_s``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbsphere.adapters.backends import (
    EMULATOR_PACKAGE,
    WIRING_PTY,
    BrokerLinkSpec,
    FeedLinkSpec,
    backend,
)
from arbsphere.adapters.feed_arming import ArmingSettings, schedule_record
from arbsphere.adapters.links import LinkParams
from arbsphere.adapters.local_address import route_source
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.adapters.role_config import BrokerRoleConfig, VenueFederation, VenueRoleConfig
from arbsphere.adapters.signal_privacy import PrivacySettings
from arbsphere.adapters.sync_master import SyncSettings
from arbsphere.clock import Clock
from arbsphere.clocksync.alignment import SyncedDevice
from arbsphere.coordinator.role_config import (
    CoordinatorRoleConfig,
    FederatedSettings,
    JournalSettings,
)
from arbsphere.errors import DeviceError, LinkError, PipelineError
from arbsphere.rig.config import Campaign, VenueConfig, serial_options
from arbsphere.rig.host_load import LoadMonitor
from arbsphere.runtime import config_to_json, write_json_atomic
from arbsphere.security.campaign_registry import CampaignRegistry, make_members
from arbsphere.security.governance_frames import canonical_json
from arbsphere.security.ledger import EventKind
from arbsphere.security.role_security import SecuritySettings
from arbsphere.sender_ids import (
    BROKER_SENDER_ID,
    COORDINATOR_SENDER_ID,
    VENUE_SENDER_BASE,
)

#: the coordinator's role name (roster, ledger signer)
COORDINATOR = "coordinator"
READY_TIMEOUT_S = 60.0
START_MARGIN_S = 1.5
#: ... plus this per emulated feed device beyond two: they start at once on the same cores,
#: each ~1 s of CPU (imports, Numba cache loads): 8 feeds took ~3 s to all be ready on an idle
#: 2-vCPU host here (two: 0.5 s), and a loaded one fell 5 s behind a 1.5 s margin
FEED_START_S = 0.75
STOP_GRACE_S = 10.0


@dataclass
class LaunchedRole:
    name: str
    kind: (
        str  # "coordinator" | "venue_adapter" | "broker_adapter" | "feed_device" | "broker_device"
    )
    proc: subprocess.Popen[bytes]
    config_path: Path
    stderr_path: Path
    essential: bool = True  # its death ends the run as incomplete


@dataclass
class RunOutcome:
    complete: bool
    reason: str
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    timestamp_sources: dict[str, str] = field(default_factory=dict)
    #: the campaign registry's ledger summary (None: the run never got as far as a registry)
    security: dict[str, Any] | None = None
    start_at_ns: int = 0  # tick 0 due: the feed schedule (warm-up first)
    measure_from_ns: int = 0  # end of the warm-up: the measured window starts
    end_ns: int = 0
    #: the roles' and the host's CPU in the measured window (sampled from /proc)
    load: LoadMonitor | None = None


#: how often the host-load monitor reads /proc in the measured window (each read costs ~1 ms)
LOAD_SAMPLE_NS = 1_000_000_000

#: what the coordinator binds: an ephemeral loopback port, told back in its ready file (a port
#: picked here and bound later can be taken meanwhile, e.g. as a connection's local port)
EPHEMERAL_ENDPOINT = "tcp://127.0.0.1:*"


def bound_endpoints(ready: dict[str, Any], role: str) -> tuple[str, str]:
    """The (inbound, outbound) endpoints a coordinator-like role reports in its ready file."""
    try:
        inbound, outbound = ready["inbound_endpoint"], ready["outbound_endpoint"]
    except KeyError as exc:
        raise PipelineError(f"{role}: ready file lacks {exc.args[0]!r}") from exc
    return str(inbound), str(outbound)


class Orchestrator:
    def __init__(self, campaign: Campaign, run_dir: Path, clock: Clock) -> None:
        self.campaign = campaign
        self.run_dir = run_dir
        self.proc_dir = run_dir / "proc"
        self.proc_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.roles: list[LaunchedRole] = []
        #: the pty master fd of every emulated device wired through a pty, by role name
        #: (the emulator inherits it; the orchestrator holds it open until the end)
        self._pty_masters: dict[str, int] = {}
        sync = campaign.clock_sync
        #: SYNC interval of every adapter's sync master (0: no clock-sync exchange)
        self.sync_interval_ns = round(1e9 / sync.rate_hz) if sync.rate_hz > 0 else 0
        #: the coordinator's PULL / PUSH endpoints, known once it is ready (see start)
        self.inbound = ""
        self.outbound = ""
        #: the coordinator's ROUTER for the federated rounds (None: central coordination)
        self.rounds_endpoint: str | None = None
        #: the campaign registry (credential authority, ledger), from run()'s start
        self.registry: CampaignRegistry | None = None
        #: the address the broker adapter's UDP socket binds (resolved in _start_broker)
        self.broker_bind_host = ""

    # --- process plumbing --------------------------------------------------------------------
    def spawn(
        self, name: str, kind: str, module: str, cfg: dict[str, Any], pass_fds: tuple[int, ...] = ()
    ) -> LaunchedRole:
        """Start role ``name`` as ``python -m module CONFIG`` (its config written beside its
        stderr log in the run's proc directory); it stays in :attr:`roles` for the stop."""
        cfg_path = self.proc_dir / f"{name}.config.json"
        write_json_atomic(cfg_path, cfg)
        err_path = self.proc_dir / f"{name}.stderr.log"
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, str(cfg_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                start_new_session=True,  # a Ctrl-C at the terminal goes to us, not to roles
            )
        role = LaunchedRole(name, kind, proc, cfg_path, err_path)
        self.roles.append(role)
        return role

    def wait_file(self, role: LaunchedRole, path: Path) -> dict[str, Any]:
        """The JSON file ``role`` writes when it is up (a ready file); PipelineError naming
        the role when it exits first or is not up within the ready timeout."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text())
                return data
            code = role.proc.poll()
            if code is not None:
                raise PipelineError(
                    f"{role.kind} '{role.name}' exited with code {code} before it was ready; "
                    f"{self.stderr_tail(role)}"
                )
            time.sleep(0.02)
        raise PipelineError(f"{role.kind} '{role.name}' not ready after {READY_TIMEOUT_S:.0f} s")

    def open_pty(self, device: str) -> str:
        """A pty pair for the emulated ``device``: its master kept for the device's spawn
        (:meth:`pty_master`), the slave path returned for the adapter's ``port``."""
        master_fd, slave_path = open_pty_pair()
        self._pty_masters[device] = master_fd
        return slave_path

    def pty_master(self, device: str) -> int:
        return self._pty_masters[device]

    def close_ptys(self) -> None:
        """Close every pty master this orchestrator opened (after the devices stopped)."""
        for fd in self._pty_masters.values():
            os.close(fd)
        self._pty_masters.clear()

    def stderr_tail(self, role: LaunchedRole, lines: int = 5) -> str:
        try:
            text = role.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        tail = " | ".join(text[-lines:])
        return f"its last output: {tail}" if tail else "no output"

    # --- start-up ----------------------------------------------------------------------------
    def start(self) -> None:
        c = self.campaign
        coord = self.spawn(
            "coordinator", "coordinator", "arbsphere.coordinator.service",
            config_to_json(self.coordinator_config()),
        )  # fmt: skip
        ready = self.wait_file(coord, self.proc_dir / "coordinator.ready.json")
        self.inbound, self.outbound = bound_endpoints(ready, "coordinator")
        self.rounds_endpoint = ready.get("rounds_endpoint")
        self._start_broker()
        for venue in c.venues:
            self._start_venue_adapter(venue)

    def coordinator_config(self, coordination: bool = True) -> CoordinatorRoleConfig:
        """The coordinator's role config for this run (``coordination`` False: central
        whatever the campaign says, as a replay of the journal runs it)."""
        c = self.campaign
        k = c.coordinator
        return CoordinatorRoleConfig(
            out_dir=str(self.proc_dir), inbound_endpoint=EPHEMERAL_ENDPOINT,
            outbound_endpoint=EPHEMERAL_ENDPOINT, n_venues=len(c.venues), n_assets=c.n_assets,
            min_delta_lots=k.min_delta_lots, max_batch=k.max_batch,
            ns_per_iteration=k.ns_per_iteration, admm=k.admm,
            journal=self._journal_settings(),
            federated=self._federated_settings() if coordination else None,
            security=self._security_table(COORDINATOR),
            venue_ids={v.name: v.venue_id for v in c.venues},
        )  # fmt: skip

    def _federated_settings(self) -> FederatedSettings | None:
        k = self.campaign.coordinator
        if k.coordination == "central":
            return None
        return FederatedSettings(
            rounds_endpoint=EPHEMERAL_ENDPOINT, protocol=k.protocol,
            ns_per_round=k.ns_per_round, round_timeout_ms=k.round_timeout_ms,
            stale_after_ms=k.stale_after_ms, unresponsive_retry_ms=k.unresponsive_retry_ms,
            # the rounds in masked shares: what the campaign registry tells every role
            secure_aggregation=self.registry is not None
            and self.campaign.security.secure_aggregation,
            # secure aggregation of the venues' signals: one SignalShare per release epoch
            signal_release_interval_ms=self.campaign.security.privacy.release_interval_ms,
        )  # fmt: skip

    def _security_table(self, name: str) -> SecuritySettings | None:
        """Role ``name``'s security table (None: no registry, plaintext)."""
        return None if self.registry is None else self.registry.role_settings(name)

    def _sync(self, device_id: int) -> SyncSettings | None:
        """An adapter's clock-sync exchange with device ``device_id`` (None: no exchange)."""
        interval = self.sync_interval_ns
        return SyncSettings(interval, device_id) if interval > 0 else None

    def cosigners(self) -> list[str]:
        """Roles that co-sign the ledger's checkpoints (the venues)."""
        return [v.name for v in self.campaign.venues]

    def open_registry(self) -> CampaignRegistry:
        """The run's campaign registry: credentials for every role, the ledger, started."""
        c = self.campaign
        members = make_members(
            COORDINATOR, COORDINATOR_SENDER_ID,
            {v.name: VENUE_SENDER_BASE + v.venue_id for v in c.venues},
            c.broker.name, BROKER_SENDER_ID,
        )  # fmt: skip
        registry = CampaignRegistry(
            self.run_dir, c.security, members, self.clock, signer=COORDINATOR,
            cosigners=self.cosigners(),
            run_details={"campaign": c.name, "run_id": self.run_dir.name},
        )  # fmt: skip
        resolved = canonical_json(c.resolved())
        source = Path(c.source)
        registry.note(EventKind.CONFIG_HASH, 0, {
            "resolved_config_sha256": hashlib.sha256(resolved).hexdigest(),
            "config_file": c.source,
            "config_file_sha256": hashlib.sha256(source.read_bytes()).hexdigest()
            if source.is_file() else None,
        })  # fmt: skip
        registry.start()
        return registry

    def _journal_settings(self) -> JournalSettings | None:
        j = self.campaign.journal
        if not j.enabled:
            return None
        interval = j.durability == "interval"
        return JournalSettings(
            dir=str(self.run_dir / "journal"), durability=j.durability,
            segment_bytes=round(j.segment_mb * (1 << 20)),
            interval_ns=round(j.sync_interval_ms * 1e6) if interval else None,
            interval_records=j.sync_every_records if interval else None,
            interleave_ns=round(j.interleave_ms * 1e6),
        )  # fmt: skip

    def _start_broker(self) -> None:
        b = self.campaign.broker
        link = backend(b.link, role="broker")
        host, port, serial_port = b.device_host, b.device_port, b.port
        if b.device == "emulator":
            device = f"{b.name}-device"
            ready = self.proc_dir / f"{device}.port.json"
            dev_cfg: dict[str, Any] = {
                "device_id": b.device_id,
                "clock": {"offset_ns": b.clock.offset_ns, "drift_ppm": b.clock.drift_ppm},
                "stats_path": str(self.proc_dir / f"{device}.stats.json"),
                "fill_mode": b.fill_mode, "fills": dict(b.fills), "ready_path": str(ready),
            }  # fmt: skip
            module = str(link.emulator("broker"))  # checked at load: there is one
            if link.wiring == WIRING_PTY:
                serial_port = self.open_pty(device)
                fd = self.pty_master(device)
                dev = self.spawn(device, "broker_device", module, {**dev_cfg, "master_fd": fd},
                                  pass_fds=(fd,))  # fmt: skip
                self.wait_file(dev, ready)
            else:
                dev = self.spawn(device, "broker_device", module,
                                  {**dev_cfg, "bind_host": host, "bind_port": port})  # fmt: skip
                port = int(self.wait_file(dev, ready)["port"])
                if b.impairment:
                    host, port = self._start_impair_relay(f"{b.name}-link", host, port,
                                                          b.impairment)  # fmt: skip
        # the rig's broker socket: where the campaign says, else the local address the
        # kernel routes to the device from (loopback for a loopback device)
        try:
            bind = b.bind_host or (route_source(host) if link.wiring != WIRING_PTY else "")
        except LinkError as exc:
            raise PipelineError(f"broker '{b.name}': {exc}; set [broker] bind_host") from exc
        self.broker_bind_host = bind
        params = LinkParams(name=b.name, bind_host=bind or LinkParams.bind_host,
                            device_host=host, device_port=port, port=serial_port,
                            baudrate=b.baudrate, timestamping=b.timestamping,
                            hw_config=b.hw_config, **serial_options(b))  # fmt: skip
        adapter = self.spawn(b.name, "broker_adapter", "arbsphere.adapters.broker_adapter",
                              config_to_json(self.broker_config(params)))  # fmt: skip
        self.wait_file(adapter, self.proc_dir / f"{b.name}.ready.json")

    def broker_config(self, params: LinkParams) -> BrokerRoleConfig:
        """The broker adapter's role config, its link at ``params`` (where the device is)."""
        b, c = self.campaign.broker, self.campaign
        return BrokerRoleConfig(
            name=b.name, out_dir=str(self.proc_dir), device_id=1,
            link=BrokerLinkSpec.of(b.link, params),
            plan_endpoint=self.outbound, report_endpoint=self.inbound,
            n_venues=len(c.venues), n_assets=c.n_assets,
            replica_fault_every=b.replica_fault_every, sync=self._sync(b.device_id),
            security=self._security_table(b.name),
        )  # fmt: skip

    def _start_impair_relay(
        self, name: str, device_host: str, device_port: int, impairment: Any
    ) -> tuple[str, int]:
        """A loopback UDP impairment relay in front of a device; returns the (host, port) the
        rig side sends to. The relay answers the rig at the address the rig sends from."""
        ready = self.proc_dir / f"{name}.port.json"
        relay = self.spawn(
            name, "link_relay", f"{EMULATOR_PACKAGE}.impair_relay",
            {"rig_side_host": device_host, "rig_side_port": 0,
             "device_side_host": device_host, "device_side_port": 0,
             "device_host": device_host, "device_port": device_port,
             **{k: dict(v) for k, v in dict(impairment).items()},
             "ready_path": str(ready), "stats_path": str(self.proc_dir / f"{name}.stats.json")},
        )  # fmt: skip
        info = self.wait_file(relay, ready)
        return str(info["host"]), int(info["rig_side_port"])

    def _start_venue_adapter(self, v: VenueConfig) -> None:
        port = v.port
        if v.device == "emulator" and backend(v.link).wiring == WIRING_PTY:
            port = self.open_pty(f"{v.name}-device")
        cfg = self.venue_config(v, port)
        role = self.spawn(v.name, "venue_adapter", "arbsphere.adapters.venue_adapter",
                           config_to_json(cfg))  # fmt: skip
        self._venue_ready[v.name] = self.wait_file(role, self.proc_dir / f"{v.name}.ready.json")

    def venue_config(self, v: VenueConfig, port: str) -> VenueRoleConfig:
        """Venue ``v``'s adapter role config (``port``: its serial port, or the pty slave the
        orchestrator opened for its emulated device)."""
        c = self.campaign
        params = LinkParams(name=v.name, bind_host=v.bind_host, bind_port=v.bind_port,
                            port=port, baudrate=v.baudrate, timestamping=v.timestamping,
                            hw_config=v.hw_config, **serial_options(v))  # fmt: skip
        return VenueRoleConfig(
            name=v.name, venue_id=v.venue_id, sender_id=VENUE_SENDER_BASE + v.venue_id,
            out_dir=str(self.proc_dir), link=FeedLinkSpec.of(v.link, params),
            fee_bp=v.fee_bp, gamma=v.gamma, position_limit_lots=v.position_limit_lots,
            budget_ns=int(c.coordinator.budget_us * 1000),
            coordinator_endpoint=self.inbound, n_venues=len(c.venues), n_assets=c.n_assets,
            sync=self._sync(v.device_id), arming=self._arming(v),
            federated=self._venue_federation(v), security=self._security_table(v.name),
        )  # fmt: skip

    def _arming(self, v: VenueConfig) -> ArmingSettings | None:
        """A hardware feed's start handshake: its adapter arms it with the schedule this
        orchestrator writes in :meth:`arm_hardware_feeds` (an emulator gets it in its config)."""
        if v.device != "hardware":
            return None
        return ArmingSettings(v.device_id, str(self.proc_dir / f"{v.name}.arm.json"),
                              str(self.proc_dir / f"{v.name}.armed.json"))  # fmt: skip

    def _venue_federation(self, v: VenueConfig) -> VenueFederation | None:
        """The venue's side of the federated rounds (None: central coordination)."""
        if not self.rounds_endpoint:
            return None
        c = self.campaign
        privacy = c.security.privacy
        return VenueFederation(
            rounds_endpoint=self.rounds_endpoint, protocol=c.coordinator.protocol,
            # the signal shares' release epochs (secure aggregation; with or without budgets)
            signal_release_interval_ms=privacy.release_interval_ms,
            # the rounds in masked shares: as the coordinator is told
            secure_aggregation=self.registry is not None and c.security.secure_aggregation,
            # federated only: central mode sends the limit anyway
            privacy=self._privacy(v) if privacy.enabled else None,
        )  # fmt: skip

    def _privacy(self, v: VenueConfig) -> PrivacySettings:
        c = self.campaign
        p = c.security.privacy
        return PrivacySettings(
            mechanism=p.mechanism, epsilon_total=p.epsilon_total,
            epsilon_per_release=p.epsilon_per_release, delta_total=p.delta_total,
            release_interval_ms=p.release_interval_ms,
            liquidity_sensitivity_lots=p.liquidity_sensitivity_lots
            if p.liquidity_sensitivity_lots is not None else v.position_limit_lots,
            correlation_sensitivity=p.correlation_sensitivity,
            seed=p.seed if p.seed is not None else c.seed,
        )  # fmt: skip

    #: the ready file of every venue adapter started, by name
    _venue_ready: dict[str, dict[str, Any]]
    #: (role name, ready file) of every emulated feed device started
    _feed_ready: list[tuple[str, Path]]

    def _await_feeds(self, start_at: int, measure_from: int) -> None:
        """Wait until every emulated feed device is up (its ready file, written before its
        first send). One that is late sends its overdue ticks at once (it never skips one): the
        warm-up absorbs that burst, but a device not up when the measured window begins would
        put it into the measurements, so the run ends incomplete, naming the device."""
        pending = dict(self._feed_ready)
        roles = {r.name: r for r in self.roles}
        while pending:
            now = self.clock.now_ns()
            for name, path in list(pending.items()):
                if path.exists():
                    del pending[name]
                    continue
                role = roles[name]
                code = role.proc.poll()
                if code is not None:
                    raise PipelineError(
                        f"{role.kind} '{name}' exited with code {code} before it was ready; "
                        f"{self.stderr_tail(role)}"
                    )
            if pending and now > measure_from:
                raise PipelineError(
                    f"feed device(s) {', '.join(sorted(pending))} not up "
                    f"{(now - start_at) / 1e9:.1f} s after the schedule's start, past the "
                    f"{self.campaign.warmup_s:g} s warm-up: their overdue ticks would burst into "
                    "the measured window (start-up of "
                    f"{len(self._feed_ready)} devices on a loaded host); raise campaign.warmup_s"
                )
            if pending:
                time.sleep(0.02)

    def arm_hardware_feeds(self, start_at: int) -> None:
        """Tell the adapter of every hardware feed the schedule (its schedule file, written
        atomically; the adapter arms its device with it: adapters/feed_arming.py)."""
        c = self.campaign
        arm_seq = self.clock.now_ns()  # per device strictly increasing, across runs too
        for v in c.venues:
            if v.device != "hardware":
                continue
            record = schedule_record(arm_seq, start_at, round(1e9 / c.rate_hz), c.n_ticks,
                                     v.venue_id, c.n_assets)  # fmt: skip
            write_json_atomic(self.proc_dir / f"{v.name}.arm.json", record)

    def _await_armed(self, start_at: int, measure_from: int) -> None:
        """Wait for every hardware feed's answer to ARM (its adapter writes it): a device
        that refuses, or has not answered by the end of the warm-up, ends the run incomplete,
        naming it."""
        pending = {v.name: v for v in self.campaign.venues if v.device == "hardware"}
        while pending:
            for name, v in list(pending.items()):
                path = self.proc_dir / f"{name}.armed.json"
                if not path.exists():
                    continue
                answer = json.loads(path.read_text())
                if answer.get("status") != "ok":
                    raise PipelineError(
                        f"feed device '{device_name(name)}' (device id {v.device_id}) refused "
                        f"the schedule (ARM: venue_id {v.venue_id}, n_assets "
                        f"{self.campaign.n_assets}, {self.campaign.rate_hz:g} ticks/s, "
                        f"{self.campaign.n_ticks} ticks); see the device's own log"
                    )
                del pending[name]
            now = self.clock.now_ns()
            if pending and now > measure_from:
                names = ", ".join(f"'{device_name(n)}' (device id {v.device_id})"
                                  for n, v in sorted(pending.items()))  # fmt: skip
                raise PipelineError(
                    f"feed device(s) {names} did not answer ARM by the end of the warm-up "
                    f"({(now - start_at) / 1e9:.1f} s after the schedule's start; the adapter "
                    "repeats ARM every 100 ms once the device's first datagram or frame "
                    "arrived): is the device on, at the configured address or port, and "
                    "speaking the start handshake?"
                )
            if pending:
                time.sleep(0.02)

    def start_feeds(self) -> int:
        """Start the feed devices; returns the rig time at which tick 0 is due."""
        c = self.campaign
        n_feeds = sum(v.device == "emulator" for v in c.venues)
        margin_s = START_MARGIN_S + FEED_START_S * max(0, n_feeds - 2)
        start_at = self.clock.now_ns() + int(margin_s * 1e9)
        self._feed_ready = []
        market = {
            **dict(c.market.values),
            "seed": c.seed,
            "n_venues": len(c.venues),
            "n_assets": c.n_assets,
            "rate_hz": c.rate_hz,
        }
        for v in c.venues:
            if v.device != "emulator":
                continue
            ready = self._venue_ready[v.name]
            common = {
                "device_id": v.device_id, "venue_id": v.venue_id,
                # every venue quotes every asset, one per tick: tick k quotes asset
                # k mod n_assets (rate_hz stays ticks/s per venue, see market.RoundRobinQuotes)
                "asset_order": "round_robin", "session": f"VENUE{v.venue_id:02d}",
                "market": market,
                "start_at_ns": start_at, "n_ticks": c.n_ticks, "heartbeat_interval_ms": 100,
                "clock": {
                    "offset_ns": v.clock.offset_ns, "drift_ppm": v.clock.drift_ppm,
                    "steps": [[start_at + round(at_s * 1e9), d] for at_s, d in v.clock.steps],
                },
                "stats_path": str(self.proc_dir / f"{v.name}-device.stats.json"),
                # written once the device is up, before its first send (see _await_feeds)
                "ready_path": str(self.proc_dir / f"{v.name}-device.ready.json"),
            }  # fmt: skip
            self._feed_ready.append((f"{v.name}-device", Path(str(common["ready_path"]))))
            if v.impairment:
                common["impairment"] = dict(v.impairment)
            if v.outage_s is not None:
                common["outage_s"] = list(v.outage_s)
            link = backend(v.link)
            device, module = f"{v.name}-device", str(link.emulator("feed"))
            if link.wiring == WIRING_PTY:
                fd = self.pty_master(device)
                self.spawn(device, "feed_device", module, {**common, "master_fd": fd},
                            pass_fds=(fd,))  # fmt: skip
            else:
                host, port = ready["address"]
                self.spawn(
                    device, "feed_device", module,
                    {**common, "target_host": host, "target_port": int(port),
                     "ticks_per_datagram": v.ticks_per_datagram},
                )  # fmt: skip
        self.arm_hardware_feeds(start_at)
        return start_at

    # --- run ---------------------------------------------------------------------------------
    def run(self, on_progress: Callable[[float, str], None] | None = None) -> RunOutcome:
        self._venue_ready = {}
        self._feed_ready = []
        outcome = RunOutcome(complete=True, reason="")
        try:
            if on_progress is not None:
                on_progress(0.0, "starting roles (imports, kernel warm-up)")
            self.registry = self.open_registry()
            self.start()
            start_at = self.start_feeds()
            outcome.start_at_ns = start_at
            outcome.measure_from_ns = start_at + round(self.campaign.warmup_s * 1e9)
            self._await_feeds(start_at, outcome.measure_from_ns)
            self._await_armed(start_at, outcome.measure_from_ns)
            self._watch(start_at, outcome, on_progress)
            if outcome.complete:
                if on_progress is not None:
                    on_progress(1.0, "draining and stopping roles")
                time.sleep(self.campaign.drain_s)
        except (PipelineError, DeviceError) as exc:
            outcome.complete = False
            outcome.reason = str(exc)
        except KeyboardInterrupt:
            outcome.complete = False
            outcome.reason = "interrupted by the user (Ctrl-C)"
        finally:
            outcome.end_ns = self.clock.now_ns()
            if self.registry is not None:
                if not outcome.complete:
                    self.registry.note(EventKind.ROLE_LEFT, 0, {"reason": outcome.reason})
                outcome.security = self.registry.finish(outcome.complete, outcome.reason)
            self.stop_all(outcome)
            if self.registry is not None:
                self.registry.cleanup()
            self.close_ptys()
        return outcome

    def _watch(
        self, start_at: int, outcome: RunOutcome, on_progress: Callable[[float, str], None] | None
    ) -> None:
        c = self.campaign
        feeds = [r for r in self.roles if r.kind == "feed_device"]
        measure_from = start_at + round(c.warmup_s * 1e9)
        end_due = measure_from + int(c.duration_s * 1e9)
        pids = {r.name: r.proc.pid for r in self.roles}
        pids["orchestrator"] = os.getpid()  # the registry thread lives here
        load = outcome.load = LoadMonitor(pids, self.clock.now_ns)
        next_sample: int | None = measure_from
        try:
            while True:
                now = self.clock.now_ns()
                if next_sample is not None and now >= next_sample:
                    if now >= end_due:  # the window's last sample
                        load.sample()
                        next_sample = None
                    else:
                        if load.started:
                            load.sample()
                        else:
                            load.start()
                        next_sample = min(end_due, now + LOAD_SAMPLE_NS)
                if on_progress is not None:
                    frac = (now - start_at) / max(1, end_due - start_at)
                    phase = (
                        "arming" if now < start_at
                        else "warm-up (clocks lock, excluded)" if now < measure_from
                        else "traffic (measured)"
                    )  # fmt: skip
                    on_progress(min(1.0, max(0.0, frac)), phase)
                for role in self.roles:
                    code = role.proc.poll()
                    if code is None:
                        continue
                    if role.kind == "feed_device" and code == 0:
                        continue
                    outcome.complete = False
                    what = "was killed by signal" if code < 0 else "exited with code"
                    outcome.reason = (
                        f"{role.kind} '{role.name}' {what} {abs(code)} "
                        f"{(now - start_at) / 1e9:.1f} s into the run; {self.stderr_tail(role)}"
                    )
                    return
                if feeds and all(r.proc.poll() == 0 for r in feeds):
                    return
                if not feeds and now >= end_due:
                    return
                if now > end_due + int(30e9):
                    outcome.complete = False
                    outcome.reason = "feed devices did not finish within 30 s of the schedule's end"
                    return
                time.sleep(0.1)
        finally:
            if next_sample is not None and load.started:
                load.sample()  # traffic ended (or the run failed) before the window's end

    def stop_all(self, outcome: RunOutcome) -> None:
        """SIGTERM every live role (pipeline order), SIGKILL after the grace period."""
        order = [
            "feed_device", "venue_adapter", "coordinator", "broker_adapter", "link_relay",
            "broker_device",
        ]  # fmt: skip
        for kind in order:
            for role in self.roles:
                if role.kind == kind and role.proc.poll() is None:
                    role.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for role in self.roles:
                if role.kind != kind:
                    continue
                try:
                    role.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    role.proc.kill()
                    role.proc.wait()
                    if outcome.complete:
                        outcome.complete = False
                        outcome.reason = f"{role.kind} '{role.name}' did not stop on SIGTERM"
        for role in self.roles:
            outcome.roles[role.name] = {"kind": role.kind, "exit_code": role.proc.returncode}


def synced_devices(c: Campaign) -> list[SyncedDevice]:
    """Every device whose clock the rig aligns, with the adapter that exchanges with it."""
    out = [SyncedDevice(device_name(v.name), v.name, v.device_id) for v in c.venues]
    out.append(SyncedDevice(device_name(c.broker.name), c.broker.name, c.broker.device_id))
    return out


def device_name(adapter: str) -> str:
    """Role name of the device behind adapter ``adapter``."""
    return f"{adapter}-device"
