"""The coordinator role's configuration: what the orchestrator decides for one run, as frozen
dataclasses. The orchestrator builds a :class:`CoordinatorRoleConfig` from the campaign and
writes it as JSON; the role process reads it back into the same dataclass
(:func:`arbsphere.runtime.config_from_json`), so its keys and types are checked in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.errors import ConfigError
from arbsphere.security.role_security import SecuritySettings


@dataclass(frozen=True)
class JournalSettings:
    """Where and how the coordinator journals its inputs, batches and outputs."""

    dir: str
    durability: str = "interval"
    segment_bytes: int = 64 << 20
    #: fsync interval (durability "interval"): time, records, or both
    interval_ns: int | None = None
    interval_records: int | None = None
    #: a benchmark mode: the recorder on during even periods of this length, off during odd
    #: ones (0: always on); such a journal cannot be replayed
    interleave_ns: int = 0


@dataclass(frozen=True)
class FederatedSettings:
    """Federated coordination: the venues solve their x-updates in rounds over a ROUTER."""

    rounds_endpoint: str
    #: "price" (the price protocol) or "admm" (exchange ADMM)
    protocol: str
    #: nominal cost of one round, for the latency budget's cap on rounds
    ns_per_round: float
    round_timeout_ms: int
    #: a venue without a quote for this long (quote time) is frozen at its plan lots
    stale_after_ms: float
    #: a venue that let a round time out is probed again after this much quote time
    unresponsive_retry_ms: float
    #: the rounds in masked shares (secure aggregation) rather than in clear
    secure_aggregation: bool = False
    #: the venues' SignalShares' release epoch (secure aggregation; None: no shares)
    signal_release_interval_ms: float | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("price", "admm"):
            raise ConfigError(f"must be 'price' or 'admm' (value {self.protocol!r})",
                              key="protocol")  # fmt: skip


@dataclass(frozen=True)
class CoordinatorRoleConfig:
    """Everything the coordinator process is told by the orchestrator."""

    out_dir: str
    inbound_endpoint: str
    outbound_endpoint: str
    n_venues: int
    n_assets: int
    min_delta_lots: int
    #: the most queued messages one wake-up takes (then it solves)
    max_batch: int
    #: nominal cost of one ADMM iteration, for the latency budget's cap on iterations
    ns_per_iteration: float
    admm: AdmmSettings
    #: None: no journal
    journal: JournalSettings | None = None
    #: None: central coordination (the venues send their local problems)
    federated: FederatedSettings | None = None
    #: the role's security table (written by the campaign registry, checked by
    #: :class:`~arbsphere.security.role_security.SecuritySettings`); None: plaintext, no tags
    security: SecuritySettings | None = None
    #: venue name -> venue id (the rounds' peers and the signal epochs' names)
    venue_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"must be >= 1, got {self.max_batch}", key="max_batch")
        if self.journal is not None and self.journal.interleave_ns and self.federated:
            raise ConfigError(
                "recorder interleaving needs central coordination", key="journal.interleave_ns"
            )

    @property
    def coordination(self) -> str:
        """ "central" or "federated" (as the journal's CONFIG record and the stats name it)."""
        return "central" if self.federated is None else "federated"
