"""Privacy budgets on a venue's shared signals: noisy releases at the interval only, repeats in
between, exact spending, the withheld sentinel after exhaustion (refusals counted, ledgered
once), reproducible noise, config validation naming the key, and the KPI/report plumbing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbsphere.adapters.signal_privacy import (
    CORRELATION,
    LIQUIDITY,
    WITHHELD_LOTS,
    PrivacySettings,
    SignalPrivacy,
)
from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.contracts import default_registry
from arbsphere.errors import ConfigError
from arbsphere.kpi.governance import refusals
from arbsphere.kpi.report import render_report
from arbsphere.privacy.settings import PrivacyConfig
from arbsphere.rig.config import load_campaign
from arbsphere.runtime import config_from_json
from arbsphere.security.ledger import EventKind

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()
MS = 1_000_000
LIMIT = 100  # position limit, lots
SIZE = 60  # displayed size on both sides: the true liquidity is min(60, 100) = 60


class Events:
    """A stand-in for RoleSecurity.event: records every event."""

    def __init__(self) -> None:
        self.events: list[tuple[EventKind, int, dict[str, Any]]] = []

    def __call__(self, kind: EventKind, subject: int, details: Any) -> None:
        self.events.append((kind, subject, dict(details)))

    def of(self, kind: EventKind, signal_kind: int) -> list[dict[str, Any]]:
        return [d for k, s, d in self.events if k == kind and s == signal_kind]


def privacy_data(**kw: Any) -> dict[str, Any]:
    """A venue role config's ``privacy`` table as JSON."""
    cfg: dict[str, Any] = {
        "mechanism": "laplace",
        "epsilon_total": 1.0,
        "epsilon_per_release": 0.1,
        "delta_total": 0.0,
        "release_interval_ms": 250.0,
        "liquidity_sensitivity_lots": 1.0,
        "correlation_sensitivity": 2.0,
        "seed": 7,
    }
    cfg.update(kw)
    return cfg


def privacy_cfg(**kw: Any) -> PrivacySettings:
    return PrivacySettings(**privacy_data(**kw))


def translator(events: Events | None = None, venue_id: int = 0, **kw: Any) -> TickTranslator:
    privacy = SignalPrivacy(venue_id, privacy_cfg(**kw), LIMIT, emit=events)
    return TickTranslator(
        venue_id, 10 + venue_id, VenueCosts(0.5, 1e-4, LIMIT), 200_000,
        solver=VenueSolver(1), correlation=EwmaCorrelation(1, min_samples=2), privacy=privacy,
    )  # fmt: skip


def tick(seq: int, size: int = SIZE) -> tuple[Any, ...]:
    mid = 100.0 + 0.01 * (seq % 7)
    bid, ask = int((mid - 0.01) * 1e8), int((mid + 0.01) * 1e8)
    return (0, 0, 0, 0, 0, 0, seq, 1000 * seq, 1000 * seq, bid, ask, size, size)


def shared(tr: TickTranslator, seq: int, now_ns: int) -> tuple[int, float]:
    """(liquidity_lots, correlation) of the SharedSignals the translator packs for a tick."""
    _problem, signals = tr.translate(tick(seq), now_ns, 0)
    schema, values = default_registry().decode_values(signals)
    assert schema.name == "SharedSignals"
    # envelope (7), venue_id, n_assets, tick_seq, then asset, mid, delta, spread, corr, liq, lat
    return int(values[15]), float(values[14])


def feed_correlation(tr: TickTranslator, n: int = 5) -> None:
    assert tr.correlation is not None
    for k in range(n):
        tr.correlation.observe(0, 100.0 + k, 50.0 + 2.0 * k)  # estimate: 1.0


def run_ticks(tr: TickTranslator, n: int, step_ns: int) -> list[tuple[int, float]]:
    return [shared(tr, seq, seq * step_ns) for seq in range(n)]


# --- releases, repeats, spending -------------------------------------------------------------


def test_releases_at_the_interval_only_and_repeats_in_between() -> None:
    events = Events()
    tr = translator(events)
    feed_correlation(tr)
    out = run_ticks(tr, 40, 50 * MS)  # 2 s of ticks every 50 ms; a release every 250 ms
    assert tr.privacy is not None
    liq, corr = tr.privacy.signals[LIQUIDITY], tr.privacy.signals[CORRELATION]
    assert liq.budget.releases == corr.budget.releases == 8  # t = 0, 250, ..., 1750 ms
    for start in range(0, 40, 5):  # each release is repeated for the interval's 5 ticks
        block = out[start : start + 5]
        assert len(set(block)) == 1, block
    assert liq.repeated_ticks == corr.repeated_ticks == 32
    # exactly epsilon_per_release per release (basic sequential composition)
    assert liq.budget.epsilon_spent == pytest.approx(0.8)
    assert liq.budget.state()["composition"] == "basic sequential"
    # one BUDGET_SPENT per release, with the brief's details
    spent = events.of(EventKind.BUDGET_SPENT, LIQUIDITY)
    assert len(spent) == 8 and len(events.of(EventKind.BUDGET_SPENT, CORRELATION)) == 8
    assert spent[-1] == {
        "venue": 0, "kind": "liquidity", "signal_kind": 1, "mechanism": "laplace",
        "epsilon_spent": pytest.approx(0.8), "epsilon_total": 1.0, "delta_spent": 0.0,
        "releases": 8,
    }  # fmt: skip
    # post-processing: whole lots >= 0, correlation within [-1, 1]
    assert all(lots >= 0 for lots, _ in out)
    assert all(-1.0 <= c <= 1.0 for _, c in out)


def test_the_interval_runs_on_the_ticks_rig_time_not_their_count() -> None:
    tr = translator()
    for seq in range(100):  # 100 ticks within 99 µs: one release
        shared(tr, seq, 10_000_000_000 + seq * 1000)
    assert tr.privacy is not None and tr.privacy.signals[LIQUIDITY].budget.releases == 1
    shared(tr, 100, 10_000_000_000 + 250 * MS)  # exactly one interval after the first
    assert tr.privacy.signals[LIQUIDITY].budget.releases == 2


def test_unestimated_correlation_is_nan_and_costs_nothing() -> None:
    tr = translator()
    out = run_ticks(tr, 10, 250 * MS)  # the rounds never fed the estimate
    assert all(math.isnan(c) for _, c in out)
    assert tr.privacy is not None
    assert tr.privacy.signals[CORRELATION].budget.releases == 0
    assert tr.privacy.signals[CORRELATION].budget.epsilon_spent == 0.0
    assert tr.privacy.signals[LIQUIDITY].budget.releases == 10
    feed_correlation(tr)  # estimated from now on: the next tick releases at once
    _, c = shared(tr, 10, 10 * 250 * MS + 1)
    assert not math.isnan(c) and tr.privacy.signals[CORRELATION].budget.releases == 1


# --- exhaustion ------------------------------------------------------------------------------


def test_withheld_after_exhaustion_refusals_counted_and_ledgered_once() -> None:
    events = Events()
    tr = translator(events)  # 1.0 / 0.1: 10 releases per kind
    feed_correlation(tr)
    out = run_ticks(tr, 100, 50 * MS)  # 20 intervals: 10 released, then withheld
    assert tr.privacy is not None
    liq = tr.privacy.signals[LIQUIDITY]
    assert liq.budget.releases == 10 and liq.budget.epsilon_spent == pytest.approx(1.0)
    assert liq.exhausted
    released, withheld = out[:50], out[50:]
    assert all(lots >= 0 and not math.isnan(c) for lots, c in released)
    assert all(lots == WITHHELD_LOTS and math.isnan(c) for lots, c in withheld)
    # a refusal per due release (10 intervals), the sentinel on every one of the 50 ticks
    assert liq.budget.refusals == 10 and liq.withheld_ticks == 50
    state = tr.privacy.state()
    assert state["liquidity"]["refusals"] == 10 and state["correlation"]["refusals"] == 10
    assert state["liquidity"]["releases_remaining"] == 0
    assert state["liquidity"]["withheld_ticks"] == 50
    json.dumps(state)  # the stats file's "privacy"
    # ledgered: the first refusal at once (t = 2.5 s), then summary counts at most once per
    # second of tick time (t = 3.5 s: 4 more, 4.5 s: 4 more), never one event per tick ...
    for kind in (LIQUIDITY, CORRELATION):
        refused = events.of(EventKind.BUDGET_REFUSED, kind)
        assert [e["refusals"] for e in refused] == [1, 4, 4]
        assert refused[0]["reason"] == "exhausted" and "summary" not in refused[0]
        assert refused[0]["releases"] == 10 and refused[0]["epsilon_spent"] == 1.0
        assert all(e["summary"] is True for e in refused[1:])
        assert len(events.of(EventKind.BUDGET_SPENT, kind)) == 10
    # ... and the rest in a summary at the end of the run: the counts add up
    tr.privacy.finish()
    refused = events.of(EventKind.BUDGET_REFUSED, LIQUIDITY)
    assert [e["refusals"] for e in refused] == [1, 4, 4, 1]
    assert refused[-1]["total_refusals"] == 10 and refused[-1]["withheld_ticks"] == 50
    tr.privacy.finish()  # nothing new: no event
    assert len(events.of(EventKind.BUDGET_REFUSED, LIQUIDITY)) == 4


def test_no_refusal_summary_without_refusals() -> None:
    events = Events()
    tr = translator(events)
    run_ticks(tr, 3, 250 * MS)
    assert tr.privacy is not None
    tr.privacy.finish()
    assert not [e for e in events.events if e[0] == EventKind.BUDGET_REFUSED]


def test_gaussian_budget_spends_delta_too() -> None:
    tr = translator(mechanism="gaussian", delta_total=1e-5, epsilon_per_release=0.5)
    run_ticks(tr, 4, 250 * MS)
    assert tr.privacy is not None
    b = tr.privacy.signals[LIQUIDITY].budget
    assert b.releases == 2 and b.refusals == 2  # 1.0 / 0.5
    assert b.delta_spent == pytest.approx(1e-5)


# --- noise -----------------------------------------------------------------------------------


def test_same_seed_same_noise_other_seed_or_venue_other_noise() -> None:
    def releases(seed: int, venue_id: int = 0) -> list[tuple[int, float]]:
        tr = translator(seed=seed, venue_id=venue_id)
        feed_correlation(tr)
        return run_ticks(tr, 10, 250 * MS)

    assert releases(7) == releases(7)
    assert releases(7) != releases(8)
    assert releases(7) != releases(7, venue_id=1)


def test_liquidity_noise_is_laplace_at_the_calibrated_scale() -> None:
    """Sensitivity 5 lots at epsilon 0.1 per release: b = 50 lots. The true value sits ~100
    scales above the 0 clip, so the released values are value + Laplace(b) rounded: mean
    absolute deviation b, standard deviation b·sqrt(2), median 0 (4000 fixed-seed draws)."""
    n = 4000
    privacy = SignalPrivacy(
        0, privacy_cfg(epsilon_total=0.1 * n, liquidity_sensitivity_lots=5.0), 10_000
    )
    true = 5000  # far above the 0 clip: ~100 scales
    out = np.array([privacy.liquidity(0, true, k * 250 * MS) for k in range(n)], dtype=float)
    noise = out - true
    assert np.count_nonzero(noise) > 0.95 * n  # the noise is there
    b = privacy.signals[LIQUIDITY].budget.noise_scale
    assert b == 50.0
    assert np.mean(np.abs(noise)) == pytest.approx(b, rel=0.06)
    assert np.std(noise) == pytest.approx(b * math.sqrt(2), rel=0.08)
    assert abs(np.median(noise)) < 0.1 * b  # centred on the true value


def test_true_liquidity_is_the_limited_size_and_clipped_at_zero() -> None:
    """The released value is min(size, position limit) plus noise; with the default
    sensitivity (the limit) and a tiny total the noise is large, and clipped at 0."""
    privacy = SignalPrivacy(0, privacy_cfg(liquidity_sensitivity_lots=None), LIMIT)
    assert privacy.signals[LIQUIDITY].budget.sensitivity == LIMIT
    assert privacy.signals[LIQUIDITY].budget.noise_scale == LIMIT / 0.1
    out = [privacy.liquidity(0, 10_000, k * 250 * MS) for k in range(10)]
    assert all(v >= 0 for v in out) and len(set(out)) > 1


def test_central_mode_has_no_budget() -> None:
    with pytest.raises(ConfigError, match="federated"):
        TickTranslator(
            0, 10, VenueCosts(0.5, 1e-4, LIMIT), 200_000,
            privacy=SignalPrivacy(0, privacy_cfg(), LIMIT),
        )  # fmt: skip
    central = TickTranslator(0, 10, VenueCosts(0.5, 1e-4, LIMIT), 200_000)
    lots, corr = shared(central, 1, 0)
    assert lots == SIZE and math.isnan(corr)  # in the clear, as before


def test_role_config_errors_name_the_key() -> None:
    data = privacy_data()
    del data["epsilon_total"]
    with pytest.raises(ConfigError, match=r"v\.json: key 'privacy\.epsilon_total': missing"):
        config_from_json(PrivacySettings, data, "v.json", "privacy")
    with pytest.raises(ConfigError, match=r"v\.json: key 'privacy\.seed': wrong type"):
        config_from_json(PrivacySettings, privacy_data(seed="7"), "v.json", "privacy")
    with pytest.raises(ConfigError, match=r"v\.json: key 'privacy'.*exceeds epsilon_total"):
        SignalPrivacy(0, privacy_cfg(epsilon_per_release=2.0), LIMIT, source="v.json")


# --- campaign configuration ----------------------------------------------------------------


def _campaign(tmp_path: Path, privacy: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(LOOPBACK + "\n[security.privacy]\n" + privacy + "\n")
    return p


def test_privacy_config_defaults_and_values(tmp_path: Path) -> None:
    assert load_campaign(ROOT / "campaigns" / "loopback.toml").security.privacy == PrivacyConfig()
    c = load_campaign(
        _campaign(
            tmp_path,
            'mechanism = "gaussian"\nepsilon_total = 4.0\nepsilon_per_release = 0.5\n'
            "delta_total = 1e-6\nrelease_interval_ms = 100\nliquidity_sensitivity_lots = 1\n"
            "correlation_sensitivity = 1.0\nseed = 99\nenabled = false",
        )
    )
    p = c.security.privacy
    assert (p.mechanism, p.epsilon_total, p.epsilon_per_release, p.delta_total) == (
        "gaussian", 4.0, 0.5, 1e-6,
    )  # fmt: skip
    assert (p.release_interval_ms, p.liquidity_sensitivity_lots, p.seed, p.enabled) == (
        100.0, 1.0, 99, False,
    )  # fmt: skip
    assert c.resolved()["security"]["privacy"]["seed"] == 99


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('mechanism = "uniform"', "mechanism", "must be one of"),
        ("epsilon_total = 0", "epsilon_total", "must be > 0"),
        ("epsilon_total = 1.0\nepsilon_per_release = 2.0", "epsilon_per_release", "exceeds"),
        ('mechanism = "gaussian"\nepsilon_per_release = 1.0', "epsilon_per_release", "< 1"),
        ('mechanism = "gaussian"\ndelta_total = 0.0', "delta_total", "0 < delta_total"),
        ("release_interval_ms = 0", "release_interval_ms", "must be in"),
        ("liquidity_sensitivity_lots = -1", "liquidity_sensitivity_lots", "must be"),
        ("correlation_sensitivity = 3.0", "correlation_sensitivity", "must be in"),
        ('seed = "x"', "seed", "must be an integer"),
        ('enabled = "yes"', "enabled", "true or false"),
        ("epsilon = 1.0", "epsilon", "unknown key"),
    ],
)
def test_privacy_config_errors_name_file_and_key(
    tmp_path: Path, body: str, key: str, fragment: str
) -> None:
    path = _campaign(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert err.value.key == f"security.privacy.{key}"
    assert str(path) in str(err.value) and fragment in str(err.value)


# --- KPI and report --------------------------------------------------------------------------


def test_budget_refusals_reach_the_governance_kpi_and_the_report(tmp_path: Path) -> None:
    tr = translator()
    feed_correlation(tr)
    run_ticks(tr, 30, 250 * MS)  # 10 released, 20 refused per kind
    assert tr.privacy is not None
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "venue_a.stats.json").write_text(json.dumps({"privacy": tr.privacy.state()}))
    (proc / "venue_b.stats.json").write_text(json.dumps({"privacy": None, "security": {}}))
    assert refusals(proc)["budget"] == {"liquidity_exhausted": 20, "correlation_exhausted": 20}
    out = tmp_path / "report.html"
    kpi: dict[str, object] = {"privacy": {"venue_a": tr.privacy.state(), "venue_b": None}}
    render_report(kpi, None, {"run_id": "r"}, out)
    html = out.read_text()
    assert "<h2>Privacy budgets</h2>" in html and "basic sequential" in html
    assert '<th>venue_a</th><td>liquidity</td><td class="num">laplace</td>' in html
