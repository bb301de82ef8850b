"""A venue adapter's side of the federated price protocol: PriceProposal in, PriceResponse out.

The same DEALER socket as the exchange-ADMM rounds (:mod:`.venue_rounds`). The first QUERY of
a solve (flag BEGIN) freezes the venue's current local problem (:class:`VenueSolver.begin`);
every QUERY is answered with the venue's share at the proposed prices — its best response,
left and right slopes and breakpoint ladder (:mod:`arbsphere.price_protocol`), pairwise-masked
among the solve's participants under secure aggregation; REVEAL is answered with the best
response at the proposed prices in clear (the venue's trades) and closes the solve; ABORT
drops it. Only those words leave the venue. A closed solve's price (−λ, the consensus price)
and the venue's own mid feed its correlation estimate, as in the ADMM rounds; each solve's
frozen problem goes into the venue's solve trace for the rig's baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from arbsphere.adapters.venue_rounds import VENUE_SOLVE_DTYPE
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock
from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import AggregationError, DecodeError, SolverError
from arbsphere.price_protocol import (
    FLAG_BEGIN,
    KIND_PRICE_REVEAL,
    KIND_PRICE_SHARE,
    PRICE_ABORT,
    PRICE_QUERY,
    PRICE_REVEAL,
    PriceShareEncoder,
    best_response,
)
from arbsphere.privacy.secure_agg import MaskingParty
from arbsphere.privacy.secure_rounds import members, reveal_words
from arbsphere.tracebuf import TraceBuffer

# PriceProposal positions in its decode_values tuple
_PROPOSAL = default_registry().fields("PriceProposal", 1)
_HEAD = _PROPOSAL.span("solve_id", "round", "n_assets", "phase", "flags", "participants")
_ASSET = _PROPOSAL.items + _PROPOSAL.item.asset_id
_PRICE = _PROPOSAL.items + _PROPOSAL.item.price
_ITEMS, _STRIDE = _PROPOSAL.items, _PROPOSAL.stride
# The response packers take values in declared order: the pack calls below pass them so
default_registry().fields("PriceResponse", 1).expect(
    ("solve_id", "round", "venue_id", "kind", "problem_seq", "participants", "n_words"),
    ("word",),
)


class VenuePrices:
    """Answers the coordinator's price proposals with the venue's best response."""

    protocol = "price"

    def __init__(
        self, sock: Any, registry: SchemaRegistry, solver: VenueSolver, venue_id: int,
        sender_id: int, clock: Clock, correlation: EwmaCorrelation | None = None,
        masking: MaskingParty | None = None,
    ) -> None:  # fmt: skip
        self.sock = sock
        self.reg = registry
        self.solver = solver
        self.venue_id = venue_id
        self.sender_id = sender_id
        self.clock = clock
        self.correlation = correlation
        self.masking = masking
        self.proposal_id = registry.schema("PriceProposal").id
        self.response_schema = registry.schema("PriceResponse")
        m = solver.n_assets
        self.encoder = PriceShareEncoder(m)
        self._share_packer = registry.packer(self.response_schema, self.encoder.words.size)
        self._reveal_packer = registry.packer(self.response_schema, 2 * m)
        self._lam = np.zeros(m)
        self._mid = np.zeros(m)
        self._x = np.zeros(m)
        self._participants = 0
        #: the participants of the latest proposal (the signal shares mask among them)
        self.latest_participants = 0
        self.nonce = 0
        self.solves = TraceBuffer(VENUE_SOLVE_DTYPE)
        self._rows: list[int] = []
        self._seq = 0
        self._open = False  # a solve is in progress (BEGIN seen, not closed)
        self._rounds = 0
        self.counts = {
            "round_messages": 0, "solutions_out": 0, "solves": 0, "aborted": 0,
            "bad_messages": 0, "not_quoted": 0, "reveals": 0,
        }  # fmt: skip
        self.last_error = ""

    @staticmethod
    def warm_up() -> None:
        """Compile (or load from Numba's cache) the answer's kernels before any timing
        matters: on a fresh clone the first proposal would otherwise stall the adapter for
        seconds (its serial feed device then gives up writing)."""
        one = np.ones(1)
        PriceShareEncoder(1).encode(one * 100.0, one * 1e-3, one * 0.01, one * 10.0, -one * 100.0)
        best_response(100.0, 1e-3, 0.01, 10.0, -100.0)

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
        """Apply one PriceProposal; returns (and sends) the PriceResponse, if any."""
        try:
            schema, v = self.reg.decode_values(data)
        except DecodeError as exc:
            self._bad(str(exc))
            return None
        if schema.id != self.proposal_id:
            self._bad(f"rounds socket: {schema.name} v{schema.version} from coordinator "
                      "(the campaign's protocol is price)")  # fmt: skip
            return None
        self.counts["round_messages"] += 1
        solve_id, round_no, n_assets, phase, flags, participants = v[_HEAD]
        m = self.solver.n_assets
        if n_assets != m or len(v) != _ITEMS + _STRIDE * m:
            self._bad(f"PriceProposal with {n_assets} assets, venue solves {m}")
            return None
        for k in range(m):
            a = v[_ASSET + _STRIDE * k]
            if a >= m:
                self._bad(f"PriceProposal asset {a}, venue solves {m}")
                return None
            self._lam[a] = v[_PRICE + _STRIDE * k]
        self.latest_participants = participants
        solver = self.solver
        if phase == PRICE_QUERY and flags & FLAG_BEGIN:
            self._begin(solve_id, participants, rx_ns)
        elif solve_id != solver.solve_id or not self._open:
            self._bad(f"PriceProposal for solve {solve_id}, venue is in {solver.solve_id}")
            return None
        if phase == PRICE_QUERY:
            self._rounds += 1
            return self._share(solve_id, round_no)
        if phase == PRICE_REVEAL:
            return self._reveal(solve_id, round_no)
        if phase == PRICE_ABORT:
            self.counts["aborted"] += 1
            self._close(2)
            return None
        self._bad(f"PriceProposal phase {phase}")
        return None

    def _begin(self, solve_id: int, participants: int, rx_ns: int) -> None:
        solver = self.solver
        if not solver.quoted.all():
            self.counts["not_quoted"] += 1
        frozen = solver.begin(solve_id, cold=True)
        self._seq = frozen.problem_seq
        self._participants = participants
        self._open = True
        self._rounds = 0
        self._mid[:] = frozen.c
        self.counts["solves"] += 1
        self._rows = []
        for a in range(solver.n_assets):
            self._rows.append(self.solves.n)
            self.solves.append((solve_id, a, frozen.problem_seq, frozen.c[a], frozen.gamma[a],
                                frozen.phi[a], frozen.limit[a], rx_ns, 0, 0, np.nan))  # fmt: skip

    def _send(self, out: bytes) -> bytes:
        self.sock.send(out, copy=True)
        self.counts["solutions_out"] += 1
        return out

    def _share(self, solve_id: int, round_no: int) -> bytes | None:
        """The (masked) share of this venue's answer at the proposed prices."""
        s = self.solver
        ids = members(self._participants)
        try:
            if self.venue_id not in ids:
                raise AggregationError(
                    f"venue {self.venue_id} is not among the participants {ids}",
                    reason="not_participant",
                )
            words = self.encoder.encode(s.frozen_c, s.frozen_gamma, s.frozen_phi,
                                        s.frozen_limit, self._lam)  # fmt: skip
            if self.masking is not None and len(ids) > 1:
                words = self.masking.mask_encoded(
                    words, round_id=solve_id, iteration=round_no, participants=ids,
                    epoch=self._participants,
                )  # fmt: skip
        except (AggregationError, SolverError) as exc:
            self._bad(f"solve {solve_id} round {round_no}: cannot answer: {exc}")
            return None
        self.nonce += 1
        return self._send(self._share_packer.pack(
            *self.reg.envelope_values(self.response_schema, len(words), self.sender_id,
                                      self.nonce, self.clock.now_ns()),
            solve_id, round_no, self.venue_id, KIND_PRICE_SHARE, self._seq, self._participants,
            len(words), *words.tolist(),
        ))  # fmt: skip

    def _reveal(self, solve_id: int, round_no: int) -> bytes | None:
        """The venue's best response at the proposed (certified) prices, in clear."""
        s = self.solver
        for a in range(s.n_assets):
            self._x[a] = best_response(s.frozen_c[a], s.frozen_gamma[a], s.frozen_phi[a],
                                       s.frozen_limit[a], self._lam[a])  # fmt: skip
        # x, then the prices it answers (echoed bit for bit: the coordinator checks them)
        words = np.concatenate([reveal_words(self._x), reveal_words(self._lam)])
        self.counts["reveals"] += 1
        self._close(1)
        if self.correlation is not None:
            for a in range(s.n_assets):  # consensus price = -lambda
                self.correlation.observe(a, float(self._mid[a]), -float(self._lam[a]))
        self.nonce += 1
        return self._send(self._reveal_packer.pack(
            *self.reg.envelope_values(self.response_schema, len(words), self.sender_id,
                                      self.nonce, self.clock.now_ns()),
            solve_id, round_no, self.venue_id, KIND_PRICE_REVEAL, self._seq,
            self._participants, len(words), *words.tolist(),
        ))  # fmt: skip

    def _close(self, how: int) -> None:
        """Close the solve in the trace (z_final stays NaN: the venue never learns x̄; the
        rig takes the coordinator's revealed trades minus their mean)."""
        view = self.solves.view()
        for row in self._rows:
            view[row]["rounds"] = self._rounds
            view[row]["final"] = how
        self._rows = []
        self._open = False
