"""The privacy settings of a campaign (``[security.privacy]``), as loaded and validated by
:mod:`arbsphere.rig.config`: plain frozen values, read by the venues' budgets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrivacyConfig:
    """``[security.privacy]``: differential-privacy budgets on the SharedSignals a venue derives
    from its private state (federated mode; see arbsphere/adapters/signal_privacy.py).

    One :class:`~arbsphere.privacy.budget.PrivacyBudget` per venue and signal kind
    (1 liquidity — the borrow proxy, 2 correlation) for the whole run, under basic sequential
    composition (k releases cost k·epsilon_per_release, and k·delta for Gaussian). A venue
    releases a fresh noisy value of each kind at most every ``release_interval_ms`` of tick
    time; the ticks between repeat the last released value (post-processing: free). Once a
    budget cannot pay a release, the signal is withheld (liquidity_lots = -1, correlation = NaN)
    for the rest of the run and the refusal is ledgered."""

    enabled: bool = True
    #: "laplace" (pure epsilon-DP) or "gaussian" (classical (epsilon, delta) calibration,
    #: epsilon_per_release < 1)
    mechanism: str = "laplace"
    #: the run's budget per venue and signal kind; at the defaults 100 releases, 50 s of ticks
    epsilon_total: float = 10.0
    epsilon_per_release: float = 0.1
    #: gaussian only: the run's delta per venue and signal kind (split evenly over the releases)
    delta_total: float = 1e-5
    release_interval_ms: float = 500.0
    #: L1 sensitivity of the released liquidity (lots). The released value is the venue's
    #: tradeable liquidity min(displayed size, position limit), so it lies in
    #: [0, position_limit_lots]: any two private states (limits, books) move it by at most the
    #: position limit — the default (None) uses each venue's ``position_limit_lots``, which
    #: hides the whole limit (at a noise scale of limit/epsilon_per_release lots). A smaller
    #: value, e.g. 1, is "lot-level" privacy: it only hides a change of the limit or the book
    #: by that many lots (a change of k·sensitivity lots costs k times the epsilon).
    liquidity_sensitivity_lots: float | None = None
    #: L1 sensitivity of the released correlation: the EWMA estimate is clamped to [-1, 1] and
    #: one changed increment pair can move it across that range (no bound on an increment,
    #: and early on few pairs), so 2
    correlation_sensitivity: float = 2.0
    #: noise seed; None: the campaign seed. Each venue and kind draws from its own
    #: numpy Generator seeded with (seed, venue_id, kind) — reproducible, never a global RNG.
    #: Reproducible also means: whoever knows the seed can subtract the noise. The seed is in
    #: the campaign file and the manifest, so the rig's noise is a measurement of the
    #: mechanism's cost, not protection against a reader of the result set.
    seed: int | None = None
