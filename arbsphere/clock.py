"""Clocks as injected objects: the rig timebase and emulated device clocks.

Nothing in the rig reads the wall clock directly; timestamping, scheduling and timeouts take
a :class:`Clock`. The rig timebase is ``CLOCK_REALTIME`` in integer nanoseconds because the
kernel's ``SO_TIMESTAMPING`` software receive stamps are in that clock, so user-space and
kernel stamps compare directly.

:class:`DeviceClock` models a device's own oscillator relative to a base clock: a settable
offset, a frequency error in ppm and steps at given base times. Emulated devices stamp their
messages with it; the rig converts device times back to rig time with a clock model (identity
until clock alignment estimates one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """A source of integer-nanosecond timestamps."""

    def now_ns(self) -> int:
        """Current time in ns on this clock's timebase."""
        ...


class RealtimeClock:
    """The rig timebase: ``CLOCK_REALTIME`` in ns (the clock kernel RX stamps use)."""

    def now_ns(self) -> int:
        """``CLOCK_REALTIME`` now, in ns."""
        return time.clock_gettime_ns(time.CLOCK_REALTIME)


@dataclass(frozen=True)
class ClockStep:
    """A step of ``delta_ns`` applied to a device clock at base time ``at_ns``."""

    at_ns: int
    delta_ns: int


@dataclass
class DeviceClock:
    """An emulated device oscillator: ``device = base + offset + drift*(base - epoch) + steps``.

    ``epoch_ns`` is the base time from which drift accumulates (normally the emulator's start).
    """

    base: Clock
    offset_ns: int = 0
    drift_ppm: float = 0.0
    epoch_ns: int = 0
    steps: list[ClockStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if abs(self.drift_ppm) > 1000.0:
            raise ValueError(f"drift_ppm {self.drift_ppm} outside ±1000 ppm")
        self.steps = sorted(self.steps, key=lambda s: s.at_ns)

    def device_time(self, base_ns: int) -> int:
        """Device time at base time ``base_ns``."""
        t = base_ns + self.offset_ns + int((base_ns - self.epoch_ns) * self.drift_ppm * 1e-6)
        for step in self.steps:
            if base_ns >= step.at_ns:
                t += step.delta_ns
        return t

    def now_ns(self) -> int:
        """Device time now (at the base clock's now)."""
        return self.device_time(self.base.now_ns())
