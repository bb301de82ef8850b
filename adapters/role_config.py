"""The venue and broker adapters' configurations: what the orchestrator decides for one run, as
frozen dataclasses. The orchestrator builds them from the campaign and writes them as JSON; the
adapter process reads the file back into the same dataclass
(:func:`arbsphere.runtime.config_from_json`), so keys and types are checked in one place. A
device link's settings are the dataclass its backend names (:mod:`.backends`).
"""

from __future__ import annotations

from dataclasses import dataclass

from arbsphere.adapters.backends import BrokerLinkSpec, FeedLinkSpec
from arbsphere.adapters.feed_arming import ArmingSettings
from arbsphere.adapters.signal_privacy import PrivacySettings
from arbsphere.adapters.sync_master import SyncSettings
from arbsphere.errors import ConfigError
from arbsphere.security.role_security import SecuritySettings


@dataclass(frozen=True)
class VenueFederation:
    """Federated coordination, the venue's side: it answers the coordinator's rounds and keeps
    its local problem."""

    rounds_endpoint: str
    #: the protocol the campaign speaks: "price" or "admm" (exchange ADMM)
    protocol: str
    #: the signal shares' release epoch (secure aggregation)
    signal_release_interval_ms: float
    #: the rounds and the signals in masked shares (needs the ``security`` table)
    secure_aggregation: bool = False
    #: the liquidity and correlation signals released through privacy budgets (None: clear)
    privacy: PrivacySettings | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("price", "admm"):
            raise ConfigError(f"must be 'price' or 'admm' (value {self.protocol!r})",
                              key="protocol")  # fmt: skip


@dataclass(frozen=True)
class VenueRoleConfig:
    """Everything a venue adapter process is told by the orchestrator."""

    name: str
    venue_id: int
    #: the envelope's sender id of the venue's messages
    sender_id: int
    out_dir: str
    link: FeedLinkSpec
    #: the venue's costs: fee (basis points of the mid) and impact per lot²
    fee_bp: float
    gamma: float
    position_limit_lots: int
    #: the tick's latency budget the venue's messages carry
    budget_ns: int
    coordinator_endpoint: str
    n_venues: int
    #: the assets the venue quotes (a tick quotes one of them)
    n_assets: int = 1
    #: the clock-sync exchange with the feed device (None: none)
    sync: SyncSettings | None = None
    #: the start handshake with the feed device (None: the device has its schedule already,
    #: an emulator the orchestrator launched)
    arming: ArmingSettings | None = None
    #: None: central coordination (the venue sends its local problems)
    federated: VenueFederation | None = None
    #: the role's security table (written by the campaign registry, checked by
    #: :class:`~arbsphere.security.role_security.SecuritySettings`); None: plaintext, no tags
    security: SecuritySettings | None = None

    def __post_init__(self) -> None:
        if self.n_assets < 1:
            raise ConfigError(f"must be >= 1, got {self.n_assets}", key="n_assets")
        if self.federated is not None and self.federated.secure_aggregation and not self.security:
            raise ConfigError(
                "secure aggregation needs the security table", key="federated.secure_aggregation"
            )


@dataclass(frozen=True)
class BrokerRoleConfig:
    """Everything the broker adapter process is told by the orchestrator."""

    name: str
    out_dir: str
    #: the broker device's id: the header of every ORDER addressed to it
    device_id: int
    link: BrokerLinkSpec
    #: the coordinator's PlanDelta PUSH and report PULL
    plan_endpoint: str
    report_endpoint: str
    n_venues: int
    n_assets: int
    #: test rigging: corrupt the plan replica every k-th TRADE delta (0: off)
    replica_fault_every: int = 0
    #: the clock-sync exchange with the broker device (None: none)
    sync: SyncSettings | None = None
    #: as :attr:`VenueRoleConfig.security`
    security: SecuritySettings | None = None
