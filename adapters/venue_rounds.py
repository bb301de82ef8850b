"""A venue adapter's side of the federated rounds: DualVariables in, LocalSolution out.

The adapter's DEALER socket (identity ``venue-<id>``) talks to the coordinator's ROUTER. Per
message: BEGIN freezes the venue's current local problem for the solve (cold: z = 0) and
answers round 1; ITERATE settles z with the coordinator's x̄ and answers the next round; FINAL
settles z; ABORT drops the solve. Only x_i leaves the venue. A completed solve's consensus
price (FINAL's −y) and the venue's own mid it solved with feed the venue's cross-venue
correlation estimate (:mod:`.venue_signals`), which its SharedSignals carry. Each solve's
frozen problem is recorded in the venue's own solve trace (``<name>.solves.npy``): the rig —
not the coordinator — uses it to compute the centralized baseline of every solve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock
from arbsphere.contracts import Registry
from arbsphere.errors import DecodeError, SolverError
from arbsphere.rounds_protocol import (
    FLAG_COLD,
    PHASE_ABORT,
    PHASE_BEGIN,
    PHASE_FINAL,
    PHASE_ITERATE,
)
from arbsphere.tracebuf import TraceBuffer

VENUE_SOLVE_DTYPE = np.dtype(
    [
        ("solve_id", "<u8"),
        ("asset", "<u2"),
        ("problem_seq", "<u8"),
        ("c", "<f8"),
        ("gamma", "<f8"),
        ("phi", "<f8"),
        ("limit", "<f8"),
        ("begin_rx_ns", "<i8"),
        ("rounds", "<u4"),  # rounds the venue answered
        ("final", "u1"),  # 1 FINAL seen, 2 aborted
    ]
)


class VenueRounds:
    """Answers the coordinator's rounds with the venue's x-update."""

    def __init__(
        self, sock: Any, registry: Registry, solver: VenueSolver, venue_id: int,
        sender_id: int, clock: Clock, correlation: EwmaCorrelation | None = None,
    ) -> None:  # fmt: skip
        self.sock = sock
        self.correlation = correlation
        self._mid = np.zeros(solver.n_assets)  # the venue's mid in the current solve
        self.reg = registry
        self.solver = solver
        self.venue_id = venue_id
        self.sender_id = sender_id
        self.clock = clock
        self.dual_id = registry.schema("DualVariables", 2).id
        self.solution_schema = registry.schema("LocalSolution")
        m = solver.n_assets
        self._packer = registry.packer(self.solution_schema, m)
        self._u = np.zeros(m)
        self._xbar = np.zeros(m)
        self._price = np.zeros(m)  # y = rho u per asset, as the coordinator sent it
        self.nonce = 0
        self.solves = TraceBuffer(VENUE_SOLVE_DTYPE)
        self._rows: list[int] = []  # solve trace rows of the solve in progress
        self._seq = 0  # tick sequence of the problem the solve in progress runs on
        self.counts = {
            "round_messages": 0, "solutions_out": 0, "solves": 0, "aborted": 0,
            "bad_messages": 0, "not_quoted": 0,
        }  # fmt: skip
        self.last_error = ""

    def on_readable(self) -> None:
        """Handle every queued coordinator message."""
        while True:
            try:
                data = self.sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            self.handle(data, self.clock.now_ns())

    def _bad(self, why: str) -> None:
        self.counts["bad_messages"] += 1
        self.last_error = why

    def handle(self, data: bytes, rx_ns: int) -> bytes | None:
        """Apply one DualVariables message; returns (and sends) the LocalSolution, if any."""
        try:
            schema, v = self.reg.decode_values(data)
        except DecodeError as exc:
            self._bad(str(exc))
            return None
        if schema.id != self.dual_id or schema.version != 2:
            self._bad(f"rounds socket: {schema.name} v{schema.version} from coordinator")
            return None
        self.counts["round_messages"] += 1
        # values: envelope (7), solve_id, round, n_assets, phase, flags, iterations, converged,
        # rho, alpha, primal_res, dual_res, then (asset_id, price, u, xbar) per asset
        solve_id, round_no, n_assets, phase, flags = v[7:12]
        rho, alpha = v[14], v[15]
        m = self.solver.n_assets
        if n_assets != m:
            self._bad(f"DualVariables with {n_assets} assets, venue solves {m}")
            return None
        for k in range(m):
            a = v[18 + 4 * k]
            if a >= m:
                self._bad(f"DualVariables asset {a}, venue solves {m}")
                return None
            self._price[a] = v[19 + 4 * k]
            self._u[a] = v[20 + 4 * k]
            self._xbar[a] = v[21 + 4 * k]
        solver = self.solver
        try:
            if phase == PHASE_BEGIN:
                if not solver.quoted.all():
                    self.counts["not_quoted"] += 1
                frozen = solver.begin(solve_id, cold=bool(flags & FLAG_COLD))
                self._seq = frozen.problem_seq
                self.counts["solves"] += 1
                self._rows = []
                self._mid[:] = frozen.c
                for a in range(m):
                    self._rows.append(self.solves.n)
                    self.solves.append((solve_id, a, frozen.problem_seq, frozen.c[a],
                                        frozen.gamma[a], frozen.phi[a], frozen.limit[a],
                                        rx_ns, 0, 0))  # fmt: skip
            elif solve_id != solver.solve_id:
                self._bad(f"DualVariables for solve {solve_id}, venue is in {solver.solve_id}")
                return None
            elif phase in (PHASE_ITERATE, PHASE_FINAL):
                solver.settle(self._xbar, alpha)
            elif phase == PHASE_ABORT:
                solver.abort()
                self.counts["aborted"] += 1
                self._close(2)
                return None
            else:
                self._bad(f"DualVariables phase {phase}")
                return None
            if phase == PHASE_FINAL:
                self._close(1)
                if self.correlation is not None:
                    for a in range(m):  # consensus price = -y = -rho u
                        self.correlation.observe(a, float(self._mid[a]), -float(self._price[a]))
                return None
            x = solver.iterate(self._u, rho)
        except SolverError as exc:
            self._bad(str(exc))
            return None
        items: list[float | int] = []
        for a in range(m):
            items += (a, float(x[a]))
        self.nonce += 1
        out = self._packer.pack(
            *self.reg.envelope_values(self.solution_schema, m, self.sender_id, self.nonce,
                                      self.clock.now_ns()),
            solve_id, round_no, self.venue_id, m, self._seq, *items,
        )  # fmt: skip
        self.sock.send(out, copy=True)
        self.counts["solutions_out"] += 1
        return out

    def _close(self, how: int) -> None:
        view = self.solves.view()
        for row in self._rows:
            view[row]["rounds"] = self.solver.round
            view[row]["final"] = how
        self._rows = []
