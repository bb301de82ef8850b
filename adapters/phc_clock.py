"""A NIC's PTP hardware clock (PHC, ``/dev/ptp<N>``) against the rig's clock: the offset that
turns a raw hardware stamp into rig time (``CLOCK_REALTIME`` ns), and how sure that is.

One measurement is a set of sandwiches (system time before, PHC time, system time after), read
with the first of these the driver answers (``linux/ptp_clock.h``):

* ``PTP_SYS_OFFSET_EXTENDED`` — the driver reads the system clock right around its PHC read,
  ``n_samples`` times: ``ts[i] = [before, phc, after]``;
* ``PTP_SYS_OFFSET`` — older drivers: ``2n + 1`` interleaved stamps ``sys, phc, sys, ...``, so
  sample ``i`` is ``(ts[2i], ts[2i+1], ts[2i+2])`` (wider: it spans whole system calls);
* ``clock_gettime`` on the PHC's dynamic POSIX clock (``FD_TO_CLOCKID(fd)``) between two
  ``clock_gettime(CLOCK_REALTIME)`` from here (widest: it spans Python calls).

The narrowest sandwich gives the offset ``phc - (before + after) / 2`` and a half-width that
bounds its error. Between measurements (:class:`PhcConversion`, re-measured every
``interval_ns``) the last offset is held, so a stamp's uncertainty is that half-width plus how far
the two clocks drift apart over one interval: the drift observed between the last two
measurements (before there are two: ``assumed_drift_ppm``). :attr:`PhcConversion.uncertainty_ns`
is the largest such bound of the run; it goes into every stage bound that ends on the link's
hardware stamps.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbsphere.clock import Clock
from arbsphere.errors import LinkError

#: struct ptp_clock_time: sec (s64), nsec (u32), reserved (u32)
_CLOCK_TIME = struct.Struct("=qII")
PTP_MAX_SAMPLES = 25
#: n_samples, rsv[3]
_HEAD = struct.Struct("=I12x")
_EXTENDED_SIZE = _HEAD.size + PTP_MAX_SAMPLES * 3 * _CLOCK_TIME.size
_SYS_OFFSET_SIZE = _HEAD.size + (2 * PTP_MAX_SAMPLES + 1) * _CLOCK_TIME.size


def _ioc(direction: int, nr: int, size: int) -> int:
    """``_IOC(direction, PTP_CLK_MAGIC '=', nr, size)`` (asm-generic/ioctl.h)."""
    return (direction << 30) | (size << 16) | (ord("=") << 8) | nr


PTP_SYS_OFFSET = _ioc(1, 5, _SYS_OFFSET_SIZE)  # _IOW
PTP_SYS_OFFSET_EXTENDED = _ioc(3, 9, _EXTENDED_SIZE)  # _IOWR
METHOD_EXTENDED = "PTP_SYS_OFFSET_EXTENDED"
METHOD_SYS_OFFSET = "PTP_SYS_OFFSET"
METHOD_CLOCK_GETTIME = "clock_gettime(FD_TO_CLOCKID)"
#: samples asked per measurement
N_SAMPLES = 5

IoctlFn = Callable[[int, int, Any], Any]


def _ns(data: bytes, offset: int) -> int:
    sec, nsec, _ = _CLOCK_TIME.unpack_from(data, offset)
    return int(sec) * 1_000_000_000 + int(nsec)


def sys_offset_request(n_samples: int, size: int) -> bytes:
    """The request buffer of ``PTP_SYS_OFFSET[_EXTENDED]``: n_samples, the rest zero."""
    if not 1 <= n_samples <= PTP_MAX_SAMPLES:
        raise ValueError(f"n_samples must be 1 .. {PTP_MAX_SAMPLES}, got {n_samples}")
    return _HEAD.pack(n_samples) + bytes(size - _HEAD.size)


def parse_sys_offset_extended(reply: bytes) -> list[tuple[int, int, int]]:
    """``struct ptp_sys_offset_extended`` -> (before, phc, after) ns per sample."""
    if len(reply) != _EXTENDED_SIZE:
        raise LinkError(f"ptp_sys_offset_extended reply of {len(reply)} bytes, "
                        f"expected {_EXTENDED_SIZE}")  # fmt: skip
    (n,) = _HEAD.unpack_from(reply, 0)
    if not 1 <= n <= PTP_MAX_SAMPLES:
        raise LinkError(f"ptp_sys_offset_extended reply with n_samples {n}")
    step = _CLOCK_TIME.size
    out = []
    for i in range(n):
        base = _HEAD.size + 3 * i * step
        out.append((_ns(reply, base), _ns(reply, base + step), _ns(reply, base + 2 * step)))
    return out


def parse_sys_offset(reply: bytes) -> list[tuple[int, int, int]]:
    """``struct ptp_sys_offset`` (interleaved sys, phc, ..., sys) -> (before, phc, after)."""
    if len(reply) != _SYS_OFFSET_SIZE:
        raise LinkError(f"ptp_sys_offset reply of {len(reply)} bytes, "
                        f"expected {_SYS_OFFSET_SIZE}")  # fmt: skip
    (n,) = _HEAD.unpack_from(reply, 0)
    if not 1 <= n <= PTP_MAX_SAMPLES:
        raise LinkError(f"ptp_sys_offset reply with n_samples {n}")
    stamps = [_ns(reply, _HEAD.size + k * _CLOCK_TIME.size) for k in range(2 * n + 1)]
    return [(stamps[2 * i], stamps[2 * i + 1], stamps[2 * i + 2]) for i in range(n)]


@dataclass(frozen=True)
class PhcOffset:
    """One measurement: PHC minus system clock at ``at_ns`` (system time), within
    ``half_width_ns``."""

    offset_ns: int
    half_width_ns: int
    at_ns: int
    method: str


def narrowest(samples: list[tuple[int, int, int]], method: str) -> PhcOffset:
    """The offset from the narrowest well-formed sandwich (``before <= after``)."""
    good = [s for s in samples if s[0] <= s[2]]
    if not good:
        raise LinkError(f"{method}: no sample with system time before <= after: {samples}")
    before, phc, after = min(good, key=lambda s: s[2] - s[0])
    mid = (before + after) // 2
    return PhcOffset(phc - mid, (after - before + 1) // 2, mid, method)


def fd_to_clockid(fd: int) -> int:
    """``FD_TO_CLOCKID``: the dynamic POSIX clock id of an open ``/dev/ptp<N>``."""
    return ((~fd) << 3) | 3


class PhcReader:
    """Measurements of one ``/dev/ptp<N>`` against ``CLOCK_REALTIME``. ``ioctl`` and
    ``gettime`` (``time.clock_gettime_ns``) are replaceable, so a test answers with recorded
    kernel replies."""

    def __init__(
        self, device: str, *, fd: int | None = None, ioctl: IoctlFn = fcntl.ioctl,
        gettime: Callable[[int], int] = time.clock_gettime_ns,
    ) -> None:  # fmt: skip
        self.device = device
        if fd is None:
            try:
                fd = os.open(device, os.O_RDONLY)
            except OSError as exc:
                raise LinkError(f"cannot open the PTP hardware clock {device}: {exc}") from exc
        self.fd = fd
        self._ioctl = ioctl
        self._gettime = gettime
        self.method: str | None = None

    def _extended(self) -> PhcOffset:
        buf = bytearray(sys_offset_request(N_SAMPLES, _EXTENDED_SIZE))
        self._ioctl(self.fd, PTP_SYS_OFFSET_EXTENDED, buf)
        return narrowest(parse_sys_offset_extended(bytes(buf)), METHOD_EXTENDED)

    def _sys_offset(self) -> PhcOffset:
        buf = bytearray(sys_offset_request(N_SAMPLES, _SYS_OFFSET_SIZE))
        self._ioctl(self.fd, PTP_SYS_OFFSET, buf)
        return narrowest(parse_sys_offset(bytes(buf)), METHOD_SYS_OFFSET)

    def _clock_gettime(self) -> PhcOffset:
        clk = fd_to_clockid(self.fd)
        samples = []
        for _ in range(N_SAMPLES):
            before = self._gettime(time.CLOCK_REALTIME)
            phc = self._gettime(clk)
            samples.append((before, phc, self._gettime(time.CLOCK_REALTIME)))
        return narrowest(samples, METHOD_CLOCK_GETTIME)

    def measure(self) -> PhcOffset:
        """One measurement with the best method the driver answers (found on the first call,
        then kept); LinkError naming the device when none works."""
        methods = {METHOD_EXTENDED: self._extended, METHOD_SYS_OFFSET: self._sys_offset,
                   METHOD_CLOCK_GETTIME: self._clock_gettime}  # fmt: skip
        if self.method is not None:
            return methods[self.method]()
        refused = []
        for name, fn in methods.items():
            try:
                found = fn()
            except OSError as exc:
                if exc.errno not in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
                    raise LinkError(f"{self.device}: {name} failed: {exc}") from exc
                refused.append(f"{name}: {exc}")
                continue
            self.method = name
            return found
        raise LinkError(f"{self.device}: no way to read the PHC against the system clock "
                        f"({'; '.join(refused)})")  # fmt: skip

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PhcConversion:
    """Raw hardware stamps (PHC ns) to rig time, re-measured every ``interval_ns`` (rig clock)
    when :meth:`refresh` is called; see the module docstring for the uncertainty."""

    def __init__(
        self, reader: PhcReader, clock: Clock, *, interval_ns: int = 100_000_000,
        assumed_drift_ppm: float = 100.0,
    ) -> None:  # fmt: skip
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        self.reader = reader
        self.clock = clock
        self.interval_ns = interval_ns
        self.assumed_drift_ppm = assumed_drift_ppm
        self.measurements = 0
        self.drift_ppm: float | None = None
        self.uncertainty_ns = 0
        self.last = self._measure()
        self.offset_ns = self.last.offset_ns
        self.next_due_ns = clock.now_ns() + interval_ns

    def _measure(self) -> PhcOffset:
        m = self.reader.measure()
        self.measurements += 1
        drift = abs(self.drift_ppm if self.drift_ppm is not None else self.assumed_drift_ppm)
        bound = m.half_width_ns + int(drift * self.interval_ns / 1e6 + 0.5)
        self.uncertainty_ns = max(self.uncertainty_ns, bound)
        return m

    def refresh(self, now_ns: int) -> bool:
        """Re-measure if due; True when it did."""
        if now_ns < self.next_due_ns:
            return False
        self.next_due_ns = now_ns + self.interval_ns
        prev = self.last
        m = self.reader.measure()
        self.measurements += 1
        if m.at_ns > prev.at_ns:
            self.drift_ppm = (m.offset_ns - prev.offset_ns) * 1e6 / (m.at_ns - prev.at_ns)
        bound = m.half_width_ns + int(abs(self.drift_ppm or 0.0) * self.interval_ns / 1e6 + 0.5)
        self.uncertainty_ns = max(self.uncertainty_ns, bound)
        self.last = m
        self.offset_ns = m.offset_ns
        return True

    def to_rig(self, phc_ns: int) -> int:
        return phc_ns - self.offset_ns

    def summary(self) -> dict[str, Any]:
        return {
            "device": self.reader.device, "method": self.last.method,
            "offset_ns": self.offset_ns, "half_width_ns": self.last.half_width_ns,
            "drift_ppm": None if self.drift_ppm is None else round(self.drift_ppm, 4),
            "uncertainty_ns": self.uncertainty_ns, "interval_ns": self.interval_ns,
            "measurements": self.measurements,
        }  # fmt: skip

    def close(self) -> None:
        self.reader.close()
