"""How loaded the host was while a campaign measured: per-role CPU and context switches.

Latency on a shared host is mostly scheduling: a hop that wakes a process waits for a free CPU.
A result set therefore says how busy the CPUs were *in the measured window* (not start-up,
imports or JIT warm-up): the orchestrator samples ``/proc`` while the traffic runs
(:class:`LoadMonitor`), and the window's figures go into the manifest's ``resources.window``
and ``kpi.json``'s ``host_load``:

- per role: CPU % of one CPU (user + system, all threads), voluntary and involuntary context
  switches per second (involuntary = the kernel took the CPU away: contention), CPU µs per
  tick the feeds sent in the window;
- the rig roles' CPU as a share of all CPUs' capacity (``rig_busy_pct``), and the host's busy
  share from ``/proc/stat`` (every process, the rig's and others'; left out with a note when
  it reads below the rig's own share, as some virtual machines' accounting does), split into
  ``steal_pct`` (the hypervisor ran another guest while this one had work) and
  ``other_busy_pct`` (processes that are not the rig's): a run whose latency jumped with
  either was disturbed from outside, not by the code under test.

A role that exits inside the window (a feed device at the schedule's end) is counted up to its
last sample. Linux only; elsewhere the monitor records nothing and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process's cumulative CPU (clock ticks, all threads) and context switches."""

    cpu_ticks: int
    voluntary: int
    involuntary: int


def sample_process(pid: int, proc: Path = PROC) -> ProcessSample | None:
    """The process's counters now, or None when it is gone (or not readable)."""
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_text()
        # fields after the ")" of the command name: state is field 3, utime 14, stime 15
        fields = stat.rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])
        vol = inv = 0
        for task in (base / "task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    inv += int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    if fields[0] == "Z":  # exited, not yet reaped: its counters are final but say nothing new
        return None
    return ProcessSample(cpu, vol, inv)


def sample_host(proc: Path = PROC) -> tuple[int, int, int] | None:
    """(busy, total, steal) clock ticks over all CPUs since boot, from the ``cpu`` line of
    /proc/stat (idle and iowait are not busy; guest time is already inside user; steal, the
    time the hypervisor ran someone else while this guest had work, is inside busy)."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
        values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return None
    total = sum(values)
    return total - values[3] - values[4], total, values[7]


class LoadMonitor:
    """Samples the roles' processes and the host between :meth:`start` and the last
    :meth:`sample`; :meth:`summary` gives the window's figures. Call :meth:`sample` from the
    orchestrator's watch loop (a few times a second: each call reads a few /proc files per
    thread)."""

    def __init__(self, pids: dict[str, int], clock_ns: Any, proc: Path = PROC) -> None:
        self.pids = dict(pids)
        self.clock_ns = clock_ns
        self.proc = proc
        self._first: dict[str, tuple[int, ProcessSample]] = {}
        self._last: dict[str, tuple[int, ProcessSample]] = {}
        self._host_first: tuple[int, tuple[int, int, int]] | None = None
        self._host_last: tuple[int, tuple[int, int, int]] | None = None
        self.started = False

    def start(self) -> None:
        self.started = True
        self.sample()

    def sample(self) -> None:
        if not self.started:
            return
        now = int(self.clock_ns())
        for name, pid in self.pids.items():
            s = sample_process(pid, self.proc)
            if s is None:
                continue
            self._first.setdefault(name, (now, s))
            self._last[name] = (now, s)
        host = sample_host(self.proc)
        if host is not None:
            if self._host_first is None:
                self._host_first = (now, host)
            self._host_last = (now, host)

    def summary(self, ticks_in_window: int | None = None) -> dict[str, Any]:
        """The window's figures (see the module docstring); ``ticks_in_window``: ticks the
        feeds sent in it, for CPU µs per tick."""
        if not self._first:
            return {"note": "no /proc samples (not Linux, or the run never reached its window)"}
        roles: dict[str, Any] = {}
        rig_ticks = 0
        for name in sorted(self._first):
            t0, a = self._first[name]
            t1, b = self._last[name]
            span_s = (t1 - t0) / 1e9
            if span_s <= 0:
                continue
            cpu_s = (b.cpu_ticks - a.cpu_ticks) / _TICKS_PER_S
            rig_ticks += b.cpu_ticks - a.cpu_ticks
            row: dict[str, Any] = {
                "cpu_pct": round(100.0 * cpu_s / span_s, 1),
                "voluntary_cs_per_s": round((b.voluntary - a.voluntary) / span_s, 1),
                "involuntary_cs_per_s": round((b.involuntary - a.involuntary) / span_s, 1),
                "span_s": round(span_s, 3),
            }
            roles[name] = row
        cpus = os.cpu_count() or 1
        out: dict[str, Any] = {"cpus": cpus, "roles": roles}
        spans = [r["span_s"] for r in roles.values()]
        if spans:
            span = max(spans)
            out["span_s"] = span
            # the rig roles' CPU as a share of all CPUs' capacity over the window
            rig_busy = 100.0 * rig_ticks / _TICKS_PER_S / (span * cpus)
            out["rig_busy_pct"] = round(rig_busy, 1)
        if self._host_first is not None and self._host_last is not None and spans:
            (_, (busy0, total0, steal0)), (_, (busy1, total1, steal1)) = (
                self._host_first,
                self._host_last,
            )
            host_busy = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
            if total1 > total0 and host_busy >= out["rig_busy_pct"] - 2.0:
                out["host_busy_pct"] = round(host_busy, 1)
                # what the window's latency competed with besides the rig itself: other
                # processes on this host, and the hypervisor running other guests (steal)
                out["steal_pct"] = round(100.0 * (steal1 - steal0) / (total1 - total0), 2)
                out["other_busy_pct"] = round(
                    max(0.0, host_busy - out["rig_busy_pct"] - out["steal_pct"]), 1
                )
            else:
                # some virtual machines under-account /proc/stat (its counters advanced
                # slower than the CPUs' capacity): the per-process figures stand, this not
                out["host_busy_pct"] = None
                out["host_note"] = (
                    f"/proc/stat says {host_busy:.1f} % busy, below the rig's own "
                    f"{out['rig_busy_pct']} %: its accounting is not usable on this host"
                )
        out["rig_cpu_pct_of_one_cpu"] = round(sum(r["cpu_pct"] for r in roles.values()), 1)
        if ticks_in_window:
            for row in roles.values():
                row["cpu_us_per_tick"] = round(
                    row["cpu_pct"] / 100.0 * row["span_s"] * 1e6 / ticks_in_window, 2
                )
        return out
