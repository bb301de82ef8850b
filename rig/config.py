"""Campaign configuration: load a campaign TOML, validate every key, resolve defaults.

Configuration describes the station (devices, links, rates, solver settings), never test flow,
and is passed explicitly to whatever needs it. Every error is a
:class:`~arbsphere.errors.ConfigError` naming the file, the dotted key and the offending value;
unknown keys are errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbsphere.adapters.backends import WIRING_PTY, WIRING_UDP, backend
from arbsphere.adapters.serial_settings import FLOW_CONTROLS, PARITIES, SERIAL_KEYS
from arbsphere.adapters.timestamp_mode import (
    DEFAULT_HW_CONFIG,
    DEFAULT_TIMESTAMPING,
    HW_CONFIG_MODES,
    TIMESTAMPING_MODES,
)
from arbsphere.clocksync.settings import ClockSyncSettings
from arbsphere.contracts import SchemaRegistry, check_compatibility, default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.errors import ConfigError
from arbsphere.privacy.settings import PrivacyConfig
from arbsphere.security.settings import SecurityConfig

DEFAULT_CAMPAIGN = Path("campaigns/loopback.toml")
#: venue ids 0..MAX_VENUES-1: a feed device's default id (10 + venue id) stays below the
#: broker device's 200 and a u64 participants bitmap holds every venue. Secure aggregation
#: allows fewer (``arbsphere.privacy.secure_rounds.MAX_MASKED_VENUES``), checked at load.
MAX_VENUES = 64
#: default device ids (message header ``device_id``): a feed device's is this + its venue id
#: (``[venues.<name>] device_id`` overrides it), the broker device's ``BROKER_DEVICE_ID``
#: (``[broker] device_id``); the ids of one campaign must differ (checked at load)
VENUE_DEVICE_ID_BASE = 10
BROKER_DEVICE_ID = 200
MAX_DEVICE_ID = 2**32 - 1
#: ``[market] n_assets``: the assets every venue quotes (one per tick, in round-robin)
MAX_ASSETS = 256


@dataclass(frozen=True)
class ClockConfig:
    """An emulated device clock relative to the rig timebase."""

    offset_ns: int = 0
    drift_ppm: float = 0.0
    #: (seconds after the schedule start, step in ns): the device clock jumps then
    steps: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class CalibrationLimits:
    """``[calibration]``: the largest errors ``arbsphere calibrate`` accepts."""

    offset_us: float = 10.0  # p99 |offset error| once locked
    drift_ppm: float = 0.5
    drift_window_s: float = 10.0  # the drift is judged after a window at least this long
    delay_rel: float = 0.02  # one-way delay: relative limit ...
    delay_abs_us: float = 10.0  # ... or this, whichever is larger
    step_detect_s: float = 1.0


#: the shortest recorder on/off period of ``journal.interleave_ms``
MIN_INTERLEAVE_MS = 200.0


@dataclass(frozen=True)
class JournalConfig:
    """``[journal]``: the coordinator's replay journal (see arbsphere/journal)."""

    enabled: bool = True
    #: "none" | "interval" | "every_record" (what each promises: arbsphere/journal/writer.py)
    durability: str = "interval"
    sync_interval_ms: float = 100.0  # interval mode: fsync at least this often ...
    sync_every_records: int = 10_000  # ... or after this many records, whichever first
    segment_mb: float = 64.0
    #: benchmark mode, 0 = off: the recorder is on during even periods of this many ms of the
    #: coordinator's clock and off during odd ones, so recorder on and off are measured side by
    #: side in one run under the same host conditions (``benchmarks/bench_recorder.py``). Such a
    #: journal misses the off periods' inputs: replay refuses it. Central coordination only.
    interleave_ms: float = 0.0


@dataclass(frozen=True)
class ClockSyncConfig:
    """The rig's clock-sync exchange with every device (``[clock_sync]``)."""

    #: SYNC exchanges per second per device; 0 = none (device times then stay unsynchronised)
    rate_hz: float = 32.0
    settings: ClockSyncSettings = field(default_factory=ClockSyncSettings)


@dataclass(frozen=True)
class VenueConfig:
    name: str
    venue_id: int
    link: str  # a link registered in arbsphere/adapters/backends.py ("udp", "serial")
    device: str = "emulator"  # "emulator" | "hardware"
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # udp: 0 = ephemeral
    port: str = "pty"  # serial: device path, or "pty" for an emulator pty the rig allocates
    baudrate: int = 921_600
    flow_control: str = "none"  # serial: "none" | "rtscts" | "xonxoff" | "dsrdtr"
    parity: str = "none"  # serial: "none" | "even" | "odd"
    stopbits: int = 1  # serial: 1 | 2
    low_latency: bool = True  # serial: ask for ASYNC_LOW_LATENCY (refusal reported, not fatal)
    fee_bp: float = 0.5
    gamma: float = 1e-4  # impact per lot^2, in price units
    position_limit_lots: int = 100
    ticks_per_datagram: int = 1
    clock: ClockConfig = ClockConfig()
    schemas: Mapping[str, int] = field(default_factory=dict)
    #: emulated link impairment ``{to_rig: {...}, to_device: {...}}`` (validated), or None
    impairment: Mapping[str, Any] | None = None
    #: emulator only: (from, to) seconds after the schedule's start the venue stops quoting
    outage_s: tuple[float, float] | None = None
    #: udp: "software", "hardware" or "auto" stamps; "keep" or "set" the NIC's stamp setting
    timestamping: str = DEFAULT_TIMESTAMPING
    hw_config: str = DEFAULT_HW_CONFIG
    #: the feed device's id in message headers (< 0: the default, VENUE_DEVICE_ID_BASE +
    #: venue_id)
    device_id: int = -1

    def __post_init__(self) -> None:
        if self.device_id < 0:
            object.__setattr__(self, "device_id", VENUE_DEVICE_ID_BASE + self.venue_id)


@dataclass(frozen=True)
class BrokerConfig:
    name: str = "broker"
    link: str = "udp"  # a link registered in arbsphere/adapters/backends.py
    device: str = "emulator"
    device_host: str = "127.0.0.1"  # udp
    device_port: int = 0  # udp, emulator: 0 = the emulator picks and reports its port
    port: str = "pty"  # serial: device path, or "pty" for an emulator pty the rig allocates
    baudrate: int = 921_600
    flow_control: str = "none"  # serial, as on a venue
    parity: str = "none"
    stopbits: int = 1
    low_latency: bool = True
    fill_mode: str = "full"
    #: fill_mode "mixed": {reject, partial, late, late_ms, seed} (see emulators/fill_policy.py)
    fills: Mapping[str, Any] = field(default_factory=dict)
    #: test rigging: corrupt the broker adapter's plan replica every k-th TRADE delta (0: off)
    replica_fault_every: int = 0
    clock: ClockConfig = ClockConfig()
    schemas: Mapping[str, int] = field(default_factory=dict)
    #: emulated link impairment (a loopback UDP impairment relay between adapter and device)
    impairment: Mapping[str, Any] | None = None
    #: as :attr:`VenueConfig.timestamping` / :attr:`VenueConfig.hw_config`
    timestamping: str = DEFAULT_TIMESTAMPING
    hw_config: str = DEFAULT_HW_CONFIG
    #: the broker device's id in message headers
    device_id: int = BROKER_DEVICE_ID
    #: udp: the address the rig's broker socket binds ("": the local address the kernel routes
    #: to ``device_host`` from, resolved when the run starts)
    bind_host: str = ""


@dataclass(frozen=True)
class CoordinatorConfig:
    budget_us: float = 200.0  # per-tick latency budget for coordination
    ns_per_iteration: float = 50.0  # nominal cost used to turn the budget into max iterations
    #: "federated": venues keep their problems, rounds over ZeroMQ; "central": in process
    coordination: str = "federated"
    #: federated: "price" (the coordinator proposes prices, venues answer their summed best
    #: responses; arbsphere/price_protocol.py) or "admm" (exchange-ADMM rounds)
    protocol: str = "price"
    ns_per_round: float = 100_000.0  # nominal cost of a federated round (budget -> max rounds)
    round_timeout_ms: int = 1000  # a venue silent this long aborts the solve
    #: federated: a venue without a quote for this long is out of the market (frozen at its
    #: lots, the others hedge around it) until it quotes again
    stale_after_ms: float = 250.0
    #: federated: a venue that let a round time out is held out like a stale one (no rounds:
    #: a stall of round_timeout_ms per solve otherwise) and probed again after this long
    unresponsive_retry_ms: float = 5000.0
    min_delta_lots: int = 1
    #: messages drained per wake-up before one solve on the newest state (1: solve every tick)
    max_batch: int = 64
    admm: AdmmSettings = field(default_factory=AdmmSettings)


@dataclass(frozen=True)
class MarketSettings:
    """Overrides of the synthetic market (see firmware_interfaces.emulators.market)."""

    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Campaign:
    source: str
    name: str
    contract_graph: str
    duration_s: float
    rate_hz: float
    seed: int
    interval_s: float
    results_dir: str
    drain_s: float
    venues: tuple[VenueConfig, ...]
    broker: BrokerConfig
    coordinator: CoordinatorConfig
    market: MarketSettings
    clock_sync: ClockSyncConfig = ClockSyncConfig()
    #: traffic before the measured window: device clocks lock and caches warm under the same
    #: load as the measurement; its ticks are excluded from the KPIs (and counted)
    warmup_s: float = 5.0
    #: a rate sweep: every rate is run in turn (``rate_hz`` is the first); () = one rate
    rates_hz: tuple[float, ...] = ()
    calibration: CalibrationLimits = CalibrationLimits()
    journal: JournalConfig = JournalConfig()
    security: SecurityConfig = field(default_factory=SecurityConfig)

    @property
    def n_ticks(self) -> int:
        """Ticks per venue the feeds send: warm-up and measured window."""
        return round((self.warmup_s + self.duration_s) * self.rate_hz)

    @property
    def n_assets(self) -> int:
        """Assets every venue quotes (``[market] n_assets``, default 1): each tick of a venue
        quotes one of them, in round-robin, so ``rate_hz`` stays ticks/s per venue."""
        return int(self.market.values.get("n_assets", 1))

    def resolved(self) -> dict[str, Any]:
        """The fully resolved configuration as plain JSON-able data (for the manifest)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- loading --------------------------------------------------------------------------------------
def load_campaign(path: str | Path) -> Campaign:
    """Load and validate a campaign file. Raises ConfigError naming file and key."""
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("campaign file not found", file=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read campaign file: {exc}", file=source) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return parse_campaign(data, source)


def parse_campaign(data: Mapping[str, Any], source: str) -> Campaign:
    """Validate an already parsed campaign TOML (``source`` names it in errors). The tables
    are checked in a fixed order, then the campaign as a whole (graph, security), so a file
    with several errors always reports the same one first."""
    r = _Reader(data, source, "")
    r.only(
        {"campaign", "market", "coordinator", "venues", "broker", "clock_sync", "calibration",
         "journal", "security"}
    )  # fmt: skip
    registry = default_registry()
    head = _campaign_table(r.table("campaign"), registry)
    venues_t = r.table("venues")
    venues = _venues(venues_t)
    broker = _broker(r.table("broker", optional=True))
    _check_device_ids(r, venues, broker)
    coordinator = _coordinator(r.table("coordinator", optional=True))
    clock_sync = _clock_sync(r.table("clock_sync", optional=True))
    market_t = r.table("market", optional=True)
    market = MarketSettings(dict(market_t.data))
    _check_market(market, market_t, head.rates_hz or (head.rate_hz,), len(venues))
    security_t = r.table("security", optional=True)
    security = _security(security_t)
    _check_masked_venue_count(venues_t, venues, coordinator, security)
    _check_graph(r, venues_t, registry, head.contract_graph, venues, broker, coordinator)
    if coordinator.coordination == "federated":
        solution_v = registry.graph(head.contract_graph).coordinator["LocalSolution"]
        _check_secure_aggregation(
            security_t, security, coordinator, len(venues), solution_v, head.contract_graph
        )
        _check_masked_position_limits(venues_t, venues, security)
    return Campaign(
        source=source,
        name=head.name,
        contract_graph=head.contract_graph,
        duration_s=head.duration_s,
        rate_hz=head.rate_hz,
        seed=head.seed,
        interval_s=head.interval_s,
        results_dir=head.results_dir,
        drain_s=head.drain_s,
        warmup_s=head.warmup_s,
        venues=tuple(sorted(venues, key=lambda v: v.venue_id)),
        broker=broker,
        coordinator=coordinator,
        market=market,
        clock_sync=clock_sync,
        rates_hz=head.rates_hz,
        calibration=_calibration(r.table("calibration", optional=True)),
        journal=_journal(r.table("journal", optional=True), coordinator.coordination),
        security=security,
    )


@dataclass(frozen=True)
class _CampaignTable:
    """The ``[campaign]`` table's values (the run's identity, length, rate and schedule)."""

    name: str
    contract_graph: str
    duration_s: float
    rate_hz: float
    rates_hz: tuple[float, ...]
    seed: int
    interval_s: float
    results_dir: str
    drain_s: float
    warmup_s: float


def _campaign_table(c: _Reader, registry: SchemaRegistry) -> _CampaignTable:
    c.only(
        {
            "name",
            "contract_graph",
            "duration_s",
            "rate_hz",
            "seed",
            "interval_s",
            "results_dir",
            "drain_s",
            "warmup_s",
        }
    )
    name = c.string("name")
    if not name.replace("-", "").replace("_", "").isalnum():
        c.fail("name", name, "must be letters, digits, '-' or '_' (it names a directory)")
    graph = c.string("contract_graph", "toyPair")
    if graph not in registry.graphs:
        c.fail("contract_graph", graph, f"unknown graph; registry has {sorted(registry.graphs)}")
    duration = c.number("duration_s", 20.0, lo=0.1, hi=86_400)
    rate, rates = _rates(c)
    return _CampaignTable(
        name=name,
        contract_graph=graph,
        duration_s=duration,
        rate_hz=rate,
        rates_hz=rates,
        seed=c.integer("seed", 7, lo=0),
        interval_s=c.number("interval_s", 1.0, lo=0.01, hi=3600),
        results_dir=c.string("results_dir", "results"),
        drain_s=c.number("drain_s", 0.5, lo=0.0, hi=60),
        warmup_s=c.number("warmup_s", 5.0, lo=0.0, hi=600),
    )


def _rates(c: _Reader) -> tuple[float, tuple[float, ...]]:
    """``rate_hz``: one rate, or a list of them (a rate sweep). Returns the rate the campaign
    runs at (a sweep's first) and the sweep's rates (() for one rate)."""
    raw = c.data.get("rate_hz")
    if not isinstance(raw, list):
        return c.number("rate_hz", 2000.0, lo=1.0, hi=200_000), ()
    if not 2 <= len(raw) <= 32:
        c.fail("rate_hz", raw, "a rate sweep lists 2 to 32 rates")
    sweep = _Reader({f"rate_hz[{i}]": v for i, v in enumerate(raw)}, c.source, c.prefix)
    rates = tuple(sweep.number(f"rate_hz[{i}]", lo=1.0, hi=200_000) for i in range(len(raw)))
    if len(set(rates)) != len(rates):
        c.fail("rate_hz", raw, "rates of a sweep must be distinct")
    return rates[0], rates


def _venues(venues_t: _Reader) -> list[VenueConfig]:
    """``[venues.<name>]``, in name order: at least two, with ids 0..N-1."""
    venues: list[VenueConfig] = []
    seen_ids: set[int] = set()
    for vname in sorted(venues_t.data):
        v = venues_t.table(vname)
        venues.append(_venue(vname, v))
        if venues[-1].venue_id in seen_ids:
            v.fail("venue_id", venues[-1].venue_id, "duplicate venue_id")
        seen_ids.add(venues[-1].venue_id)
    if len(venues) < 2:
        venues_t.fail("", len(venues), "a campaign needs at least two venues")
    ids = sorted(seen_ids)
    if ids != list(range(len(ids))):
        venues_t.fail("venue_id", ids, "venue ids must be 0..N-1")
    return venues


def _check_device_ids(r: _Reader, venues: list[VenueConfig], broker: BrokerConfig) -> None:
    """Every device of the campaign has its own id: the rig addresses its clock-sync and start
    messages by it and aligns each device's clock by it."""
    keys = [(v.device_id, f"venues.{v.name}.device_id") for v in venues]
    keys.append((broker.device_id, "broker.device_id"))
    seen: dict[int, str] = {}
    for device_id, key in keys:
        if device_id in seen:
            raise ConfigError(
                f"device id {device_id} is also {seen[device_id]}'s (defaults: feed "
                f"{VENUE_DEVICE_ID_BASE} + venue_id, broker {BROKER_DEVICE_ID}); give each "
                "device its own",
                file=r.source, key=key,
            )  # fmt: skip
        seen[device_id] = key


def _check_masked_venue_count(
    venues_t: _Reader, venues: list[VenueConfig], k: CoordinatorConfig, s: SecurityConfig
) -> None:
    """Federated rounds under secure aggregation sum at most MAX_MASKED_VENUES venues."""
    if k.coordination != "federated" or not s.secure_aggregation:
        return
    from arbsphere.privacy.secure_rounds import MAX_MASKED_VENUES

    if len(venues) > MAX_MASKED_VENUES:
        venues_t.fail(
            "", sorted(v.name for v in venues),
            f"{len(venues)} venues, but secure aggregation ([security] secure_aggregation,"
            f" on by default) sums at most {MAX_MASKED_VENUES} venues' masked shares "
            "without wrapping its fixed point (arbsphere/privacy/secure_rounds.py "
            "MAX_MASKED_VENUES); use fewer venues, or set [security] secure_aggregation = "
            "false with contract_graph = \"toyPairClear\"",
        )  # fmt: skip


def _check_graph(
    r: _Reader, venues_t: _Reader, registry: SchemaRegistry, graph: str, venues: list[VenueConfig],
    broker: BrokerConfig, k: CoordinatorConfig,
) -> None:  # fmt: skip
    """The contract graph fits the station: the schema versions each role declares, the
    coordinator's input for its coordination, and every venue a venue adapter of the graph."""
    declared: dict[str, Mapping[str, int]] = {}
    for venue in venues:
        if venue.schemas:
            declared[venue.name] = venue.schemas
    if broker.schemas:
        declared[broker.name] = broker.schemas
    names = [v.name for v in venues]
    check_compatibility(registry, graph, declared, source=r.source, venues=names)
    needs = "LocalSolution" if k.coordination == "federated" else "LocalArbProblem"
    if needs not in registry.graph(graph).coordinator:
        r.table("coordinator", optional=True).fail(
            "coordination", k.coordination,
            f"graph '{graph}' has no {needs} for the coordinator (use a graph that has, e.g. "
            f"{'toyPair' if needs == 'LocalSolution' else 'toyPairCentral'})",
        )  # fmt: skip
    graph_roles = registry.graph(graph).roles(names)
    for venue in venues:
        role = graph_roles.get(venue.name)
        if role is None or role.kind != "venue_feed":
            venues_t.fail(
                venue.name,
                venue.name,
                f"not a venue adapter of graph '{graph}' ({sorted(graph_roles)})",
            )


def _check_masked_position_limits(
    venues_t: _Reader, venues: list[VenueConfig], s: SecurityConfig
) -> None:
    """Secure aggregation's fixed point holds positions up to X_MAX_LOTS."""
    if not s.secure_aggregation:
        return
    from arbsphere.privacy.secure_rounds import X_MAX_LOTS

    for venue in venues:
        if venue.position_limit_lots > X_MAX_LOTS:
            venues_t.table(venue.name).fail(
                "position_limit_lots", venue.position_limit_lots,
                f"secure aggregation masks |x| <= {X_MAX_LOTS} lots (its fixed point); "
                "lower the limit or set [security] secure_aggregation = false",
            )  # fmt: skip


def _check_secure_aggregation(
    r: _Reader, s: SecurityConfig, k: CoordinatorConfig, n_venues: int, solution_v: int,
    graph: str,
) -> None:  # fmt: skip
    """Masked rounds need alpha = 1 (the exchange step from sums), at most
    MAX_MASKED_VENUES venues (fixed-point headroom) and a graph speaking LocalSolution v2."""
    from arbsphere.privacy.secure_rounds import MAX_MASKED_VENUES

    on = s.secure_aggregation
    if on and k.admm.alpha != 1.0:
        r.fail("secure_aggregation", on, f"needs [coordinator.admm] alpha = 1 (got "
               f"{k.admm.alpha!r}): with over-relaxation the exchange step needs every "
               "venue's z, not only sums; set alpha = 1 or secure_aggregation = false")  # fmt: skip
    if on and n_venues > MAX_MASKED_VENUES:
        r.fail("secure_aggregation", on, f"sums at most {MAX_MASKED_VENUES} venues without "
               f"wrapping its fixed point, the campaign has {n_venues}")  # fmt: skip
    if solution_v != (2 if on else 1):
        r.fail("secure_aggregation", on, f"graph '{graph}' speaks LocalSolution v{solution_v}"
               f" ({'clear x' if solution_v == 1 else 'masked shares'}); use "
               f"{'toyPair' if on else 'toyPairClear'}")  # fmt: skip


def _journal(r: _Reader, coordination: str) -> JournalConfig:
    r.only({f.name for f in dataclasses.fields(JournalConfig)})
    d = JournalConfig()
    enabled = r.data.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        r.fail("enabled", enabled, "must be true or false")
    interleave = r.number("interleave_ms", d.interleave_ms, lo=0, hi=3_600_000)
    if 0 < interleave < MIN_INTERLEAVE_MS:
        r.fail("interleave_ms", interleave, f"must be 0 (off) or at least {MIN_INTERLEAVE_MS}"
               " (the writer drains every 50 ms: shorter periods blur on and off)")  # fmt: skip
    if interleave and coordination != "central":
        r.fail("interleave_ms", interleave, "needs coordinator.coordination = 'central' (the "
               "federated rounds are journaled by another path)")  # fmt: skip
    if interleave and not enabled:
        r.fail("interleave_ms", interleave, "needs the journal enabled")
    return JournalConfig(
        interleave_ms=interleave,
        enabled=enabled,
        durability=r.choice("durability", ("none", "interval", "every_record"), d.durability),
        sync_interval_ms=r.number("sync_interval_ms", d.sync_interval_ms, lo=0.1, hi=3_600_000),
        sync_every_records=r.integer("sync_every_records", d.sync_every_records, lo=1),
        segment_mb=r.number("segment_mb", d.segment_mb, lo=0.01, hi=1024),  # 1 GiB max
    )


def _security(r: _Reader) -> SecurityConfig:
    r.only({f.name for f in dataclasses.fields(SecurityConfig)})
    d = SecurityConfig()
    flags = {}
    for key in ("tags", "attest_plan_deltas", "secure_aggregation"):
        value = r.data.get(key, getattr(d, key))
        if not isinstance(value, bool):
            r.fail(key, value, "must be true or false")
        flags[key] = value
    transport = r.choice("transport", ("curve", "plaintext"), d.transport)
    return SecurityConfig(
        transport=transport,
        tags=flags["tags"],
        attest_plan_deltas=flags["attest_plan_deltas"],
        credential_validity_s=r.number(
            "credential_validity_s", d.credential_validity_s, lo=1.0, hi=86_400
        ),
        replay_window=r.integer("replay_window", d.replay_window, lo=1, hi=1 << 20),
        max_past_ms=r.number("max_past_ms", d.max_past_ms, lo=0.001, hi=3_600_000),
        max_future_ms=r.number("max_future_ms", d.max_future_ms, lo=0.001, hi=3_600_000),
        checkpoint_interval_s=r.number(
            "checkpoint_interval_s", d.checkpoint_interval_s, lo=0.1, hi=3600
        ),
        privacy=_privacy(r.table("privacy", optional=True)),
        secure_aggregation=flags["secure_aggregation"],
    )


def _privacy(r: _Reader) -> PrivacyConfig:
    r.only({f.name for f in dataclasses.fields(PrivacyConfig)})
    d = PrivacyConfig()
    enabled = r.data.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        r.fail("enabled", enabled, "must be true or false")
    mechanism = r.choice("mechanism", ("laplace", "gaussian"), d.mechanism)
    eps_total = r.number("epsilon_total", d.epsilon_total, lo=0.0, hi=1e6)
    eps_per = r.number("epsilon_per_release", d.epsilon_per_release, lo=0.0, hi=1e6)
    for key, value in (("epsilon_total", eps_total), ("epsilon_per_release", eps_per)):
        if not value > 0:
            r.fail(key, value, "must be > 0")
    if eps_per > eps_total:
        r.fail("epsilon_per_release", eps_per, f"exceeds epsilon_total {eps_total!r}")
    delta = r.number("delta_total", d.delta_total, lo=0.0, hi=1.0)
    if not delta < 1.0:
        r.fail("delta_total", delta, "must be < 1")
    if mechanism == "gaussian":
        if not eps_per < 1.0:
            r.fail(
                "epsilon_per_release", eps_per,
                "the classical Gaussian calibration needs epsilon < 1 per release",
            )  # fmt: skip
        if not 0.0 < delta < 1.0:
            r.fail("delta_total", delta, "the Gaussian mechanism needs 0 < delta_total < 1")
    liquidity = None
    if "liquidity_sensitivity_lots" in r.data:
        liquidity = r.number("liquidity_sensitivity_lots", lo=0.0, hi=1e9)
        if not liquidity > 0:
            r.fail("liquidity_sensitivity_lots", liquidity, "must be > 0")
    correlation = r.number("correlation_sensitivity", d.correlation_sensitivity, lo=0.0, hi=2.0)
    if not correlation > 0:
        r.fail("correlation_sensitivity", correlation, "must be > 0")
    return PrivacyConfig(
        enabled=enabled,
        mechanism=mechanism,
        epsilon_total=eps_total,
        epsilon_per_release=eps_per,
        delta_total=delta,
        release_interval_ms=r.number(
            "release_interval_ms", d.release_interval_ms, lo=0.001, hi=86_400_000
        ),
        liquidity_sensitivity_lots=liquidity,
        correlation_sensitivity=correlation,
        seed=r.integer("seed", lo=0) if "seed" in r.data else None,
    )


def _calibration(r: _Reader) -> CalibrationLimits:
    r.only({f.name for f in dataclasses.fields(CalibrationLimits)})
    d = CalibrationLimits()
    return CalibrationLimits(
        offset_us=r.number("offset_us", d.offset_us, lo=0.0, hi=1e6),
        drift_ppm=r.number("drift_ppm", d.drift_ppm, lo=0.0, hi=1e3),
        drift_window_s=r.number("drift_window_s", d.drift_window_s, lo=0.0, hi=3600),
        delay_rel=r.number("delay_rel", d.delay_rel, lo=0.0, hi=1.0),
        delay_abs_us=r.number("delay_abs_us", d.delay_abs_us, lo=0.0, hi=1e6),
        step_detect_s=r.number("step_detect_s", d.step_detect_s, lo=0.0, hi=3600),
    )


def _broker_clock(r: _Reader) -> ClockConfig:
    clock = _clock(r)
    if clock.steps:
        r.fail("steps", [list(s) for s in clock.steps],
               "clock steps are supported on feed devices only (the broker device starts "
               "before the schedule time they are relative to)")  # fmt: skip
    return clock


def _clock(r: _Reader) -> ClockConfig:
    r.only({"offset_ns", "drift_ppm", "steps"})
    raw_steps = r.data.get("steps", [])
    steps: list[tuple[float, int]] = []
    if not isinstance(raw_steps, list):
        r.fail("steps", raw_steps, "must be a list of [at_s, delta_ns] pairs")
    for i, item in enumerate(raw_steps):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], int | float)
            and not isinstance(item[0], bool)
            and item[0] >= 0
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and abs(item[1]) <= 1_000_000_000
        )
        if not ok:
            r.fail(f"steps[{i}]", item, "must be [at_s >= 0, delta_ns integer within ±1 s]")
        steps.append((float(item[0]), int(item[1])))
    return ClockConfig(
        offset_ns=r.integer("offset_ns", 0, lo=-1_000_000_000, hi=1_000_000_000),
        drift_ppm=r.number("drift_ppm", 0.0, lo=-200.0, hi=200.0),
        steps=tuple(sorted(steps)),
    )


def _schemas(r: _Reader) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in sorted(r.data):
        out[key] = r.integer(key, lo=1)
    return out


def _venue(name: str, r: _Reader) -> VenueConfig:
    r.only(
        {
            "venue_id",
            "link",
            "device",
            "bind_host",
            "bind_port",
            "port",
            "baudrate",
            *SERIAL_KEYS,
            "fee_bp",
            "gamma",
            "position_limit_lots",
            "ticks_per_datagram",
            "clock",
            "schemas",
            "impairment",
            "outage_s",
            "timestamping",
            "hw_config",
            "device_id",
        }
    )
    device = r.choice("device", ("emulator", "hardware"), "emulator")
    link = _link(r, "feed", device)
    if device == "hardware":
        _refuse_emulator_keys(r, ("outage_s", "clock", "impairment"))
        if link == "udp" and r.data.get("bind_port", 0) == 0:
            r.fail("bind_port", r.data.get("bind_port", 0), "a hardware feed sends to a fixed "
                   "port: set the rig's bind_port (0 picks an ephemeral one)")  # fmt: skip
    outage: tuple[float, float] | None = None
    if "outage_s" in r.data:
        raw = r.data["outage_s"]
        ok = isinstance(raw, list) and len(raw) == 2
        ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        if not ok or not 0 <= raw[0] < raw[1]:
            r.fail("outage_s", raw, "must be [from, to] seconds with 0 <= from < to")
        outage = (float(raw[0]), float(raw[1]))
    venue_id = r.integer("venue_id", lo=0, hi=MAX_VENUES - 1)
    return VenueConfig(
        name=name,
        venue_id=venue_id,
        device_id=r.integer("device_id", VENUE_DEVICE_ID_BASE + venue_id, lo=0, hi=MAX_DEVICE_ID),
        link=link,
        device=device,
        bind_host=r.string("bind_host", "127.0.0.1"),
        bind_port=r.integer("bind_port", 0, lo=0, hi=65535),
        port=r.string("port", "pty"),
        baudrate=r.integer("baudrate", 921_600, lo=1200),
        **_serial(r, link),
        fee_bp=r.number("fee_bp", 0.5, lo=0.0, hi=1000.0),
        gamma=r.number("gamma", 1e-4, lo=1e-12, hi=1e6),
        position_limit_lots=r.integer("position_limit_lots", 100, lo=0, hi=10**9),
        ticks_per_datagram=r.integer("ticks_per_datagram", 1, lo=1, hi=64),
        clock=_clock(r.table("clock", optional=True)),
        schemas=_schemas(r.table("schemas", optional=True)),
        impairment=_impairment(r, "impairment"),
        outage_s=outage,
        **_stamping(r, link),
    )


def _stamping(r: _Reader, link: str) -> dict[str, Any]:
    """``timestamping`` and ``hw_config`` (arbsphere/adapters/timestamp_mode.py): kernel and
    hardware stamps are the UDP link's; another link takes only the defaults' stamps."""
    mode = r.choice("timestamping", TIMESTAMPING_MODES, DEFAULT_TIMESTAMPING)
    hw_config = r.choice("hw_config", HW_CONFIG_MODES, DEFAULT_HW_CONFIG)
    if link != "udp":
        if mode == "hardware":
            r.fail("timestamping", mode, f"hardware stamps are a UDP link's; link {link!r} "
                   "stamps in user space")  # fmt: skip
        if hw_config == "set":
            r.fail("hw_config", hw_config, f"only a UDP link sets a NIC's hardware stamping; "
                   f"link is {link!r}")  # fmt: skip
    return {"timestamping": mode, "hw_config": hw_config}


def _refuse_emulator_keys(r: _Reader, keys: tuple[str, ...]) -> None:
    """A hardware device's table may not carry keys only an emulator acts on."""
    for key in keys:
        if key in r.data:
            r.fail(key, r.data[key], 'only an emulated device has this; the device is "hardware"')


def _link(r: _Reader, role: str, device: str, default: str | None = None) -> str:
    """``link``: a registered backend that can serve ``role`` ("feed" or "broker"), with an
    emulator for it when ``device`` is "emulator"; on a pty-wired link (serial) ``port`` is
    "pty" for an emulated device and the port's path for a hardware one."""
    name = r.string("link", default)
    found = backend(name, role=role, file=r.source, key=r.key("link"))
    if device == "emulator" and found.emulator(role) is None:
        r.fail("link", name, f'link {name!r} has no {role} emulator; use device = "hardware"')
    port = r.data.get("port", "pty")
    if found.wiring == WIRING_PTY and (port == "pty") != (device == "emulator"):
        why = 'the rig allocates (port = "pty"); a hardware one needs its port\'s path'
        r.fail("port", port, f"on link {name!r} an emulated device is wired through a pty {why}")
    return name


def _serial(r: _Reader, link: str) -> dict[str, Any]:
    """A serial link's port settings (``flow_control``, ``parity``, ``stopbits``,
    ``low_latency``); refused on a link without a serial port (UDP)."""
    takes = {f.name for f in dataclasses.fields(backend(link).feed_config)}
    for key in SERIAL_KEYS:
        if key in r.data and key not in takes:
            r.fail(key, r.data[key], f"a serial port setting; link {link!r} has no serial port")
    return {
        "flow_control": r.choice("flow_control", FLOW_CONTROLS, "none"),
        "parity": r.choice("parity", PARITIES, "none"),
        "stopbits": r.integer("stopbits", 1, lo=1, hi=2),
        "low_latency": r.boolean("low_latency", True),
    }


def serial_options(device: VenueConfig | BrokerConfig) -> dict[str, Any]:
    """A device's serial port settings, as :class:`~arbsphere.adapters.links.LinkParams`
    keyword arguments (the same names in the campaign, the config and the link settings)."""
    return {key: getattr(device, key) for key in SERIAL_KEYS}


def _impairment(r: _Reader, key: str) -> dict[str, Any] | None:
    """A link impairment table, validated by the emulators' own reader (errors name the key)."""
    if key not in r.data:
        return None
    from arbsphere.firmware_interfaces.emulators.impairment import LinkImpairment

    table = r.table(key)
    LinkImpairment.from_table(dict(table.data), r.source, r.key(key))
    return _jsonable(dict(table.data))


def _clock_sync(r: _Reader) -> ClockSyncConfig:
    names = {f.name for f in dataclasses.fields(ClockSyncSettings)}
    r.only({"rate_hz", *names})
    rate = r.number("rate_hz", 32.0, lo=0.0, hi=1000.0)
    values = {k: r.data[k] for k in sorted(names) if k in r.data}
    try:
        settings = ClockSyncSettings(**values)
    except ConfigError as exc:
        raise ConfigError(
            str(exc).removeprefix(f"key '{exc.key}': "), file=r.source, key=r.key(exc.key or "")
        ) from exc
    return ClockSyncConfig(rate_hz=rate, settings=settings)


def _fills(r: _Reader) -> dict[str, Any]:
    """``[broker.fills]``: the emulated broker's fill policy, checked as the emulator will."""
    from arbsphere.firmware_interfaces.emulators.fill_policy import FillPolicy

    f = r.table("fills", optional=True)
    f.only({"reject", "partial", "late", "late_ms", "seed"})
    values: dict[str, Any] = {
        "reject": f.number("reject", 0.0, lo=0.0, hi=1.0),
        "partial": f.number("partial", 0.0, lo=0.0, hi=1.0),
        "late": f.number("late", 0.0, lo=0.0, hi=1.0),
        "late_ms": f.number("late_ms", 0.0, lo=0.0, hi=60_000.0),
        "seed": f.integer("seed", 0, lo=0),
    }
    try:
        FillPolicy(mode=str(r.data.get("fill_mode", "full")), **values)
    except ValueError as exc:
        f.fail("", dict(f.data), str(exc))
    return values if f.data else {}


def _broker(r: _Reader) -> BrokerConfig:
    r.only(
        {
            "name",
            "link",
            "device",
            "device_host",
            "device_port",
            "port",
            "baudrate",
            *SERIAL_KEYS,
            "fill_mode",
            "fills",
            "replica_fault_every",
            "clock",
            "schemas",
            "impairment",
            "timestamping",
            "hw_config",
            "device_id",
            "bind_host",
        }
    )
    device = r.choice("device", ("emulator", "hardware"), "emulator")
    link = _link(r, "broker", device, "udp")
    if "bind_host" in r.data and backend(link, role="broker").wiring != WIRING_UDP:
        r.fail("bind_host", r.data["bind_host"], f"the rig's socket address of a UDP broker "
               f"link; link {link!r} has none")  # fmt: skip
    if device == "hardware":
        _refuse_emulator_keys(r, ("clock", "fill_mode", "fills"))
        if link == "udp" and r.data.get("device_port", 0) == 0:
            r.fail("device_port", r.data.get("device_port", 0), "a hardware broker listens on "
                   "a fixed port: set device_port (0 means the emulator picks one)")  # fmt: skip
    if "impairment" in r.data and backend(link, role="broker").wiring != WIRING_UDP:
        r.fail("impairment", dict(r.table("impairment").data), f"the broker's impairment is a "
               f"UDP relay between adapter and device; link {link!r} has none (use link = "
               "\"udp\")")  # fmt: skip
    return BrokerConfig(
        name=r.string("name", "broker"),
        link=link,
        device=device,
        device_host=r.string("device_host", "127.0.0.1"),
        device_port=r.integer("device_port", 0, lo=0, hi=65535),
        port=r.string("port", "pty"),
        baudrate=r.integer("baudrate", 921_600, lo=1200),
        **_serial(r, link),
        fill_mode=r.choice("fill_mode", ("full", "mixed"), "full"),
        fills=_fills(r),
        replica_fault_every=r.integer("replica_fault_every", 0, lo=0),
        clock=_broker_clock(r.table("clock", optional=True)),
        schemas=_schemas(r.table("schemas", optional=True)),
        impairment=_impairment(r, "impairment"),
        **_stamping(r, link),
        device_id=r.integer("device_id", BROKER_DEVICE_ID, lo=0, hi=MAX_DEVICE_ID),
        bind_host=r.string("bind_host", "") if "bind_host" in r.data else "",
    )


def _coordinator(r: _Reader) -> CoordinatorConfig:
    r.only({"budget_us", "ns_per_iteration", "min_delta_lots", "max_batch", "admm",
            "coordination", "protocol", "ns_per_round", "round_timeout_ms", "stale_after_ms",
            "unresponsive_retry_ms"})  # fmt: skip
    coordination = r.string("coordination", "federated")
    if coordination not in ("federated", "central"):
        r.fail("coordination", coordination, "must be 'federated' or 'central'")
    a = r.table("admm", optional=True)
    a.only(
        {"rho0", "alpha", "eps_abs", "eps_rel", "max_iter", "adapt_every", "mu", "tau", "keep_rho"}
    )
    admm = AdmmSettings(
        rho0=a.number("rho0", 1e-3, lo=1e-9, hi=1e9),
        alpha=a.number("alpha", 1.0, lo=1.0, hi=1.8),
        eps_abs=a.number("eps_abs", 1e-12, lo=0.0, hi=1.0),
        eps_rel=a.number("eps_rel", 1e-12, lo=0.0, hi=1.0),
        max_iter=a.integer("max_iter", 500, lo=1, hi=1_000_000),
        adapt_every=a.integer("adapt_every", 10, lo=1, hi=1_000_000),
        mu=a.number("mu", 10.0, lo=1.0, hi=1e6),
        tau=a.number("tau", 2.0, lo=1.0, hi=1e6),
        keep_rho=a.boolean("keep_rho", False),
    )
    return CoordinatorConfig(
        budget_us=r.number("budget_us", 200.0, lo=1.0, hi=1e7),
        ns_per_iteration=r.number("ns_per_iteration", 50.0, lo=1.0, hi=1e9),
        min_delta_lots=r.integer("min_delta_lots", 1, lo=1),
        max_batch=r.integer("max_batch", 64, lo=1, hi=65_536),
        admm=admm,
        coordination=coordination,
        protocol=r.choice("protocol", ("price", "admm"), "price"),
        ns_per_round=r.number("ns_per_round", 100_000.0, lo=1.0, hi=1e10),
        round_timeout_ms=r.integer("round_timeout_ms", 1000, lo=1, hi=600_000),
        stale_after_ms=r.number("stale_after_ms", 250.0, lo=0.001, hi=3_600_000),
        unresponsive_retry_ms=r.number("unresponsive_retry_ms", 5000.0, lo=0.001, hi=3_600_000),
    )


def _check_market(
    market: MarketSettings, r: _Reader, rates: tuple[float, ...], n_venues: int
) -> None:
    """The ``[market]`` table as the feed devices will build it: at every rate of the
    campaign, and per asset (``n_assets`` > 1: each asset quoted at ``rate_hz / n_assets``)."""
    from arbsphere.firmware_interfaces.emulators.market import MarketConfig, per_asset_config

    allowed = {f.name for f in dataclasses.fields(MarketConfig)} - {"seed", "rate_hz", "n_venues"}
    r.only(allowed)
    if "n_assets" in r.data:
        r.integer("n_assets", lo=1, hi=MAX_ASSETS)
    for rate in rates:
        try:
            per_asset_config(
                MarketConfig(**{**dict(market.values), "rate_hz": rate, "n_venues": n_venues})
            )
        except (TypeError, ValueError) as exc:
            key = "market.n_assets" if str(exc).startswith("with n_assets") else "market"
            raise ConfigError(f"invalid market settings: {exc}", file=r.source, key=key) from exc


class _Reader:
    """Typed, validating access to one TOML table; errors name file and dotted key."""

    def __init__(self, data: Any, source: str, prefix: str) -> None:
        self.source = source
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise ConfigError(f"must be a table, got {data!r}", file=source, key=prefix or "<root>")
        self.data: Mapping[str, Any] = data

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix and k else (k or self.prefix)

    def fail(self, k: str, value: Any, why: str) -> None:
        raise ConfigError(f"{why} (value {value!r})", file=self.source, key=self.key(k))

    def only(self, allowed: set[str]) -> None:
        for k in self.data:
            if k not in allowed:
                raise ConfigError(
                    f"unknown key; allowed here: {', '.join(sorted(allowed))}",
                    file=self.source,
                    key=self.key(k),
                )

    def table(self, k: str, optional: bool = False) -> _Reader:
        if k not in self.data:
            if optional:
                return _Reader({}, self.source, self.key(k))
            raise ConfigError("missing table", file=self.source, key=self.key(k))
        return _Reader(self.data[k], self.source, self.key(k))

    def _get(self, k: str, default: Any) -> Any:
        if k in self.data:
            return self.data[k]
        if default is _REQUIRED:
            raise ConfigError("missing required key", file=self.source, key=self.key(k))
        return default

    def string(self, k: str, default: Any = None) -> str:
        v = self._get(k, _REQUIRED if default is None else default)
        if not isinstance(v, str) or not v:
            self.fail(k, v, "must be a non-empty string")
        return str(v)

    def choice(self, k: str, options: tuple[str, ...], default: Any = None) -> str:
        v = self.string(k, default)
        if v not in options:
            self.fail(k, v, f"must be one of {', '.join(options)}")
        return v

    def boolean(self, k: str, default: bool) -> bool:
        v = self._get(k, default)
        if not isinstance(v, bool):
            self.fail(k, v, "must be true or false")
        return bool(v)

    def integer(
        self, k: str, default: Any = None, *, lo: int | None = None, hi: int | None = None
    ) -> int:
        v = self._get(k, _REQUIRED if default is None else default)
        if not isinstance(v, int) or isinstance(v, bool):
            self.fail(k, v, "must be an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(k, v, f"must be in [{lo}, {hi}]")
        return int(v)

    def number(
        self, k: str, default: Any = None, *, lo: float | None = None, hi: float | None = None
    ) -> float:
        v = self._get(k, _REQUIRED if default is None else default)
        if not isinstance(v, int | float) or isinstance(v, bool) or v != v:
            self.fail(k, v, "must be a number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(k, v, f"must be in [{lo}, {hi}]")
        return float(v)


_REQUIRED = object()
