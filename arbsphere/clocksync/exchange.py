"""Two-way sync exchanges: the record, the admission gate and the on-disk batch.

One exchange (the rig is master, the device slave; all values integer ns)::

    t1  rig time SYNC left the rig (sent in FOLLOW_UP)
    t2  device time SYNC arrived at the device
    t3  device time DELAY_REQ left the device (DELAY_REQ carries t2 and t3)
    t4  rig time DELAY_REQ arrived at the rig

    offset θ (device − rig) = ((t2 − t1) − (t4 − t3)) / 2
    path delay              = ((t2 − t1) + (t4 − t3)) / 2 = round trip / 2
    round trip              = (t4 − t1) − (t3 − t2)

:class:`ExchangeGate` admits exchanges of known devices in sequence order and rejects the rest
with a counted reason (never silently); only admitted exchanges reach the estimator.
:class:`ExchangeLog` keeps every offered exchange with its status in an
:data:`EXCHANGE_DTYPE` array that saves to and loads from ``.npy``, so a run's exchanges can be
re-estimated offline with exactly the online result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from arbsphere.clocksync.settings import ClockSyncSettings
from arbsphere.errors import ConfigError, ResultSetError

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
#: Sequence numbers remembered per device to tell a duplicate from an out-of-order exchange; an
#: exchange repeating an older seq than these is counted as out of order (still rejected).
SEEN_SEQ_LIMIT = 4096

#: One stored exchange; ``status`` is an :class:`ExchangeStatus` value.
EXCHANGE_DTYPE = np.dtype(
    [
        ("device_id", "<u4"),
        ("seq", "<u8"),
        ("t1", "<i8"),
        ("t2", "<i8"),
        ("t3", "<i8"),
        ("t4", "<i8"),
        ("status", "u1"),
    ]
)


class ExchangeStatus(IntEnum):
    """Verdict of the gate: admitted, or the reason for rejection."""

    ADMITTED = 0
    UNKNOWN_DEVICE = 1
    DUPLICATE = 2
    OUT_OF_ORDER = 3
    LATE = 4
    INCONSISTENT = 5

    @property
    def key(self) -> str:
        """Counter name: ``admitted``, ``unknown_device``, ``duplicate``, ..."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class SyncExchange:
    """One two-way exchange with ``device_id`` (see the module docstring for t1..t4)."""

    device_id: int
    seq: int
    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def round_trip_ns(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)

    @property
    def offset2_ns(self) -> int:
        """Twice the measured offset θ (device − rig), exact in integers."""
        return (self.t2 - self.t1) - (self.t4 - self.t3)

    @property
    def offset_ns(self) -> float:
        return self.offset2_ns / 2

    @property
    def midpoint_ns(self) -> int:
        """Rig time the measured offset belongs to: ``t1 + (t4 - t1) // 2``."""
        return self.t1 + (self.t4 - self.t1) // 2


def _fits_i64(*values: int) -> bool:
    return all(_I64_MIN <= v <= _I64_MAX for v in values)


class ExchangeGate:
    """Admits exchanges of ``device_ids``; rejects and counts the rest.

    Checks in order: unknown device, duplicate (a seq already offered for that device),
    out of order (seq <= last admitted seq), inconsistent (t4 < t1, t3 < t2, negative round
    trip, a value outside int64 or a negative seq), late (t4 − t1 > ``max_age_ns``). Counters
    are kept per device id (unknown ids included) and per :attr:`ExchangeStatus.key`.
    """

    def __init__(
        self,
        device_ids: Iterable[int],
        settings: ClockSyncSettings | None = None,
        log: ExchangeLog | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ClockSyncSettings()
        self.log = log
        ids = list(device_ids)
        for d in ids:
            if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= _U32_MAX:
                raise ConfigError(
                    f"device id must be an integer in 0..2^32-1, got {d!r}", key="device_ids"
                )
        self._known = frozenset(ids)
        self._last_seq: dict[int, int] = {}
        self._seen: dict[int, set[int]] = {d: set() for d in ids}
        self._seen_order: dict[int, deque[int]] = {d: deque() for d in ids}
        self._counts: dict[int, dict[str, int]] = {d: _zero_counts() for d in ids}

    @property
    def device_ids(self) -> frozenset[int]:
        return self._known

    def offer(self, ex: SyncExchange) -> ExchangeStatus:
        """Judge ``ex``, count the verdict, log it (if a log was given) and return it."""
        status = self._judge(ex)
        counts = self._counts.setdefault(ex.device_id, _zero_counts())
        counts[status.key] += 1
        if status is ExchangeStatus.ADMITTED:
            self._last_seq[ex.device_id] = ex.seq
        if self.log is not None:
            self.log.append(ex, status)
        return status

    def _judge(self, ex: SyncExchange) -> ExchangeStatus:
        if ex.device_id not in self._known:
            return ExchangeStatus.UNKNOWN_DEVICE
        seen = self._seen[ex.device_id]
        if ex.seq in seen:
            return ExchangeStatus.DUPLICATE
        order = self._seen_order[ex.device_id]
        seen.add(ex.seq)
        order.append(ex.seq)
        if len(order) > SEEN_SEQ_LIMIT:
            seen.discard(order.popleft())
        last = self._last_seq.get(ex.device_id)
        if last is not None and ex.seq <= last:
            return ExchangeStatus.OUT_OF_ORDER
        if (
            not 0 <= ex.seq <= _U64_MAX
            or not _fits_i64(ex.t1, ex.t2, ex.t3, ex.t4)
            or ex.t4 < ex.t1
            or ex.t3 < ex.t2
            or ex.round_trip_ns < 0
        ):
            return ExchangeStatus.INCONSISTENT
        if ex.t4 - ex.t1 > self.settings.max_age_ns:
            return ExchangeStatus.LATE
        return ExchangeStatus.ADMITTED

    def counts(self, device_id: int) -> dict[str, int]:
        """Counters of one device (all zero for a device never seen)."""
        return dict(self._counts.get(device_id, _zero_counts()))

    def counters(self) -> dict[int, dict[str, int]]:
        """Counters of every device seen or known, unknown ids included."""
        return {d: dict(c) for d, c in sorted(self._counts.items())}

    def totals(self) -> dict[str, int]:
        out = _zero_counts()
        for c in self._counts.values():
            for k, v in c.items():
                out[k] += v
        return out


def _zero_counts() -> dict[str, int]:
    return {s.key: 0 for s in ExchangeStatus}


class ExchangeLog:
    """Every offered exchange with its status, as a growing :data:`EXCHANGE_DTYPE` array.

    Values that do not fit the dtype (only possible for exchanges rejected as inconsistent) are
    clamped to its range; their status says they were never used.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._buf = np.zeros(max(1, capacity), dtype=EXCHANGE_DTYPE)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, ex: SyncExchange, status: ExchangeStatus) -> None:
        if self._n == len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros(len(self._buf), dtype=EXCHANGE_DTYPE)])
        row = self._buf[self._n]
        row["device_id"] = min(max(ex.device_id, 0), _U32_MAX)
        row["seq"] = min(max(ex.seq, 0), _U64_MAX)
        for name in ("t1", "t2", "t3", "t4"):
            row[name] = min(max(getattr(ex, name), _I64_MIN), _I64_MAX)
        row["status"] = int(status)
        self._n += 1

    def array(self) -> np.ndarray:
        """A copy of the logged exchanges in offer order."""
        return self._buf[: self._n].copy()

    def save(self, path: Path) -> None:
        save_exchanges(path, self.array())


def save_exchanges(path: Path, exchanges: np.ndarray) -> None:
    """Write an :data:`EXCHANGE_DTYPE` array to ``path`` (``.npy``)."""
    _check_dtype(exchanges, str(path))
    np.save(path, exchanges, allow_pickle=False)


def load_exchanges(path: Path) -> np.ndarray:
    """Read an exchange array written by :func:`save_exchanges`."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ResultSetError(f"{path}: cannot read exchanges: {exc}") from exc
    _check_dtype(arr, str(path))
    return arr


def _check_dtype(arr: np.ndarray, where: str) -> None:
    if arr.dtype != EXCHANGE_DTYPE or arr.ndim != 1:
        raise ResultSetError(
            f"{where}: expected a 1-d array of dtype {EXCHANGE_DTYPE}, got {arr.ndim}-d {arr.dtype}"
        )


def iter_exchanges(
    exchanges: np.ndarray,
    device_id: int | None = None,
    status: ExchangeStatus | None = ExchangeStatus.ADMITTED,
) -> Iterator[SyncExchange]:
    """The stored exchanges (of one device / with one status, if given) in stored order."""
    _check_dtype(exchanges, "exchanges")
    mask = np.ones(len(exchanges), dtype=bool)
    if device_id is not None:
        mask &= exchanges["device_id"] == device_id
    if status is not None:
        mask &= exchanges["status"] == int(status)
    for row in exchanges[mask].tolist():
        yield SyncExchange(*(int(v) for v in row[:6]))
