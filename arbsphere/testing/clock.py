"""The step clock: one :class:`~arbsphere.clock.Clock` a test steers, for every fake time."""

from __future__ import annotations

from arbsphere.clock import Clock


class StepClock:
    """A clock the test steers.

    A read returns ``now`` — plus the ``base`` clock's reading when one is given, so a real
    clock shifted by ``now`` — then moves ``now`` on by ``step_ns``: 0 (the default) is a time
    that stands still until the test sets ``now`` or calls :meth:`advance` / :meth:`sleep`; a
    positive step makes each read a later instant (the cost of the code between two reads).
    ``last`` is what the latest read returned (0 before the first). :meth:`sleep` moves time
    instead of waiting, so code with a sleeping-clock parameter runs at once.
    """

    def __init__(self, now: int = 0, step_ns: int = 0, *, base: Clock | None = None) -> None:
        if step_ns < 0:
            raise ValueError(f"step_ns must be >= 0 (a clock never runs back), got {step_ns}")
        self.now = now
        self.step_ns = step_ns
        self.base = base
        self.last = 0

    def now_ns(self) -> int:
        t = self.now if self.base is None else self.base.now_ns() + self.now
        self.now += self.step_ns
        self.last = t
        return t

    def advance(self, ns: int) -> None:
        """Move time on by ``ns``."""
        if ns < 0:
            raise ValueError(f"advance({ns}): a clock never runs back")
        self.now += ns

    def sleep(self, seconds: float) -> None:
        """Move time on by ``seconds`` at once. A sleep of 0 s or less fails: on a clock that
        only moves when told, the caller would spin forever."""
        if not seconds > 0:
            raise AssertionError(f"sleep({seconds!r}) on a step clock: the caller would spin")
        self.now += round(seconds * 1e9)
