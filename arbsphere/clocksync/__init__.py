"""Clock synchronisation of devices to the rig timebase (the rig is master and models each clock).

Modules: :mod:`.exchange` (the two-way exchange record, admission gate, stored batch),
:mod:`.estimator` (lucky-packet filter, robust offset/drift fit, step detection, servo state),
:mod:`.model` (clock models converting device timestamps to rig time with an uncertainty),
:mod:`.settings` (the validated settings of all three). Pure: no I/O but ``.npy`` files, no
clock reads, no randomness.

Layer: a subsystem. It imports only the error tree; it must not import journal, security,
the roles, replay, kpi or rig.
"""

from arbsphere.clocksync.estimator import ClockEstimator, EstimateUpdate, estimate_offline
from arbsphere.clocksync.exchange import (
    EXCHANGE_DTYPE,
    ExchangeGate,
    ExchangeLog,
    ExchangeStatus,
    SyncExchange,
    iter_exchanges,
    load_exchanges,
    save_exchanges,
)
from arbsphere.clocksync.model import (
    HISTORY_DTYPE,
    ClockModel,
    Conversion,
    ConversionArray,
    PiecewiseClockModel,
    ServoState,
)
from arbsphere.clocksync.settings import ClockSyncSettings

__all__ = [
    "EXCHANGE_DTYPE",
    "HISTORY_DTYPE",
    "ClockEstimator",
    "ClockModel",
    "ClockSyncSettings",
    "Conversion",
    "ConversionArray",
    "EstimateUpdate",
    "ExchangeGate",
    "ExchangeLog",
    "ExchangeStatus",
    "PiecewiseClockModel",
    "ServoState",
    "SyncExchange",
    "estimate_offline",
    "iter_exchanges",
    "load_exchanges",
    "save_exchanges",
]
