"""Role configs are dataclasses written as JSON by the orchestrator and read back into the same
dataclass by one typed loader: round trip, and every wrong or missing key named with its file
and dotted key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.role_config import (
    CoordinatorRoleConfig,
    FederatedSettings,
    JournalSettings,
)
from arbsphere.errors import ConfigError
from arbsphere.rig.config import load_campaign
from arbsphere.rig.orchestrator import Orchestrator
from arbsphere.runtime import config_from_json, config_to_json

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "proc/coordinator.config.json"


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
        security={"name": "coordinator", "roster": {"a": 1}},
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
