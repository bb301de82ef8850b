"""Federated rounds over ZeroMQ: the coordinator's ROUTER socket to the venue adapters.

Per round the coordinator sends one DualVariables message (solve id, round, phase, x̄, u, ρ)
to every venue (ROUTER -> each venue's DEALER, identity ``venue-<id>``) and waits for one
LocalSolution (x_i) from each. A solve ends with a FINAL message (the last x̄, so every venue
settles its z; no answer) — or ABORT when a venue did not answer within the round timeout
(then both sides start the next solve cold). Replies from another solve or round are counted
and dropped, never absorbed.

The number of rounds a solve may take comes from the tick's latency budget through a nominal
per-round cost (``ns_per_round``) — never from wall time, so a replay takes the same rounds;
the wall time each solve took is measured and reported beside it.

Under secure aggregation (a :class:`~arbsphere.coordinator.masked_exchange.MaskedExchange`)
the rounds speak DualVariables v3 / LocalSolution v2: each venue answers with a masked share,
the coordinator only ever adds shares up; instead of FINAL the solve ends with REVEAL, which
names the round of the lowest primal residual, and each venue answers with its x of that round
(checked against that round's masked sum). A REVEAL that is not answered in time aborts the
solve like an unanswered round; one that does not add up aborts it too (nobody held out).

What the rounds receive comes through a :class:`RoundLink`: live, :class:`ZmqRoundLink` over
the ROUTER socket, which journals every message received and every wait that ran out (see
:mod:`.journal_records`); in a replay, the journal's records in their place
(:class:`arbsphere.replay.engine.RecordedRoundLink`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from arbsphere.clock import Clock
from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.errors import ContractError, DecodeError, PipelineError
from arbsphere.privacy.secure_rounds import KIND_REVEAL, KIND_SHARE, revealed_x
from arbsphere.rounds_protocol import (
    FLAG_COLD,
    PHASE_ABORT,
    PHASE_BEGIN,
    PHASE_FINAL,
    PHASE_ITERATE,
    PHASE_REVEAL,
    venue_identity,
)
from arbsphere.tracebuf import TraceBuffer

# LocalSolution values (decode_values positions): v1 x in clear per asset, v2 masked words
_SOLUTION = default_registry().fields("LocalSolution", 1)
_SOLVE, _ROUND, _VENUE = _SOLUTION.solve_id, _SOLUTION.round, _SOLUTION.venue_id
_N_ASSETS = _SOLUTION.n_assets
_ASSET, _X = _SOLUTION.items + _SOLUTION.item.asset_id, _SOLUTION.items + _SOLUTION.item.x
_STRIDE = _SOLUTION.stride
_SHARE = default_registry().fields("LocalSolution", 2)
if (_SHARE.solve_id, _SHARE.round, _SHARE.venue_id) != (_SOLVE, _ROUND, _VENUE):
    raise ContractError("LocalSolution v1 and v2 must carry solve_id, round, venue_id alike")
_KIND, _PARTICIPANTS, _N_WORDS = _SHARE.kind, _SHARE.participants, _SHARE.n_words
_WORDS = _SHARE.items  # one word per item

# The DualVariables packer takes values in declared order: _send_all passes them so
_DUAL_HEAD = ("solve_id", "round", "n_assets", "phase", "flags", "iterations", "converged",
              "rho", "alpha", "primal_res", "dual_res")  # fmt: skip
default_registry().fields("DualVariables", 2).expect(_DUAL_HEAD, ("asset_id", "price", "u", "xbar"))
default_registry().fields("DualVariables", 3).expect(
    (*_DUAL_HEAD, "participants", "reveal_round"), ("asset_id", "price", "u", "xbar")
)

#: the first solves whose consensus iterate z is kept after every round (for the convergence
#: plot: the rig computes each round's gap against the centralized baseline)
CONVERGENCE_SOLVES = 256

ROUND_TRACE_DTYPE = np.dtype(
    [
        ("solve_id", "<u8"),
        ("round", "<u4"),
        ("sent_ns", "<i8"),  # the round's DualVariables went out
        ("closed_ns", "<i8"),  # the last venue's x arrived and the exchange step ran
        ("primal_res", "<f8"),
        ("dual_res", "<f8"),
        ("rho", "<f8"),
    ]
)


class RoundRecorder(Protocol):
    """The journal's side of the rounds
    (:class:`~arbsphere.coordinator.recorder.JournalRecorder`)."""

    def round_input(self, frames: list[bytes], rx_ns: int) -> None: ...

    def round_timeout(self, solve_id: int, round_no: int, ts_ns: int) -> None: ...


class RoundLink(Protocol):
    """How the rounds reach the venues and what comes back."""

    def send(self, frames: tuple[bytes, bytes]) -> None: ...

    def receive(self, deadline_ns: int, solve_id: int, round_no: int) -> list[bytes] | None:
        """The next message received (identity + data), or None once ``deadline_ns`` passed."""
        ...


class ZmqRoundLink:
    """The live link: the coordinator's bound ROUTER socket. With a ``recorder``, every
    message received and every wait that ran out is journaled, in order."""

    def __init__(self, sock: Any, clock: Clock) -> None:
        self.sock = sock
        self.clock = clock
        self.recorder: RoundRecorder | None = None

    def send(self, frames: tuple[bytes, bytes]) -> None:
        self.sock.send_multipart(frames, copy=True)

    def receive(self, deadline_ns: int, solve_id: int, round_no: int) -> list[bytes] | None:
        clock = self.clock
        while True:
            left_ms = (deadline_ns - clock.now_ns()) // 1_000_000
            if left_ms >= 0 and self.sock.poll(int(left_ms)):
                try:
                    frames: list[bytes] = self.sock.recv_multipart(copy=True)
                except zmq.Again:  # what was queued was refused by the link's guard
                    continue
                if self.recorder is not None:
                    self.recorder.round_input(frames, clock.now_ns())
                return frames
            now = clock.now_ns()
            if now >= deadline_ns:
                if self.recorder is not None:
                    self.recorder.round_timeout(solve_id, round_no, now)
                return None


@dataclass
class SolveOutcome:
    rounds: int
    converged: bool
    aborted: bool
    started_ns: int
    ended_ns: int
    #: an aborted solve: the venues whose answer had not come when the wait ran out
    missing: tuple[int, ...] = ()


class RoundDriver:
    """Runs the rounds of one solve at a time over a :class:`RoundLink`."""

    protocol = "admm"

    def __init__(
        self,
        link: RoundLink,
        registry: SchemaRegistry,
        exchange: FederatedExchange,
        clock: Clock,
        sender_id: int,
        round_timeout_ms: int,
    ) -> None:
        self.link = link
        self.reg = registry
        self.ex = exchange
        self.clock = clock
        self.sender_id = sender_id
        self.round_timeout_ms = round_timeout_ms
        #: secure aggregation: the exchange holds sums of masked shares, never a venue's x
        self.masked = bool(exchange.masked)
        self.dual_schema = registry.schema("DualVariables", 3 if self.masked else 2)
        self.solution_schema = registry.schema("LocalSolution", 2 if self.masked else 1)
        self.solution_id = self.solution_schema.id
        self._kind = KIND_SHARE  # what the masked rounds wait for: shares, then the reveal
        self.nonce = 0
        self.solve_id = 0
        self.identities = [venue_identity(i) for i in range(exchange.n_venues)]
        self.rounds = TraceBuffer(ROUND_TRACE_DTYPE, 65_536)
        #: (solve_id, round) and z after that round, for the first CONVERGENCE_SOLVES solves
        self.round_ids: list[tuple[int, int]] = []
        self.round_z: list[np.ndarray] = []
        self.counts = {
            "rounds": 0, "messages_out": 0, "solutions_in": 0, "stale_solutions": 0,
            "bad_solutions": 0, "aborted_solves": 0, "reveals": 0, "reveal_mismatches": 0,
        }  # fmt: skip
        self.last_error = ""
        n = exchange.n_assets
        self._packer = registry.packer(self.dual_schema, n)
        self._x = np.zeros(n)

    def _send_all(self, phase: int, flags: int, round_no: int, reveal_round: int = 0) -> int:
        ex = self.ex
        n = ex.n_assets
        rho = ex.rho
        u = ex.u
        xbar = ex.xhat_mean
        items: list[float | int] = []
        for a in range(n):
            items += (a, rho * float(u[a]), float(u[a]), float(xbar[a]))
        self.nonce += 1
        now = self.clock.now_ns()
        extra: tuple[int, ...] = ()
        if self.masked:
            extra = (getattr(ex, "participants"), reveal_round)  # noqa: B009 (MaskedExchange)
        msg = self._packer.pack(
            *self.reg.envelope_values(self.dual_schema, n, self.sender_id, self.nonce, now),
            self.solve_id, round_no, n, phase, flags, ex.round, int(ex.converged), rho,
            ex.settings.alpha, ex.primal_res if ex.round else 0.0,
            ex.dual_res if ex.round else 0.0, *extra, *items,
        )  # fmt: skip
        frozen = ex.frozen
        for i, ident in enumerate(self.identities):
            if not frozen[i]:  # a venue out of the market sits the solve out
                self.link.send((ident, msg))
                self.counts["messages_out"] += 1
        return now

    def _missing(self) -> list[int]:
        if self.masked and self._kind == KIND_REVEAL:
            return self.ex.reveal_missing()  # type: ignore[attr-defined]
        return self.ex.missing()

    def _gather(self, round_no: int) -> bool:
        """Absorb one x (or share, or reveal) from every venue for ``round_no``; False on
        timeout."""
        deadline = self.clock.now_ns() + self.round_timeout_ms * 1_000_000
        while self._missing():
            frames = self.link.receive(deadline, self.solve_id, round_no)
            if frames is None:
                return False
            self._absorb(frames, round_no)
        return True

    def _absorb(self, frames: list[bytes], round_no: int) -> None:
        if len(frames) != 2:
            self.counts["bad_solutions"] += 1
            self.last_error = f"rounds socket: {len(frames)} frames, expected identity + message"
            return
        ident, data = frames
        try:
            schema, v = self.reg.decode_values(data)
        except DecodeError as exc:
            self.counts["bad_solutions"] += 1
            self.last_error = str(exc)
            return
        ours = schema.id == self.solution_id and schema.version == self.solution_schema.version
        venue = int(v[_VENUE]) if ours else -1
        if venue < 0 or venue >= self.ex.n_venues or self.identities[venue] != ident:
            self.counts["bad_solutions"] += 1
            self.last_error = f"rounds socket: {schema.name} from {ident!r} (venue {venue})"
            return
        if v[_SOLVE] != self.solve_id or v[_ROUND] != round_no:
            self.counts["stale_solutions"] += 1
            return
        if self.masked:
            self._absorb_masked(venue, v, round_no)
            return
        n = self.ex.n_assets
        x = self._x
        x[:] = np.nan
        if v[_N_ASSETS] == n:
            for k in range(n):
                a = v[_ASSET + _STRIDE * k]
                if a < n:
                    x[a] = v[_X + _STRIDE * k]
        if v[_N_ASSETS] != n or np.isnan(x).any():
            self.counts["bad_solutions"] += 1
            self.last_error = f"venue {venue} round {round_no}: not one x per asset 0..{n - 1}"
            return
        if venue not in self.ex.missing():
            self.counts["bad_solutions"] += 1
            self.last_error = f"venue {venue} answered round {round_no} twice"
            return
        self.counts["solutions_in"] += 1
        self.ex.absorb(venue, x)

    def _absorb_masked(self, venue: int, v: tuple[Any, ...], round_no: int) -> None:
        """A LocalSolution v2 (its masked words, or the revealed x)."""
        ex: Any = self.ex
        kind, participants, n_words = v[_KIND], v[_PARTICIPANTS], v[_N_WORDS]
        want = ex.share_len if self._kind == KIND_SHARE else ex.n_assets
        why = ""
        if kind != self._kind:
            why = f"kind {kind}, expected {self._kind}"
        elif participants != ex.participants:
            why = f"masked among {participants:#x}, the solve's are {ex.participants:#x}"
        elif n_words != want or len(v) != _WORDS + want:
            why = f"{n_words} words, expected {want}"
        elif venue not in self._missing():
            why = "answered twice"
        if why:
            self.counts["bad_solutions"] += 1
            self.last_error = f"venue {venue} round {round_no}: {why}"
            return
        words = np.array(v[_WORDS:], dtype=np.uint64)
        self.counts["solutions_in"] += 1
        if self._kind == KIND_SHARE:
            ex.absorb_share(venue, words)
        else:
            self.counts["reveals"] += 1
            ex.absorb_reveal(venue, revealed_x(words))

    def _abort(self, round_no: int, why: str) -> int:
        """Send ABORT, forget the warm start, count; returns when."""
        self._kind = KIND_SHARE
        self._send_all(PHASE_ABORT, 0, round_no)
        self.ex.reset()
        self.counts["aborted_solves"] += 1
        self.last_error = f"solve {self.solve_id} round {round_no}: {why}"
        return self.clock.now_ns()

    def _reveal(self, started: int) -> SolveOutcome | None:
        """Secure aggregation: ask every live venue for its x of the best round and check
        them against that round's masked sum; None when the trades are in ``ex.best_x``,
        else the aborted outcome."""
        ex: Any = self.ex
        k = ex.best_round
        rounds = ex.round
        if k == 0:  # no round gave a finite primal residual: nothing to reveal
            return SolveOutcome(rounds, False, True, started, self._abort(rounds, "no round "
                                "with a finite primal residual to reveal"))  # fmt: skip
        ex.begin_reveal()
        self._kind = KIND_REVEAL
        self._send_all(PHASE_REVEAL, 0, rounds, reveal_round=k)
        if not self._gather(k):
            missing = tuple(ex.reveal_missing())
            ended = self._abort(rounds, f"no reveal of round {k} from venues {list(missing)} "
                                f"within {self.round_timeout_ms} ms")  # fmt: skip
            return SolveOutcome(rounds, False, True, started, ended, missing)
        self._kind = KIND_SHARE
        why = ex.finish_reveal()
        if why:
            self.counts["reveal_mismatches"] += 1
            return SolveOutcome(rounds, False, True, started, self._abort(rounds, why))
        return None

    def save_convergence(self, out_dir: Path) -> None:
        """``coordinator.rounds_z.npy`` (K x N x m) and ``coordinator.rounds_z_ids.npy`` (K x 2:
        solve id, round)."""
        ex = self.ex
        z = np.array(self.round_z) if self.round_z else np.zeros((0, ex.n_venues, ex.n_assets))
        np.save(out_dir / "coordinator.rounds_z.npy", z)
        np.save(out_dir / "coordinator.rounds_z_ids.npy",
                np.array(self.round_ids, np.int64).reshape(-1, 2))  # fmt: skip

    def solve(self, reference_price: np.ndarray, max_rounds: int) -> SolveOutcome:
        """Rounds until the stopping test or ``max_rounds``; the FINAL (or ABORT) is sent."""
        if max_rounds < 1:
            raise PipelineError(f"max_rounds = {max_rounds}: must be >= 1")
        ex = self.ex
        self.solve_id += 1
        cold = ex.begin(reference_price)
        started = 0
        for k in range(1, max_rounds + 1):
            sent = self._send_all(PHASE_BEGIN if k == 1 else PHASE_ITERATE,
                                  FLAG_COLD if cold and k == 1 else 0, k)  # fmt: skip
            started = started or sent
            if not self._gather(k):
                missing = tuple(ex.missing())
                self._send_all(PHASE_ABORT, 0, k)
                ex.reset()
                self.counts["aborted_solves"] += 1
                self.last_error = (
                    f"solve {self.solve_id} round {k}: no answer from venues {ex.missing()} "
                    f"within {self.round_timeout_ms} ms"
                )
                return SolveOutcome(k - 1, False, True, started, self.clock.now_ns(), missing)
            done = ex.step()
            self.counts["rounds"] += 1
            self.rounds.append((self.solve_id, k, sent, self.clock.now_ns(), ex.primal_res,
                                ex.dual_res, ex.rho))  # fmt: skip
            if self.solve_id <= CONVERGENCE_SOLVES and not self.masked:  # masked: z unknown
                self.round_ids.append((self.solve_id, k))
                self.round_z.append(ex.z.copy())
            if done:
                break
        if self.masked:
            aborted = self._reveal(started)
            if aborted is not None:
                return aborted
            return SolveOutcome(ex.round, ex.converged, False, started, self.clock.now_ns())
        ended = self.clock.now_ns()
        self._send_all(PHASE_FINAL, 0, ex.round)
        return SolveOutcome(ex.round, ex.converged, False, started, ended)
