"""Privacy budgets on the SharedSignals a venue derives from its private state.

In federated mode the coordinator never receives a venue's local problem (c, γ, φ, L); two of
the signals the venue shares are functions of that private state:

* kind 1, **liquidity** (the borrow proxy): the venue's tradeable liquidity
  min(displayed size, position limit) — the very bound L_i of its local problem;
* kind 2, **correlation**: the EWMA correlation of the venue's mid with the consensus price,
  computed from the venue's own solves.

Each goes through its own :class:`~arbsphere.privacy.budget.PrivacyBudget` (Laplace or
Gaussian noise, basic sequential composition over the run). A venue releases a fresh noisy value
of a kind at most once per ``release_interval_ms`` of *tick* time (the ticks' rig receive
stamps: no clock reads here) and per asset; the ticks between repeat the last released value,
which is post-processing of a release and costs nothing. Post-processing also rounds the
liquidity to whole lots and clips it at 0, and clamps the correlation to [-1, 1].

With secure aggregation of the signals (``aligned``,
:mod:`arbsphere.privacy.secure_signals`) a release
is due once per *release epoch* ``floor(t / release_interval)`` instead — the first tick of each
epoch releases — so that every venue's share of an epoch carries that epoch's release.

Once a budget cannot pay a release the signal is **withheld** for the rest of the run:
``liquidity_lots = -1`` (:data:`WITHHELD_LOTS`) and ``correlation = NaN``; each due release
refused is a refusal (one per interval, counted), each tick sent with the sentinel a withheld
tick. Every release is ledgered (BUDGET_SPENT); the first refusal of a kind is ledgered at once
(BUDGET_REFUSED), the later ones as summary counts (``summary: true``, the refusals since the
previous report) at most once per :data:`REPORT_INTERVAL_NS` of tick time, and
:meth:`SignalPrivacy.finish` sends the last summary at the end — never one event per tick. (In a
campaign the registry closes the ledger before it stops the roles, so that last summary — at
most one report interval of refusals — does not reach the ledger; the stats and ``kpi.json``
have every count.) A correlation that is not estimated yet is NaN in the clear: whether
the venue has seen ``min_samples`` solves is known to the coordinator anyway, so that costs no
budget.

Central mode needs none of this: the coordinator receives the whole local problem (including
the limit) in every LocalArbProblem, so the venue adapter leaves the signals as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbsphere.contracts import default_registry
from arbsphere.errors import BudgetExhausted, ConfigError
from arbsphere.privacy.budget import PrivacyBudget
from arbsphere.security.ledger import EventKind

#: PrivacyBudget ``signal_kind`` codes (``SignalKind`` in ``contracts.toml``)
LIQUIDITY, CORRELATION = default_registry().codes("SignalKind", "LIQUIDITY", "CORRELATION")
#: signal kind -> its name (the stats' and kpi.json's keys)
KIND_NAMES = {LIQUIDITY: "liquidity", CORRELATION: "correlation"}
#: ``liquidity_lots`` of a venue whose liquidity budget is exhausted
WITHHELD_LOTS = -1
#: refusals after the first are ledgered as one summary per this much tick time (at most)
REPORT_INTERVAL_NS = 1_000_000_000
#: the privacy noise's own seed stream, apart from every other user of the campaign seed
_SEED_STREAM = 0x50524956  # "PRIV"

#: ``(kind, subject, details)`` -> a governance event (RoleSecurity.event), or None: none
EventSink = Callable[[EventKind, int, Mapping[str, Any]], None]


def noise_rng(seed: int, venue_id: int, signal_kind: int) -> np.random.Generator:
    """The reproducible noise generator of one venue's one signal kind."""
    return np.random.default_rng(np.random.SeedSequence([_SEED_STREAM, seed, venue_id,
                                                         signal_kind]))  # fmt: skip


class BudgetedSignal:
    """One venue's one signal kind released through its budget, at most once per interval and
    asset; the last released value repeated between releases; withheld once exhausted."""

    def __init__(
        self,
        budget: PrivacyBudget,
        interval_ns: int,
        post: Callable[[float], float],
        emit: EventSink | None = None,
        aligned: bool = False,
    ) -> None:
        if interval_ns <= 0:
            raise ConfigError(f"release interval {interval_ns!r} ns: must be > 0")
        self.budget = budget
        self.interval_ns = interval_ns
        #: releases due per release epoch floor(t / interval) (the signal shares' epochs)
        #: rather than one interval after the previous release
        self.aligned = aligned
        self.post = post
        self.emit = emit
        self.name = KIND_NAMES.get(budget.signal_kind, str(budget.signal_kind))
        self.exhausted = False
        self.withheld_ticks = 0
        self._reported_refusals = 0
        self._next_report_ns = 0
        self.repeated_ticks = 0
        self._last: dict[int, tuple[int, float]] = {}  # asset -> (release time, released value)

    def value(self, asset: int, true_value: float, now_ns: int) -> float:
        """The value to share on a tick at rig time ``now_ns``; NaN when withheld (or, before
        exhaustion, when ``true_value`` itself is NaN: nothing to release, nothing spent)."""
        last = self._last.get(asset)
        if last is not None and (
            now_ns // self.interval_ns == last[0] // self.interval_ns
            if self.aligned
            else now_ns - last[0] < self.interval_ns
        ):
            if self.exhausted:
                self.withheld_ticks += 1
                return math.nan
            self.repeated_ticks += 1
            return last[1]
        if math.isnan(true_value) and not self.exhausted:
            return math.nan
        try:
            noisy = self.budget.release(true_value)
        except BudgetExhausted:
            self._last[asset] = (now_ns, math.nan)
            self.withheld_ticks += 1
            self._refused(now_ns)
            return math.nan
        assert isinstance(noisy, float)
        released = self.post(noisy)
        self._last[asset] = (now_ns, released)
        self._event(EventKind.BUDGET_SPENT)
        return released

    def _event(self, kind: EventKind, **extra: Any) -> None:
        if self.emit is None:
            return
        b = self.budget
        details: dict[str, Any] = {
            "venue": b.venue_id,
            "kind": self.name,
            "signal_kind": b.signal_kind,
            "mechanism": b.mechanism.name.lower(),
            "epsilon_spent": b.epsilon_spent,
            "epsilon_total": b.epsilon_total,
            "delta_spent": b.delta_spent,
            "releases": b.releases,
            **extra,
        }
        self.emit(kind, b.signal_kind, details)

    def _refused(self, now_ns: int) -> None:
        if not self.exhausted:
            self.exhausted = True
            self._reported_refusals = self.budget.refusals
            self._next_report_ns = now_ns + REPORT_INTERVAL_NS
            self._event(
                EventKind.BUDGET_REFUSED, reason="exhausted", refusals=self.budget.refusals,
                total_refusals=self.budget.refusals, withheld_ticks=self.withheld_ticks,
            )  # fmt: skip
        elif now_ns >= self._next_report_ns:
            self._next_report_ns = now_ns + REPORT_INTERVAL_NS
            self._summary()

    def _summary(self) -> None:
        new = self.budget.refusals - self._reported_refusals
        if new > 0:
            self._reported_refusals = self.budget.refusals
            self._event(
                EventKind.BUDGET_REFUSED, reason="exhausted", summary=True, refusals=new,
                total_refusals=self.budget.refusals, withheld_ticks=self.withheld_ticks,
            )  # fmt: skip

    def finish(self) -> None:
        """End of run: ledger the refusals not reported yet (one summary event), if any."""
        self._summary()

    def state(self) -> dict[str, Any]:
        """The budget's state plus the release schedule's counters."""
        return {
            **self.budget.state(),
            "release_interval_ms": self.interval_ns / 1e6,
            "exhausted": self.exhausted,
            "repeated_ticks": self.repeated_ticks,
            "withheld_ticks": self.withheld_ticks,
        }


def _liquidity_post(noisy: float) -> float:
    return float(max(0, round(noisy)))


def _correlation_post(noisy: float) -> float:
    return min(1.0, max(-1.0, noisy))


@dataclass(frozen=True)
class PrivacySettings:
    """A venue's privacy budgets in its role config (the orchestrator's resolution of the
    campaign's ``[security.privacy]``)."""

    mechanism: str
    epsilon_total: float
    epsilon_per_release: float
    delta_total: float
    release_interval_ms: float
    correlation_sensitivity: float
    seed: int
    #: None: the position limit (the range of the released value; see rig/config.py)
    liquidity_sensitivity_lots: float | None = None


class SignalPrivacy:
    """A venue's budgeted signals: liquidity (kind 1) and correlation (kind 2), as its
    :class:`PrivacySettings` say; a budget the settings cannot make is a ConfigError naming
    ``source`` and the key ``privacy``."""

    def __init__(
        self,
        venue_id: int,
        settings: PrivacySettings,
        position_limit_lots: int,
        emit: EventSink | None = None,
        source: str = "<privacy>",
        aligned: bool = False,
    ) -> None:
        s = settings
        interval_ns = round(s.release_interval_ms * 1e6)
        self.position_limit_lots = position_limit_lots
        liquidity = s.liquidity_sensitivity_lots
        sensitivities = {
            LIQUIDITY: position_limit_lots if liquidity is None else liquidity,
            CORRELATION: s.correlation_sensitivity,
        }
        posts = {LIQUIDITY: _liquidity_post, CORRELATION: _correlation_post}
        self.signals: dict[int, BudgetedSignal] = {}
        for kind, sensitivity in sensitivities.items():
            try:
                budget = PrivacyBudget(
                    venue_id, kind, s.mechanism, s.epsilon_total,
                    s.delta_total if s.mechanism == "gaussian" else 0.0, s.epsilon_per_release,
                    sensitivity, noise_rng(s.seed, venue_id, kind),
                )  # fmt: skip
            except ConfigError as exc:
                raise ConfigError(str(exc), file=source, key="privacy") from None
            self.signals[kind] = BudgetedSignal(budget, interval_ns, posts[kind], emit, aligned)
        self.interval_ns = interval_ns

    def emit_to(self, emit: EventSink | None) -> None:
        """Send the budget events to ``emit`` (the role's RoleSecurity.event) from now on."""
        for s in self.signals.values():
            s.emit = emit

    def liquidity(self, asset: int, true_lots: int, now_ns: int) -> int:
        """The liquidity_lots to share: noisy, repeated, or :data:`WITHHELD_LOTS`. The true
        value is clipped to [0, position limit] first (what the sensitivity assumes)."""
        clipped = min(max(true_lots, 0), self.position_limit_lots)
        out = self.signals[LIQUIDITY].value(asset, float(clipped), now_ns)
        return WITHHELD_LOTS if math.isnan(out) else int(out)

    def correlation(self, asset: int, true_value: float, now_ns: int) -> float:
        """The correlation to share: noisy, repeated, or NaN (withheld / not estimated)."""
        return self.signals[CORRELATION].value(asset, true_value, now_ns)

    def state(self) -> dict[str, dict[str, Any]]:
        """``{kind name: state}`` for the stats file and kpi.json."""
        return {s.name: s.state() for s in self.signals.values()}

    def finish(self) -> None:
        """End of run: ledger each kind's refusal summary."""
        for s in self.signals.values():
            s.finish()
