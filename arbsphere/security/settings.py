"""The security settings of a campaign (``[security]``), as loaded and validated by
:mod:`arbsphere.rig.config`: plain frozen values, read by the roles and the campaign registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from arbsphere.privacy.settings import PrivacyConfig


@dataclass(frozen=True)
class SecurityConfig:
    """``[security]``: CurveZMQ transport, per-message tags, credentials and the governance
    ledger (see arbsphere/security). Everything is on by default; ``transport = "plaintext"``
    and ``tags = false`` are explicit opt-outs written into the manifest and the report."""

    #: "curve": CurveZMQ + ZAP credential checks on every pipeline socket; "plaintext": neither
    transport: str = "curve"
    #: HMAC-SHA256 tags (per-link keys from X25519 + HKDF) with replay and skew windows
    tags: bool = True
    #: Ed25519 attestations on PlanDeltas, verified by the broker adapter before any order
    attest_plan_deltas: bool = False
    #: lifetime of a credential; roles renew at half-life
    credential_validity_s: float = 900.0
    #: per-sender replay window (nonces) and timestamp skew window
    replay_window: int = 1024
    max_past_ms: float = 2000.0
    max_future_ms: float = 500.0
    #: the registry asks the coordinator (and venues) to sign a ledger checkpoint this often
    checkpoint_interval_s: float = 5.0
    #: ``[security.privacy]``: privacy budgets on the venues' shared signals
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    #: federated rounds: venues send pairwise-masked shares, the coordinator learns sums only
    #: (and each solve's revealed trades); needs admm.alpha = 1 and at most 16 venues
    secure_aggregation: bool = True
