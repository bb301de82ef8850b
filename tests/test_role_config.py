"""Role configs are dataclasses written as JSON by the orchestrator and read back into the same
dataclass by one typed loader: round trip, and every wrong or missing key named with its file
and dotted key — the coordinator's, the adapters' (their link settings the dataclass the link
backend names) and the journal player's; and the one runtime that serves every role."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from arbsphere.adapters.backends import BrokerLinkSpec, FeedLinkSpec, backend
from arbsphere.adapters.links import LinkParams
from arbsphere.adapters.role_config import BrokerRoleConfig, VenueFederation, VenueRoleConfig
from arbsphere.adapters.signal_privacy import PrivacySettings
from arbsphere.adapters.sync_master import SyncSettings
from arbsphere.adapters.udp_link import UdpBrokerLinkConfig, UdpLinkConfig
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.role_config import (
    CoordinatorRoleConfig,
    FederatedSettings,
    JournalSettings,
)
from arbsphere.errors import ConfigError, PipelineError
from arbsphere.replay.player import PlayerRoleConfig
from arbsphere.rig.config import load_campaign
from arbsphere.rig.orchestrator import Orchestrator
from arbsphere.runtime import RoleProcess, StopFlag, config_from_json, config_to_json, serve_role
from arbsphere.security.role_security import SecuritySettings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "proc/coordinator.config.json"


def _security(name: str) -> SecuritySettings:
    return SecuritySettings(
        name=name, keys_dir=Path("/tmp/run/keys"), roster={"a": 1}, registry_name="registry",
        registry_endpoint="tcp://127.0.0.1:5557", transport="curve", tags=True,
        attest_plan_deltas=False, replay_window=1024, max_past_ns=2_000_000_000,
        max_future_ns=500_000_000, credential_skew_ns=1_000_000,
    )  # fmt: skip


def _federated() -> CoordinatorRoleConfig:
    return CoordinatorRoleConfig(
        out_dir="/tmp/run/proc", inbound_endpoint="tcp://127.0.0.1:*",
        outbound_endpoint="tcp://127.0.0.1:*", n_venues=2, n_assets=3, min_delta_lots=1,
        max_batch=16, ns_per_iteration=50.0, admm=AdmmSettings(max_iter=200, keep_rho=True),
        journal=JournalSettings(dir="/tmp/run/journal", interval_ns=5_000_000),
        federated=FederatedSettings(
            rounds_endpoint="tcp://127.0.0.1:*", protocol="price", ns_per_round=1e5,
            round_timeout_ms=1000, stale_after_ms=250, unresponsive_retry_ms=5000.0,
            secure_aggregation=True, signal_release_interval_ms=None,
        ),
        security=_security("coordinator"),
        venue_ids={"venue_a": 0, "venue_b": 1},
    )  # fmt: skip


def _json(cfg: Any) -> Any:
    return json.loads(json.dumps(config_to_json(cfg)))


def test_a_role_config_survives_its_json_unchanged() -> None:
    cfg = _federated()
    assert config_from_json(CoordinatorRoleConfig, _json(cfg), SOURCE) == cfg
    central = CoordinatorRoleConfig(
        out_dir="d", inbound_endpoint="i", outbound_endpoint="o", n_venues=2, n_assets=1,
        min_delta_lots=1, max_batch=1, ns_per_iteration=50, admm=AdmmSettings(),
    )  # fmt: skip
    back = config_from_json(CoordinatorRoleConfig, _json(central), SOURCE)
    assert back == central and back.coordination == "central" and back.federated is None


@pytest.mark.parametrize(
    ("edit", "key", "what"),
    [
        (lambda d: d.pop("n_assets"), "n_assets", "missing required key"),
        (lambda d: d["federated"].pop("round_timeout_ms"), "federated.round_timeout_ms",
         "missing required key"),
        (lambda d: d.update(max_batch="16"), "max_batch", "wrong type str"),
        (lambda d: d.update(max_batch=True), "max_batch", "wrong type bool"),
        (lambda d: d.update(max_batch=16.0), "max_batch", "wrong type float"),
        (lambda d: d["admm"].update(rho0="x"), "admm.rho0", "wrong type str"),
        (lambda d: d["journal"].update(interval_ns=1.5), "journal.interval_ns", "wrong type"),
        (lambda d: d["federated"].update(protocol="gossip"), "federated.protocol",
         "must be 'price' or 'admm'"),
        (lambda d: d["venue_ids"].update(venue_c="2"), "venue_ids.venue_c", "wrong type str"),
        (lambda d: d.update(journal=[]), "journal", "must be an object"),
        (lambda d: d.update(coordination="federated"), "coordination", "unknown key"),
        (lambda d: d.update(max_batch=0), "max_batch", "must be >= 1"),
        (lambda d: d["admm"].update(alpha=3.0), "admm", "alpha"),
        (lambda d: d["journal"].update(interleave_ns=10), "journal.interleave_ns",
         "needs central coordination"),
    ],
)  # fmt: skip
def test_a_wrong_or_missing_key_is_named_with_its_file(edit: Any, key: str, what: str) -> None:
    data = _json(_federated())
    edit(data)
    with pytest.raises(ConfigError) as info:
        config_from_json(CoordinatorRoleConfig, data, SOURCE)
    assert info.value.file == SOURCE and info.value.key == key, str(info.value)
    assert what in str(info.value)


@dataclass(frozen=True)
class _Shapes:
    pairs: list[tuple[int, str]]
    by_id: dict[int, float]
    fixed: tuple[int, int] = (0, 0)
    rest: tuple[str, ...] = ()
    mode: Literal["a", "b"] = "a"
    maybe: int | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def test_the_loader_reads_containers_literals_and_unions() -> None:
    data: dict[str, Any] = {
        "pairs": [[1, "x"], [2, "y"]], "by_id": {"3": 1, "4": 2.5}, "fixed": [5, 6],
        "rest": ["p", "q"], "mode": "b", "maybe": "s", "extra": {"k": [1, {"n": None}]},
    }  # fmt: skip
    got = config_from_json(_Shapes, data, "f.json")
    assert got == _Shapes([(1, "x"), (2, "y")], {3: 1, 4: 2.5}, (5, 6), ("p", "q"), "b", "s",
                          {"k": [1, {"n": None}]})  # fmt: skip
    bad_keys: list[tuple[dict[str, Any], str]] = [
        ({"pairs": [[1, 2]]}, "pairs[0][1]"), ({"fixed": [1]}, "fixed"),
        ({"by_id": {"x": 1}}, "by_id.x"), ({"maybe": 1.5}, "maybe"),
    ]  # fmt: skip
    for bad, key in bad_keys:
        with pytest.raises(ConfigError) as info:
            config_from_json(_Shapes, {**data, **bad}, "f.json")
        assert info.value.key == key, str(info.value)


@pytest.mark.parametrize("campaign", ["loopback.toml", "loopback-central.toml"])
def test_the_orchestrator_writes_the_config_the_coordinator_reads(
    campaign: str, tmp_path: Path
) -> None:
    path = ROOT / "campaigns" / campaign
    if not path.is_file():
        pytest.skip(f"no campaigns/{campaign}")
    c = load_campaign(path)
    cfg = Orchestrator(c, tmp_path, clock=None).coordinator_config()  # type: ignore[arg-type]
    assert config_from_json(CoordinatorRoleConfig, _json(cfg), SOURCE) == cfg
    assert cfg.coordination == c.coordinator.coordination
    assert cfg.admm == c.coordinator.admm and cfg.n_venues == len(c.venues)


# --- the adapters' and the journal player's role configs -----------------------------------

VENUE_SOURCE = "proc/venue_a.config.json"


def _venue(link: str = "udp", secure: bool = True) -> VenueRoleConfig:
    params = LinkParams(name="venue_a", bind_port=0, port="/dev/pts/9", baudrate=115_200)
    privacy = PrivacySettings(
        mechanism="laplace", epsilon_total=1.0, epsilon_per_release=0.1, delta_total=0.0,
        release_interval_ms=250.0, correlation_sensitivity=2.0, seed=7,
    )  # fmt: skip
    return VenueRoleConfig(
        name="venue_a", venue_id=0, sender_id=100, out_dir="/tmp/run/proc",
        link=FeedLinkSpec.of(link, params), fee_bp=0.5, gamma=1e-4, position_limit_lots=100,
        budget_ns=200_000, coordinator_endpoint="tcp://127.0.0.1:5555", n_venues=2, n_assets=3,
        sync=SyncSettings(interval_ns=10_000_000, device_id=10),
        federated=VenueFederation(
            rounds_endpoint="tcp://127.0.0.1:5556", protocol="admm",
            signal_release_interval_ms=250.0, secure_aggregation=secure, privacy=privacy,
        ),
        security=_security("venue_a") if secure else None,
    )  # fmt: skip


def _broker(link: str = "udp") -> BrokerRoleConfig:
    params = LinkParams(name="broker", device_port=4242, port="/dev/pts/8")
    return BrokerRoleConfig(
        name="broker", out_dir="/tmp/run/proc", device_id=1,
        link=BrokerLinkSpec.of(link, params), plan_endpoint="tcp://127.0.0.1:1",
        report_endpoint="tcp://127.0.0.1:2", n_venues=2, n_assets=3,
        sync=SyncSettings(interval_ns=10_000_000, device_id=200),
    )  # fmt: skip


def _player() -> PlayerRoleConfig:
    return PlayerRoleConfig(
        name="journal-player", out_dir="/tmp/run/proc", journal_dir="/tmp/old/journal",
        speed="max", start_at_ns=123, coordinator_endpoint="tcp://127.0.0.1:3",
        venues={0: "venue_a", 1: "venue_b"}, journal_head={"segments": 1},
    )  # fmt: skip


@pytest.mark.parametrize("link", ["udp", "serial"])
def test_the_adapters_configs_survive_their_json_with_the_backends_settings(link: str) -> None:
    venue = _venue(link)
    back = config_from_json(VenueRoleConfig, _json(venue), VENUE_SOURCE)
    assert back == venue
    assert type(back.link.settings) is backend(link).feed_config
    central = dataclasses.replace(_venue(link, secure=False), federated=None, sync=None)
    assert config_from_json(VenueRoleConfig, _json(central), VENUE_SOURCE) == central
    broker = _broker(link)
    back_broker = config_from_json(BrokerRoleConfig, _json(broker), "b.json")
    assert back_broker == broker
    assert type(back_broker.link.settings) is backend(link).broker_config
    assert config_from_json(PlayerRoleConfig, _json(_player()), "p.json") == _player()


def test_a_link_of_the_wrong_backend_is_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="SerialLinkConfig") as info:
        FeedLinkSpec("serial", UdpLinkConfig())
    assert info.value.key == "settings"


@pytest.mark.parametrize(
    ("edit", "key", "what"),
    [
        (lambda d: d["link"].update(backend="carrier-pigeon"), "link.backend", "unknown link"),
        (lambda d: d["link"]["settings"].update(bind_port="0"), "link.settings.bind_port",
         "wrong type str"),
        (lambda d: d["link"]["settings"].update(port="/dev/x"), "link.settings.port",
         "unknown key"),
        (lambda d: d["link"]["settings"].pop("name"), None, None),  # a default: still fine
        (lambda d: d.pop("budget_ns"), "budget_ns", "missing required key"),
        (lambda d: d.update(n_assets=0), "n_assets", "must be >= 1"),
        (lambda d: d["sync"].update(interval_ns=0), "sync.interval_ns", "must be > 0"),
        (lambda d: d["federated"].update(protocol="gossip"), "federated.protocol",
         "must be 'price' or 'admm'"),
        (lambda d: d["federated"]["privacy"].update(seed="7"), "federated.privacy.seed",
         "wrong type str"),
        (lambda d: d["federated"]["privacy"].pop("mechanism"), "federated.privacy.mechanism",
         "missing required key"),
        (lambda d: d.update(security=None), "federated.secure_aggregation",
         "needs the security table"),
        (lambda d: d.update(fee_bp=True), "fee_bp", "wrong type bool"),
        (lambda d: d["security"].update(transport="tls"), "security.transport",
         "must be 'curve' or 'plaintext'"),
        (lambda d: d["security"].pop("keys_dir"), "security.keys_dir", "missing required key"),
        (lambda d: d["security"].update(tags="yes"), "security.tags", "wrong type str"),
    ],
)  # fmt: skip
def test_a_wrong_venue_key_is_named_with_its_file(
    edit: Any, key: str | None, what: str | None
) -> None:
    data = _json(_venue("udp"))
    edit(data)
    if key is None:
        config_from_json(VenueRoleConfig, data, VENUE_SOURCE)
        return
    with pytest.raises(ConfigError) as info:
        config_from_json(VenueRoleConfig, data, VENUE_SOURCE)
    assert info.value.file == VENUE_SOURCE and info.value.key == key, str(info.value)
    assert what is not None and what in str(info.value)


@pytest.mark.parametrize(
    ("role", "edit", "key", "what"),
    [
        ("broker", lambda d: d["link"]["settings"].update(device_port=1.5),
         "link.settings.device_port", "wrong type float"),
        ("broker", lambda d: d["link"]["settings"].update(bind_port=None),
         "link.settings.bind_port", "wrong type null"),
        ("broker", lambda d: d.update(replica_fault_every="3"), "replica_fault_every",
         "wrong type str"),
        ("broker", lambda d: d["sync"].update(device_id=-1), "sync.device_id", "device id"),
        ("player", lambda d: d.update(speed="fast"), "speed", "a number > 0 or 'max'"),
        ("player", lambda d: d["venues"].update(x="venue_c"), "venues.x", "not an integer key"),
        ("player", lambda d: d.pop("start_at_ns"), "start_at_ns", "missing required key"),
    ],
)  # fmt: skip
def test_a_wrong_broker_or_player_key_is_named_with_its_file(
    role: str, edit: Any, key: str, what: str
) -> None:
    config_type: type[Any] = BrokerRoleConfig if role == "broker" else PlayerRoleConfig
    data = _json(_broker() if role == "broker" else _player())
    edit(data)
    with pytest.raises(ConfigError) as info:
        config_from_json(config_type, data, f"{role}.json")
    assert info.value.file == f"{role}.json" and info.value.key == key, str(info.value)
    assert what in str(info.value)


@pytest.mark.parametrize("campaign", ["loopback.toml", "loopback-central.toml"])
def test_the_orchestrator_writes_the_configs_the_adapters_read(
    campaign: str, tmp_path: Path
) -> None:
    c = load_campaign(ROOT / "campaigns" / campaign)
    orch = Orchestrator(c, tmp_path, clock=None)  # type: ignore[arg-type]
    orch.inbound, orch.outbound = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"
    if c.coordinator.coordination == "federated":
        orch.rounds_endpoint = "tcp://127.0.0.1:3"
    links = set()
    for v in c.venues:
        cfg = orch.venue_config(v, v.port)
        assert config_from_json(VenueRoleConfig, _json(cfg), VENUE_SOURCE) == cfg
        assert (cfg.federated is None) == (c.coordinator.coordination == "central")
        assert cfg.link.backend == v.link and cfg.venue_id == v.venue_id
        links.add(v.link)
    assert links == {"udp", "serial"}  # both backends' settings go through the file
    broker = orch.broker_config(LinkParams(name=c.broker.name, device_port=4242))
    assert config_from_json(BrokerRoleConfig, _json(broker), "b.json") == broker
    settings = broker.link.settings
    assert isinstance(settings, UdpBrokerLinkConfig) and settings.device_port == 4242


def test_a_role_process_with_a_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    data = _json(_venue("udp"))
    data["link"]["settings"]["bind_port"] = "x"
    path = tmp_path / "venue_a.config.json"
    path.write_text(json.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "arbsphere.adapters.venue_adapter", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{path}: key 'link.settings.bind_port': wrong type str" in done.stderr


class _Role(RoleProcess):
    """A role whose serving fails: the runtime still saves, writes the stats and closes."""

    def __init__(self, out_dir: Path) -> None:
        self.name, self.out_dir = "r", out_dir
        self.calls: list[str] = []

    def ready_info(self) -> dict[str, Any]:
        return {"up": True}

    def serve(self, stop: StopFlag) -> None:
        self.calls.append("serve")
        raise PipelineError("lost the socket")

    def save(self) -> None:
        self.calls.append("save")

    def stats(self) -> dict[str, Any]:
        self.calls.append("stats")
        return {"role": "r"}

    def close(self) -> None:
        self.calls.append("close")


def test_serve_role_writes_ready_then_stats_in_finally(tmp_path: Path) -> None:
    role = _Role(tmp_path)
    with pytest.raises(PipelineError):
        serve_role(role, StopFlag())
    assert role.calls == ["serve", "save", "stats", "close"]
    assert json.loads((tmp_path / "r.ready.json").read_text()) == {"up": True}
    assert json.loads((tmp_path / "r.stats.json").read_text()) == {"role": "r"}
