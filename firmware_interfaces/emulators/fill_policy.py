"""How the emulated broker answers an ORDER: fill, partial fill, reject — now or late.

Orders are immediate-or-cancel: an ACK is final, and a PARTIAL (or a REJECT) leaves the rest
unfilled for good; the coordinator must compensate. ``fill_mode = "full"`` fills every order
at once. ``fill_mode = "mixed"`` draws each order's fate from a hash of (seed, order_id) —
deterministic per order whatever the timing or the order of arrival, so a run's fills are
reproducible — with the configured probabilities:

* ``reject``: REJECT, nothing filled;
* ``partial``: PARTIAL, ``floor(size x f)`` filled with f uniform in [0.2, 0.8) (may be 0);
* otherwise FILL, everything;
* independently, ``late``: the ACK is held ``late_ms`` before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbsphere.firmware_interfaces import messages as dm

FILL_MODES = ("full", "mixed")
_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele, Lea, Flood 2014): a well-mixed 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _uniform(seed: int, order_id: int, stream: int) -> float:
    return splitmix64(splitmix64(seed ^ (stream << 56)) ^ order_id) / float(1 << 64)


@dataclass(frozen=True)
class FillPolicy:
    mode: str = "full"
    reject: float = 0.0
    partial: float = 0.0
    late: float = 0.0
    late_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in FILL_MODES:
            raise ValueError(f"fill_mode {self.mode!r}: must be one of {FILL_MODES}")
        for name in ("reject", "partial", "late"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fills.{name} = {p!r}: a probability in [0, 1]")
        if self.reject + self.partial > 1.0:
            raise ValueError(f"fills.reject + fills.partial = {self.reject + self.partial}: > 1")
        if not 0.0 <= self.late_ms <= 60_000.0:
            raise ValueError(f"fills.late_ms = {self.late_ms!r}: in [0, 60000]")
        if self.mode == "full" and (self.reject or self.partial or self.late):
            raise ValueError("fill probabilities need fill_mode = 'mixed'")

    def decide(self, order_id: int, size_lots: int) -> tuple[int, int, int]:
        """(status, filled lots (unsigned), hold ns) for one order."""
        if self.mode == "full":
            return dm.ACK_STATUS_FILL, size_lots, 0
        u = _uniform(self.seed, order_id, 1)
        hold = int(self.late_ms * 1e6) if _uniform(self.seed, order_id, 3) < self.late else 0
        if u < self.reject:
            return dm.ACK_STATUS_REJECT, 0, hold
        if u < self.reject + self.partial:
            frac = 0.2 + 0.6 * _uniform(self.seed, order_id, 2)
            return dm.ACK_STATUS_PARTIAL, int(size_lots * frac), hold
        return dm.ACK_STATUS_FILL, size_lots, hold
