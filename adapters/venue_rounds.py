"""A venue adapter's side of the federated rounds: DualVariables in, LocalSolution out.

The adapter's DEALER socket (identity ``venue-<id>``) talks to the coordinator's ROUTER. Per
message: BEGIN freezes the venue's current local problem for the solve (cold: z = 0) and
answers round 1; ITERATE settles z with the coordinator's x̄ and answers the next round; FINAL
settles z; ABORT drops the solve. Only x_i leaves the venue. A completed solve's consensus
price (FINAL's −y) and the venue's own mid it solved with feed the venue's cross-venue
correlation estimate (:mod:`.venue_signals`), which its SharedSignals carry. Each solve's
frozen problem is recorded in the venue's own solve trace (``<name>.solves.npy``): the rig —
not the coordinator — uses it to compute the centralized baseline of every solve.

Under secure aggregation (a :class:`~arbsphere.privacy.secure_agg.MaskingParty` given, by the
venue adapter's role sockets) the venue speaks DualVariables v3 / LocalSolution v2 and nothing
else: each round's answer is a masked share (x in fixed point, ‖x‖², ‖x − z_old‖²; see
:mod:`arbsphere.privacy.secure_rounds`), masked among the solve's participants; it keeps its
x of every
round of the solve, and REVEAL (which closes the solve like FINAL) is answered with the x of
the round the coordinator names — the venue's trades. A clear DualVariables v2 is refused (no
downgrade to clear x). The z after every round of the first solves is kept for the rig's
convergence plot (``<name>.rounds_z.npy``: under secure aggregation the coordinator never
learns it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zmq

from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock
from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import AggregationError, ContractError, DecodeError, SolverError
from arbsphere.privacy.secure_agg import MaskingParty
from arbsphere.privacy.secure_rounds import (
    KIND_REVEAL,
    KIND_SHARE,
    members,
    reveal_words,
    share_length,
    share_words,
)
from arbsphere.rounds_protocol import (
    FLAG_COLD,
    PHASE_ABORT,
    PHASE_BEGIN,
    PHASE_FINAL,
    PHASE_ITERATE,
    PHASE_REVEAL,
)
from arbsphere.tracebuf import TraceBuffer

# DualVariables positions in its decode_values tuple: v2 (in clear) and v3 (secure
# aggregation: v2's header fields at the same positions, then participants and reveal_round)
_DUAL_V2 = default_registry().fields("DualVariables", 2)
_DUAL_V3 = default_registry().fields("DualVariables", 3)
_DUAL_HEAD = _DUAL_V2.span("solve_id", "round", "n_assets", "phase", "flags")
_RHO, _ALPHA = _DUAL_V2.rho, _DUAL_V2.alpha
if (_DUAL_V3.span("solve_id", "round", "n_assets", "phase", "flags"), _DUAL_V3.rho,
        _DUAL_V3.alpha) != (_DUAL_HEAD, _RHO, _ALPHA):  # fmt: skip
    raise ContractError("DualVariables v2 and v3 must share their leading header fields")
_DUAL_V3_MASKS = _DUAL_V3.span("participants", "reveal_round")
#: (start, stop, stride) of the first item's asset_id, price, u, xbar
_DUAL_V2_ITEMS = (*_DUAL_V2.item_span("asset_id", "price", "u", "xbar"), _DUAL_V2.stride)
_DUAL_V3_ITEMS = (*_DUAL_V3.item_span("asset_id", "price", "u", "xbar"), _DUAL_V3.stride)

# The packers take values in declared order: the answers' pack calls below pass them so
default_registry().fields("LocalSolution", 1).expect(
    ("solve_id", "round", "venue_id", "n_assets", "problem_seq"), ("asset_id", "x")
)
default_registry().fields("LocalSolution", 2).expect(
    ("solve_id", "round", "venue_id", "kind", "problem_seq", "participants", "n_words"),
    ("word",),
)

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
        ("z_final", "<f8"),  # the venue's z after the solve's last round (NaN unless final 1)
    ]
)


#: the first solves whose z the venue keeps after every round (secure aggregation)
CONVERGENCE_SOLVES = 256


class VenueRounds:
    """Answers the coordinator's rounds with the venue's x-update."""

    def __init__(
        self, sock: Any, registry: SchemaRegistry, solver: VenueSolver, venue_id: int,
        sender_id: int, clock: Clock, correlation: EwmaCorrelation | None = None,
        masking: MaskingParty | None = None,
    ) -> None:  # fmt: skip
        self.sock = sock
        self.correlation = correlation
        self._mid = np.zeros(solver.n_assets)  # the venue's mid in the current solve
        self.reg = registry
        self.solver = solver
        self.venue_id = venue_id
        self.sender_id = sender_id
        self.clock = clock
        self.masking = masking
        self._dual_version = 3 if masking is not None else 2
        self.dual_id = registry.schema("DualVariables", self._dual_version).id
        self.solution_schema = registry.schema("LocalSolution", 2 if masking else 1)
        m = solver.n_assets
        self._packer = registry.packer(self.solution_schema, m)
        self._share_packer = registry.packer(self.solution_schema, share_length(m))
        self._iterates: list[np.ndarray] = []  # masked: x of every round of the solve
        self._participants = 0
        #: masked: the participants of the latest DualVariables received (0: none yet)
        self.latest_participants = 0
        #: masked: (solve id, round) and z after that round, first CONVERGENCE_SOLVES solves
        self.round_ids: list[tuple[int, int]] = []
        self.round_z: list[np.ndarray] = []
        self._u = np.zeros(m)
        self._xbar = np.zeros(m)
        self._price = np.zeros(m)  # y = rho u per asset, as the coordinator sent it
        self.nonce = 0
        self.solves = TraceBuffer(VENUE_SOLVE_DTYPE)
        self._rows: list[int] = []  # solve trace rows of the solve in progress
        self._seq = 0  # tick sequence of the problem the solve in progress runs on
        self.counts = {
            "round_messages": 0, "solutions_out": 0, "solves": 0, "aborted": 0,
            "bad_messages": 0, "not_quoted": 0, "reveals": 0,
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
        if schema.id != self.dual_id or schema.version != self._dual_version:
            self._bad(f"rounds socket: {schema.name} v{schema.version} from coordinator")
            return None
        self.counts["round_messages"] += 1
        solve_id, round_no, n_assets, phase, flags = v[_DUAL_HEAD]
        rho, alpha = v[_RHO], v[_ALPHA]
        m = self.solver.n_assets
        if n_assets != m:
            self._bad(f"DualVariables with {n_assets} assets, venue solves {m}")
            return None
        participants = reveal_round = 0
        if self.masking is not None:
            participants, reveal_round = v[_DUAL_V3_MASKS]
            self.latest_participants = participants  # who is in: the signal shares mask so
        if not self._read_items(v, m):
            return None
        solver = self.solver
        try:
            if phase == PHASE_BEGIN:
                self._begin(solve_id, flags, participants, rx_ns)
            elif solve_id != solver.solve_id:
                self._bad(f"DualVariables for solve {solve_id}, venue is in {solver.solve_id}")
                return None
            elif phase in (PHASE_ITERATE, PHASE_FINAL) or (
                phase == PHASE_REVEAL and self.masking is not None
            ):
                self._settle(alpha)
            elif phase == PHASE_ABORT:
                solver.abort()
                self.counts["aborted"] += 1
                self._close(2)
                return None
            else:
                self._bad(f"DualVariables phase {phase}")
                return None
            if phase in (PHASE_FINAL, PHASE_REVEAL):
                self._close(1)
                if self.correlation is not None:
                    for a in range(m):  # consensus price = -y = -rho u
                        self.correlation.observe(a, float(self._mid[a]), -float(self._price[a]))
                if phase == PHASE_FINAL:
                    return None
                return self._reveal(solve_id, reveal_round)
            z_old = solver.z.copy() if self.masking is not None else None
            x = solver.iterate(self._u, rho)
        except SolverError as exc:
            self._bad(str(exc))
            return None
        if z_old is not None:
            return self._share(solve_id, round_no, x, z_old)
        return self._solution(solve_id, round_no, x)

    def _read_items(self, v: tuple[Any, ...], m: int) -> bool:
        """The DualVariables' per-asset price, u and x̄ (False: an asset the venue does not
        solve, counted)."""
        lo, hi, stride = _DUAL_V3_ITEMS if self.masking is not None else _DUAL_V2_ITEMS
        for k in range(m):
            at = stride * k
            a, price, u, xbar = v[lo + at : hi + at]
            if a >= m:
                self._bad(f"DualVariables asset {a}, venue solves {m}")
                return False
            self._price[a] = price
            self._u[a] = u
            self._xbar[a] = xbar
        return True

    def _begin(self, solve_id: int, flags: int, participants: int, rx_ns: int) -> None:
        """A new solve: the solver's problem frozen, one solve trace row per asset."""
        solver = self.solver
        if not solver.quoted.all():
            self.counts["not_quoted"] += 1
        frozen = solver.begin(solve_id, cold=bool(flags & FLAG_COLD))
        self._seq = frozen.problem_seq
        self.counts["solves"] += 1
        self._rows = []
        self._iterates = []
        self._participants = participants
        self._mid[:] = frozen.c
        for a in range(solver.n_assets):
            self._rows.append(self.solves.n)
            self.solves.append((solve_id, a, frozen.problem_seq, frozen.c[a],
                                frozen.gamma[a], frozen.phi[a], frozen.limit[a],
                                rx_ns, 0, 0, np.nan))  # fmt: skip

    def _solution(self, solve_id: int, round_no: int, x: np.ndarray) -> bytes:
        """The clear LocalSolution of the round's ``x``, sent."""
        m = self.solver.n_assets
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

    def _settle(self, alpha: float) -> None:
        solver = self.solver
        record = (
            solver.pending and self.masking is not None and solver.solve_id <= CONVERGENCE_SOLVES
        )
        solver.settle(self._xbar, alpha)
        if record:
            self.round_ids.append((solver.solve_id, solver.round))
            self.round_z.append(solver.z.copy())

    def _send(self, out: bytes) -> bytes:
        self.sock.send(out, copy=True)
        self.counts["solutions_out"] += 1
        return out

    def _share(
        self, solve_id: int, round_no: int, x: np.ndarray, z_old: np.ndarray
    ) -> bytes | None:
        """The masked share of this round's x (kept for the reveal)."""
        assert self.masking is not None
        self._iterates.append(x.copy())
        d = x - z_old
        ids = members(self._participants)
        try:
            if self.venue_id not in ids:
                raise AggregationError(
                    f"venue {self.venue_id} is not among the participants {ids}",
                    reason="not_participant",
                )
            words = share_words(x, float(x @ x), float(d @ d))
            if len(ids) > 1:  # a lone participant's sum is its input: nothing to mask
                words = self.masking.mask_encoded(
                    words, round_id=solve_id, iteration=round_no, participants=ids,
                    epoch=self._participants,
                )  # fmt: skip
        except AggregationError as exc:
            self._bad(f"solve {solve_id} round {round_no}: cannot mask: {exc}")
            return None
        self.nonce += 1
        return self._send(self._share_packer.pack(
            *self.reg.envelope_values(self.solution_schema, len(words), self.sender_id,
                                      self.nonce, self.clock.now_ns()),
            solve_id, round_no, self.venue_id, KIND_SHARE, self._seq, self._participants,
            len(words), *words.tolist(),
        ))  # fmt: skip

    def _reveal(self, solve_id: int, reveal_round: int) -> bytes | None:
        """The x of round ``reveal_round`` of this solve, in clear: the venue's trades."""
        if not 1 <= reveal_round <= len(self._iterates):
            self._bad(f"REVEAL of round {reveal_round}: solve {solve_id} ran "
                      f"{len(self._iterates)} rounds")  # fmt: skip
            return None
        words = reveal_words(self._iterates[reveal_round - 1])
        self._iterates = []
        self.counts["reveals"] += 1
        self.nonce += 1
        return self._send(self._packer.pack(
            *self.reg.envelope_values(self.solution_schema, len(words), self.sender_id,
                                      self.nonce, self.clock.now_ns()),
            solve_id, reveal_round, self.venue_id, KIND_REVEAL, self._seq, self._participants,
            len(words), *words.tolist(),
        ))  # fmt: skip

    def save_convergence(self, out_dir: Path, name: str) -> None:
        """``<name>.rounds_z.npy`` (K x m) and ``<name>.rounds_z_ids.npy`` (K x 2: solve id,
        round): this venue's z after every round of the first solves (secure aggregation)."""
        m = self.solver.n_assets
        z = np.array(self.round_z) if self.round_z else np.zeros((0, m))
        np.save(out_dir / f"{name}.rounds_z.npy", z)
        np.save(out_dir / f"{name}.rounds_z_ids.npy",
                np.array(self.round_ids, np.int64).reshape(-1, 2))  # fmt: skip

    def _close(self, how: int) -> None:
        view = self.solves.view()
        for a, row in enumerate(self._rows):
            view[row]["rounds"] = self.solver.round
            view[row]["final"] = how
            if how == 1:
                view[row]["z_final"] = self.solver.z[a]
        self._rows = []
