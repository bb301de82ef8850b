"""Loopback UDP impairment relay between a device and the rig (netem in user space).

``python -m arbsphere.firmware_interfaces.emulators.impair_relay CONFIG.json`` with::

    {rig_side_host ("127.0.0.1"), rig_side_port (0 = ephemeral),
     device_side_host ("127.0.0.1"), device_side_port (0 = ephemeral),
     rig_host, rig_port, device_host, device_port,
     to_rig: {ImpairmentSpec}, to_device: {ImpairmentSpec},
     spin_us (50), max_pending (65536), ready_path, stats_path}

Two sockets. The device sends to the *device-side* socket; those datagrams go, impaired by
``to_rig``, from the *rig-side* socket to the rig at ``rig_host:rig_port``. The rig sends to the
rig-side socket; those go, impaired by ``to_device``, from the device-side socket to
``device_host:device_port``. Either destination pair may be left out: the relay then replies to
the source of the latest datagram from that peer, like a NAT (a broker answering the relay, a rig
link whose port is only known later); a datagram with no destination yet is counted
(``no_destination``) and not sent. Datagrams are forwarded byte for byte; the relay never parses.

Timing: a datagram's arrival is its kernel software receive stamp (``CLOCK_REALTIME``, the
injected clock's timebase), so a slow wake-up of the relay does not add to the injected delay.
The relay sleeps in ``select`` until ``spin_us`` before the next release, then spins on the
clock, with the process timer slack set to 1 ns. The stats report, per direction, the release
lateness (send time − planned release) p50/p99/max in µs and every counter of the impairer.

``ready_path`` (required when a port is 0) receives ``{host, rig_side_port, device_side_port,
...}`` once both sockets are bound. Runs until SIGTERM/SIGINT; packets still pending then are
counted (``pending``), not sent.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import sys
from pathlib import Path
from typing import Any

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces.device_main import (
    ConfigReader,
    DeviceContext,
    Waker,
    run_device,
)
from arbsphere.firmware_interfaces.emulators.impairment import Impairer, ImpairmentSpec
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
from arbsphere.runtime import StopFlag, write_json_atomic

RELAY_KEYS = (
    "rig_side_host", "rig_side_port", "device_side_host", "device_side_port", "rig_host",
    "rig_port", "device_host", "device_port", "to_rig", "to_device", "spin_us", "max_pending",
    "ready_path", "stats_path",
)  # fmt: skip
MAX_DATAGRAM = 65536
#: datagrams read from one socket before due releases get another look
RX_BATCH = 64
#: longest select() when nothing is pending (a stop request wakes it earlier anyway)
IDLE_S = 0.5
#: idle time in which the impairers may draw their next random numbers (~0.5 ms a block)
PREPARE_S = 0.002
PR_SET_TIMERSLACK = 29
PR_GET_TIMERSLACK = 30


def set_timer_slack(ns: int) -> tuple[int | None, str | None]:
    """Set this process's timer slack (``prctl(PR_SET_TIMERSLACK)``); ``(slack now, error)``."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError) as exc:
        return None, f"prctl unavailable: {exc}"
    zero = ctypes.c_ulong(0)
    if prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), zero, zero, zero) != 0:
        return None, f"prctl(PR_SET_TIMERSLACK, {ns}) failed: {os.strerror(ctypes.get_errno())}"
    got = int(prctl(PR_GET_TIMERSLACK, zero, zero, zero, zero))
    return got, None if got == ns else f"timer slack is {got} ns after setting {ns} ns"


class LatenessHistogram:
    """Release lateness in ns: 100 ns buckets up to 10 ms, exact count and max above that."""

    BUCKET_NS = 100
    BUCKETS = 100_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)  # the last bucket: >= 10 ms
        self.n = 0
        self.max_ns = 0
        self.early = 0  # sends before their planned release (must stay 0)

    def record(self, late_ns: int) -> None:
        if late_ns < 0:
            self.early += 1
            late_ns = 0
        self.n += 1
        self.max_ns = max(self.max_ns, late_ns)
        self.counts[min(late_ns // self.BUCKET_NS, self.BUCKETS)] += 1

    def percentile_us(self, pct: float) -> float | None:
        """Upper edge of the bucket holding the ``pct`` percentile (the max if it overflowed)."""
        if self.n == 0:
            return None
        rank = max(1, -(-self.n * pct // 100))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                if i == self.BUCKETS:
                    return self.max_ns / 1000.0
                return min((i + 1) * self.BUCKET_NS, self.max_ns) / 1000.0
        return self.max_ns / 1000.0  # pragma: no cover - rank <= n

    def summary(self) -> dict[str, Any]:
        return {"count": self.n, "p50_us": self.percentile_us(50.0),
                "p99_us": self.percentile_us(99.0), "max_us": self.max_ns / 1000.0,
                "early": self.early}  # fmt: skip


class Direction:
    """One direction: receive on ``rx``, impair, send from ``tx`` to ``dest``."""

    def __init__(
        self,
        name: str,
        rx: socket.socket,
        tx: socket.socket,
        dest: tuple[str, int] | None,
        spec: ImpairmentSpec,
        max_pending: int,
    ) -> None:
        self.name = name
        self.rx = rx
        self.tx = tx
        self.dest = dest
        self.latched: tuple[str, int] | None = None  # source of the peer's latest datagram
        self.impairer: Impairer[bytes] = Impairer(spec, max_pending=max_pending)
        self.lateness = LatenessHistogram()
        self.kernel_stamps = enable_rx_software_timestamps(rx)
        self.reverse: Direction | None = None
        self.counts = {"received": 0, "bytes_received": 0, "forwarded": 0, "bytes_forwarded": 0,
                       "no_destination": 0, "send_errors": 0, "rx_stamp_fallbacks": 0}  # fmt: skip
        self.last_send_error = ""

    def receive(self, buf: bytearray, clock: Clock) -> None:
        """Read up to :data:`RX_BATCH` waiting datagrams and submit them."""
        view = memoryview(buf)
        for _ in range(RX_BATCH):
            try:
                n, ancdata, _flags, addr = self.rx.recvmsg_into([buf], ANCBUFSIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise LinkError(f"impair relay {self.name}: receive failed: {exc}") from exc
            stamp = kernel_rx_stamp(ancdata) if self.kernel_stamps else None
            if stamp is None:
                stamp = clock.now_ns()
                self.counts["rx_stamp_fallbacks"] += int(self.kernel_stamps)
            self.counts["received"] += 1
            self.counts["bytes_received"] += n
            if self.reverse is not None:
                self.reverse.latched = addr
            self.impairer.submit(bytes(view[:n]), stamp)

    def release_due(self, clock: Clock) -> None:
        """Send every copy whose release time has come, measuring how late each went out."""
        imp = self.impairer
        while (item := imp.pop_due(clock.now_ns())) is not None:
            release, data = item
            dest = self.dest or self.latched
            if dest is None:
                self.counts["no_destination"] += 1
                continue
            t = clock.now_ns()
            try:
                self.tx.sendto(data, dest)
            except OSError as exc:  # a peer not up yet or a full buffer: count, keep relaying
                self.counts["send_errors"] += 1
                self.last_send_error = f"send to {dest[0]}:{dest[1]}: {exc}"
                continue
            self.lateness.record(t - release)
            self.counts["forwarded"] += 1
            self.counts["bytes_forwarded"] += len(data)

    def stats(self) -> dict[str, Any]:
        return {**self.counts, **self.impairer.counters(), "last_send_error": self.last_send_error,
                "timestamp_source": "kernel-software" if self.kernel_stamps else "user-space",
                "lateness": self.lateness.summary(),
                "destination": list(self.dest or self.latched or ()) or None}  # fmt: skip


def relay_loop(
    dirs: list[Direction], clock: Clock, stop: StopFlag, waker: Waker, spin_ns: int
) -> None:
    """Receive, and release on time, until ``stop`` is set (a signal wakes ``waker``)."""
    buf = bytearray(MAX_DATAGRAM)
    by_fd = {d.rx.fileno(): d for d in dirs}
    wake_fd = waker.fileno()
    fds = [*by_fd, wake_fd]
    while not stop.is_set:
        for d in dirs:
            d.release_due(clock)
        nxt = _next_release(dirs)
        timeout = IDLE_S if nxt is None else (nxt - clock.now_ns() - spin_ns) * 1e-9
        if timeout > PREPARE_S and any([d.impairer.prepare() for d in dirs]):
            continue  # drawing took a while: look at the time again
        readable = select.select(fds, [], [], max(timeout, 0.0))[0]
        if wake_fd in readable:
            waker.drain()
        for fd in readable:
            if fd in by_fd:
                by_fd[fd].receive(buf, clock)
        if readable or timeout > 0:
            continue  # something arrived (maybe due sooner) or the sleep ended early/on time
        nxt = _next_release(dirs)
        if nxt is not None:
            while clock.now_ns() < nxt:  # the last spin_ns: spin, a sleep wakes too late
                pass


def _next_release(dirs: list[Direction]) -> int | None:
    times = [t for d in dirs if (t := d.impairer.next_release_ns()) is not None]
    return min(times) if times else None


def _dest(cfg: ConfigReader, host_key: str, port_key: str) -> tuple[str, int] | None:
    if not cfg.has(host_key) and not cfg.has(port_key):
        return None
    if not cfg.has(port_key):
        raise cfg.error(port_key, f"missing required key (given with {cfg.key(host_key)})")
    return (cfg.get_str(host_key, "127.0.0.1"),
            cfg.get_int(port_key, min_value=1, max_value=65535))  # fmt: skip


def _bind(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LinkError(f"impair relay: cannot bind {what} UDP {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    cfg.only(RELAY_KEYS)
    rig_side = (cfg.get_str("rig_side_host", "127.0.0.1"),
                cfg.get_int("rig_side_port", 0, min_value=0, max_value=65535))  # fmt: skip
    dev_side = (cfg.get_str("device_side_host", "127.0.0.1"),
                cfg.get_int("device_side_port", 0, min_value=0, max_value=65535))  # fmt: skip
    rig_dest = _dest(cfg, "rig_host", "rig_port")
    dev_dest = _dest(cfg, "device_host", "device_port")
    to_rig = ImpairmentSpec.from_reader(cfg.get_table("to_rig"), default_seed=1)
    to_device = ImpairmentSpec.from_reader(cfg.get_table("to_device"), default_seed=2)
    spin_ns = round(cfg.get_float("spin_us", 50.0, min_value=0.0, max_value=10_000.0) * 1000)
    max_pending = cfg.get_int("max_pending", 65536, min_value=1, max_value=10_000_000)
    needs_ready = rig_side[1] == 0 or dev_side[1] == 0
    ready = Path(cfg.get_str("ready_path")) if cfg.has("ready_path") or needs_ready else None

    slack, slack_error = set_timer_slack(1)
    ctx.stats.update(timer_slack_ns=slack, timer_slack_error=slack_error, spin_us=spin_ns / 1000)
    clock = RealtimeClock()
    rig_sock = _bind(*rig_side, "rig-side")
    try:
        dev_sock = _bind(*dev_side, "device-side")
    except LinkError:
        rig_sock.close()
        raise
    dirs = [
        Direction("to_rig", dev_sock, rig_sock, rig_dest, to_rig, max_pending),
        Direction("to_device", rig_sock, dev_sock, dev_dest, to_device, max_pending),
    ]
    dirs[0].reverse, dirs[1].reverse = dirs[1], dirs[0]
    rb, db = rig_sock.getsockname(), dev_sock.getsockname()
    ctx.stats.update(rig_side=[rb[0], rb[1]], device_side=[db[0], db[1]])
    try:
        if ready is not None:
            ports = {"rig_side_host": rb[0], "rig_side_port": rb[1],
                     "device_side_host": db[0], "device_side_port": db[1]}  # fmt: skip
            write_json_atomic(ready, {"host": rb[0], **ports})
        relay_loop(dirs, clock, ctx.stop, ctx.waker, spin_ns)
    finally:
        for d in dirs:
            ctx.stats[d.name] = d.stats()
        rig_sock.close()
        dev_sock.close()


if __name__ == "__main__":
    sys.exit(run_device(main, "impair_relay"))
