"""Federated price rounds over ZeroMQ: the coordinator proposes prices, the venues answer.

The same ROUTER socket, :class:`~arbsphere.coordinator.rounds.RoundLink` (live or recorded)
and journal records as the exchange-ADMM rounds (:mod:`.rounds`); other messages:
PriceProposal (solve, round, phase, participants, one price per asset) out, PriceResponse in
— a SHARE of a query (summed words: :mod:`arbsphere.price_protocol`), or the REVEAL of the
venue's x at the certified prices. A solve is QUERY rounds until every asset's root is
certified (:class:`~arbsphere.coordinator.price_search.PriceSearch`), or the budget's rounds
run out (the best points so far are revealed and the early stop counted), then one REVEAL.
A venue that does not answer within ``round_timeout_ms`` aborts the solve (ABORT sent; it is
held out of the next ones by the service exactly as in the ADMM rounds); replies from another
solve or round are counted and dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arbsphere.clock import Clock
from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.coordinator.price_search import PriceSearch
from arbsphere.coordinator.rounds import (
    CONVERGENCE_SOLVES,
    ROUND_TRACE_DTYPE,
    RoundLink,
    SolveOutcome,
)
from arbsphere.errors import DecodeError, PipelineError
from arbsphere.price_protocol import (
    FLAG_BEGIN,
    KIND_PRICE_REVEAL,
    KIND_PRICE_SHARE,
    PRICE_ABORT,
    PRICE_QUERY,
    PRICE_REVEAL,
)
from arbsphere.privacy.secure_rounds import revealed_x
from arbsphere.rounds_protocol import venue_identity
from arbsphere.tracebuf import TraceBuffer

# PriceResponse positions in its decode_values tuple: the header's, then the words
_RESPONSE = default_registry().fields("PriceResponse", 1)
_SOLVE, _ROUND, _VENUE = _RESPONSE.solve_id, _RESPONSE.round, _RESPONSE.venue_id
_KIND, _PARTICIPANTS, _N_WORDS = _RESPONSE.kind, _RESPONSE.participants, _RESPONSE.n_words
_WORDS = _RESPONSE.items
# The proposal packer takes values in declared order: _send_all passes them so
default_registry().fields("PriceProposal", 1).expect(
    ("solve_id", "round", "n_assets", "phase", "flags", "participants"), ("asset_id", "price")
)


class PriceRoundDriver:
    """Runs the price rounds of one solve at a time over a :class:`RoundLink`."""

    protocol = "price"

    def __init__(
        self,
        link: RoundLink,
        registry: SchemaRegistry,
        search: PriceSearch,
        clock: Clock,
        sender_id: int,
        round_timeout_ms: int,
    ) -> None:
        self.link = link
        self.reg = registry
        self.ex = search
        self.clock = clock
        self.sender_id = sender_id
        self.round_timeout_ms = round_timeout_ms
        self.masked = search.masked
        self.proposal_schema = registry.schema("PriceProposal")
        self.response_schema = registry.schema("PriceResponse")
        self._packer = registry.packer(self.proposal_schema, search.n_assets)
        self._kind = KIND_PRICE_SHARE
        self.nonce = 0
        self.solve_id = 0
        self.identities = [venue_identity(i) for i in range(search.n_venues)]
        self.rounds = TraceBuffer(ROUND_TRACE_DTYPE, 65_536)
        self.counts = {
            "rounds": 0, "messages_out": 0, "solutions_in": 0, "stale_solutions": 0,
            "bad_solutions": 0, "aborted_solves": 0, "reveals": 0, "reveal_mismatches": 0,
            "infeasible_solves": 0,
        }  # fmt: skip
        self.last_error = ""
        #: (solve id, round) and the prices proposed in that round, for the first
        #: CONVERGENCE_SOLVES solves; the certified prices as the round after the last query
        #: (the rig computes every venue's response to them for the convergence plot)
        self.round_ids: list[tuple[int, int]] = []
        self.round_prices: list[np.ndarray] = []

    # --- messages --------------------------------------------------------------------------
    def _send_all(self, phase: int, flags: int, round_no: int, prices: np.ndarray) -> int:
        ex = self.ex
        items: list[float | int] = []
        for a in range(ex.n_assets):
            items += (a, float(prices[a]))
        self.nonce += 1
        now = self.clock.now_ns()
        msg = self._packer.pack(
            *self.reg.envelope_values(self.proposal_schema, ex.n_assets, self.sender_id,
                                      self.nonce, now),
            self.solve_id, round_no, ex.n_assets, phase, flags, ex.participants, *items,
        )  # fmt: skip
        for i, ident in enumerate(self.identities):
            if not ex.frozen[i]:
                self.link.send((ident, msg))
                self.counts["messages_out"] += 1
        return now

    def _missing(self) -> list[int]:
        if self._kind == KIND_PRICE_REVEAL:
            return self.ex.reveal_missing()
        return self.ex.missing()

    def _gather(self, round_no: int) -> bool:
        deadline = self.clock.now_ns() + self.round_timeout_ms * 1_000_000
        while self._missing():
            frames = self.link.receive(deadline, self.solve_id, round_no)
            if frames is None:
                return False
            self._absorb(frames, round_no)
        return True

    def _absorb(self, frames: list[bytes], round_no: int) -> None:
        if len(frames) != 2:
            self._bad(f"rounds socket: {len(frames)} frames, expected identity + message")
            return
        ident, data = frames
        try:
            schema, v = self.reg.decode_values(data)
        except DecodeError as exc:
            self._bad(str(exc))
            return
        ours = schema.id == self.response_schema.id
        venue = int(v[_VENUE]) if ours else -1
        ex = self.ex
        if venue < 0 or venue >= ex.n_venues or self.identities[venue] != ident:
            self._bad(f"rounds socket: {schema.name} from {ident!r} (venue {venue})")
            return
        if v[_SOLVE] != self.solve_id or v[_ROUND] != round_no:
            self.counts["stale_solutions"] += 1
            return
        kind, participants, n_words = v[_KIND], v[_PARTICIPANTS], v[_N_WORDS]
        want = ex.share_len if self._kind == KIND_PRICE_SHARE else 2 * ex.n_assets
        why = ""
        if kind != self._kind:
            why = f"kind {kind}, expected {self._kind}"
        elif participants != ex.participants:
            why = f"answered among {participants:#x}, the solve's are {ex.participants:#x}"
        elif n_words != want or len(v) != _WORDS + want:
            why = f"{n_words} words, expected {want}"
        elif venue not in self._missing():
            why = "answered twice"
        if why:
            self._bad(f"venue {venue} round {round_no}: {why}")
            return
        words = np.array(v[_WORDS:], dtype=np.uint64)
        if self._kind == KIND_PRICE_REVEAL:
            m = ex.n_assets
            echoed = revealed_x(words[m:])
            if not np.array_equal(echoed.view(np.uint64), ex.root.view(np.uint64)):
                # a venue that revealed at other prices (or, in a replay, a journal whose
                # earlier answers were altered: the replayed search chose other prices)
                self.counts["reveal_mismatches"] += 1
                self._bad(f"venue {venue} revealed at prices {echoed.tolist()}, the solve's "
                          f"are {ex.root.tolist()}")  # fmt: skip
                return
            self.counts["solutions_in"] += 1
            self.counts["reveals"] += 1
            ex.absorb_reveal(venue, revealed_x(words[:m]))
            return
        self.counts["solutions_in"] += 1
        ex.absorb_share(venue, words)

    def _bad(self, why: str) -> None:
        self.counts["bad_solutions"] += 1
        self.last_error = why

    def _abort(self, round_no: int, why: str, counter: str = "aborted_solves") -> int:
        """Send ABORT, count it under ``counter``, note why; returns when."""
        self._kind = KIND_PRICE_SHARE
        self._send_all(PRICE_ABORT, 0, round_no, self.ex.lam)
        self.ex.reset()
        self.counts[counter] += 1
        self.last_error = f"solve {self.solve_id} round {round_no}: {why}"
        return self.clock.now_ns()

    # --- a solve ---------------------------------------------------------------------------
    def solve(self, reference_price: np.ndarray, max_rounds: int) -> SolveOutcome:
        """Query rounds until every root is certified or ``max_rounds`` ran, then the
        REVEAL (which counts as a round trip, not a round)."""
        if max_rounds < 1:
            raise PipelineError(f"max_rounds = {max_rounds}: must be >= 1")
        ex = self.ex
        self.solve_id += 1
        ex.begin(reference_price)
        started = 0
        done = False
        for k in range(1, max_rounds + 1):
            if self.solve_id <= CONVERGENCE_SOLVES:
                self.round_ids.append((self.solve_id, k))
                self.round_prices.append(ex.lam.copy())
            sent = self._send_all(PRICE_QUERY, FLAG_BEGIN if k == 1 else 0, k, ex.lam)
            started = started or sent
            if not self._gather(k):
                missing = tuple(ex.missing())
                ended = self._abort(k, f"no answer from venues {list(missing)} within "
                                    f"{self.round_timeout_ms} ms")  # fmt: skip
                return SolveOutcome(k - 1, False, True, started, ended, missing)
            done = ex.step()
            self.counts["rounds"] += 1
            self.rounds.append((self.solve_id, k, sent, self.clock.now_ns(), ex.primal_res,
                                ex.dual_res, 0.0))  # fmt: skip
            if done:
                break
        if ex.infeasible:  # not an abort of the venues' making: counted apart
            ended = self._abort(ex.round, "the live venues cannot offset the held-out ones",
                                "infeasible_solves")  # fmt: skip
            return SolveOutcome(ex.round, False, True, started, ended)
        if not done:
            ex.settle_unfinished()
        return self._reveal(started)

    def _reveal(self, started: int) -> SolveOutcome:
        ex = self.ex
        rounds = ex.round
        if self.solve_id <= CONVERGENCE_SOLVES:
            self.round_ids.append((self.solve_id, rounds + 1))
            self.round_prices.append(ex.root.copy())
        ex.begin_reveal()
        self._kind = KIND_PRICE_REVEAL
        self._send_all(PRICE_REVEAL, 0, rounds + 1, ex.root)
        if not self._gather(rounds + 1):
            missing = tuple(ex.reveal_missing())
            ended = self._abort(rounds, f"no reveal from venues {list(missing)} within "
                                f"{self.round_timeout_ms} ms")  # fmt: skip
            return SolveOutcome(rounds, False, True, started, ended, missing)
        self._kind = KIND_PRICE_SHARE
        why = ex.finish_reveal()
        if why:
            self.counts["reveal_mismatches"] += 1
            return SolveOutcome(rounds, False, True, started, self._abort(rounds, why))
        return SolveOutcome(rounds, ex.converged, False, started, self.clock.now_ns())

    def save_convergence(self, out_dir: Path) -> None:
        """``coordinator.rounds_price.npy`` (K x m) and ``coordinator.rounds_price_ids.npy``
        (K x 2: solve id, round): the proposed prices of every round of the first solves, the
        revealed (certified) prices as the last round. The coordinator never holds a venue's
        response to them; the rig computes it from the venues' recorded problems. Empty
        ``coordinator.rounds_z*.npy`` (no consensus iterate) so readers find the files."""
        ex = self.ex
        m = ex.n_assets
        prices = np.array(self.round_prices) if self.round_prices else np.zeros((0, m))
        np.save(out_dir / "coordinator.rounds_price.npy", prices)
        np.save(out_dir / "coordinator.rounds_price_ids.npy",
                np.array(self.round_ids, np.int64).reshape(-1, 2))  # fmt: skip
        np.save(out_dir / "coordinator.rounds_z.npy", np.zeros((0, ex.n_venues, m)))
        np.save(out_dir / "coordinator.rounds_z_ids.npy", np.zeros((0, 2), np.int64))
