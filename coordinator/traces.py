"""What the coordinator records about its own work: the row layouts of its trace tables (the
per-tick solve trace, the execution reports, the federated solves) and the realized net position
tracked from the execution reports as they arrive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SOLVE_TRACE_DTYPE = np.dtype(
    [
        ("venue", "<u2"),
        ("asset", "<u2"),
        ("seq", "<u8"),
        ("rx_ns", "<i8"),
        ("solve_done_ns", "<i8"),
        ("merge_done_ns", "<i8"),
        ("sent_ns", "<i8"),
        ("delta_id", "<u8"),  # 0: no PlanDelta (changed nothing, or never reached a solve)
        ("n_legs", "<u2"),
        ("iterations", "<u4"),
        ("converged", "u1"),
        ("objective_gap", "<f8"),
        ("max_abs_net_lots", "<i8"),
        ("batch", "<u4"),  # receive batch (wake-up) number: replay needs the boundaries
        ("solved", "u1"),  # the tick's quote was in the state a solve ran on
        ("superseded", "u1"),  # a later tick of the batch overwrote this one's quote
        ("trigger", "u1"),  # the batch's newest tick: the solve and any delta are its
    ]
)

FILL_TRACE_DTYPE = np.dtype(
    [
        ("order_id", "<u8"),
        ("delta_id", "<u8"),
        ("venue", "<u2"),
        ("asset", "<u2"),
        ("status", "u1"),
        ("filled_lots", "<i8"),
        ("device_rx_ns", "<i8"),
        ("device_tx_ns", "<i8"),
        ("rig_tx_ns", "<i8"),
        ("rig_rx_ns", "<i8"),
        ("coord_rx_ns", "<i8"),
    ]
)


FED_SOLVE_DTYPE = np.dtype(
    [
        ("solve_id", "<u8"),
        ("row", "<i8"),  # trace row of the solve's trigger tick
        ("rounds", "<u4"),
        ("max_rounds", "<u4"),  # the budget's cap
        ("converged", "u1"),
        ("aborted", "u1"),
        ("primal_res", "<f8"),
        ("dual_res", "<f8"),
        ("started_ns", "<i8"),  # first round sent
        ("ended_ns", "<i8"),  # last round closed
    ]
)


class RealizedNet:
    """|Σ_venues executed lots| per asset over time, from the execution reports as they arrive:
    its maximum, its time integral (lot·s) and each episode away from zero (start -> back to
    zero: the time to re-neutralize)."""

    def __init__(self, n_assets: int) -> None:
        self.max_abs = 0
        self.integral_lot_ns = 0.0
        self.episodes_ns: list[int] = []
        self._since: int | None = None
        self._last_ns: int | None = None
        self._last_abs = 0

    def observe(self, executed: np.ndarray, t_ns: int) -> None:
        net = int(np.abs(executed.sum(axis=0)).max())
        if self._last_ns is not None:
            self.integral_lot_ns += self._last_abs * max(0, t_ns - self._last_ns)
        self._last_ns, self._last_abs = t_ns, net
        self.max_abs = max(self.max_abs, net)
        if net and self._since is None:
            self._since = t_ns
        elif not net and self._since is not None:
            self.episodes_ns.append(t_ns - self._since)
            self._since = None

    def summary(self) -> dict[str, Any]:
        ep = np.asarray(self.episodes_ns, dtype=float) / 1e6
        return {
            "max_abs_lots": self.max_abs,
            "integral_lot_s": self.integral_lot_ns / 1e9,
            "episodes": len(ep),
            "open_at_stop": self._since is not None,
            "final_abs_lots": self._last_abs,
            "time_to_reneutralize_ms": {
                "p50": float(np.percentile(ep, 50)) if len(ep) else None,
                "p99": float(np.percentile(ep, 99)) if len(ep) else None,
                "max": float(ep.max()) if len(ep) else None,
            },
        }
