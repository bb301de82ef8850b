"""Venue feed adapter: device TICKs in, LocalArbProblem + SharedSignals out over ZeroMQ.

One process per venue. It reads device messages from its :class:`FeedLink` (UDP datagrams with
kernel receive stamps, or COBS/CRC-32C serial frames), validates them (transport counters come
from the link; message-level problems — decode errors, device-sequence gaps, duplicates — are
counted here), converts each TICK into the venue's local problem for the coordinator and the
signals it is willing to share, and pushes both as one two-frame ZeroMQ message. Under secure
aggregation (federated) the private-derived signals leave only in one masked SignalShare per
release epoch, a single-frame message on the same socket (:mod:`.signal_shares`).

Every tick leaves one trace row: device send/intended times, rig receive time, and the time the
IR was ready to send ("adapter decoded").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from arbsphere.adapters.backends import backend
from arbsphere.adapters.links import FeedLink
from arbsphere.adapters.outbox import Outbox
from arbsphere.adapters.signal_privacy import WITHHELD_LOTS, SignalPrivacy
from arbsphere.adapters.signal_shares import SignalSharer, signal_masking
from arbsphere.adapters.sync_master import open_sync_master
from arbsphere.adapters.venue_prices import VenuePrices
from arbsphere.adapters.venue_rounds import VenueRounds, round_masking, venue_masking
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.errors import ConfigError, DecodeError, LinkError, PipelineError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.price_protocol import PRICE_MASK_SUFFIX
from arbsphere.privacy.secure_rounds import X_FIXED
from arbsphere.rounds_protocol import venue_identity
from arbsphere.runtime import (
    StopFlag,
    cpu_usage,
    quiesce_gc,
    require,
    run_role,
    write_json_atomic,
)
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE, ROUNDS, open_role_security
from arbsphere.security.secure_socket import SecureSocket
from arbsphere.tracebuf import TraceBuffer

#: messages the PUSH to the coordinator queues before it stops taking more (the outbox keeps
#: the newest tick per asset meanwhile), and the kernel send buffer's size (bytes)
OUT_HWM = 8
OUT_SOCKET_BUFFER = 8_192

TICK_TRACE_DTYPE = np.dtype(
    [
        ("venue", "<u2"),
        ("asset", "<u2"),
        ("seq", "<u8"),
        ("intended_dev_ns", "<i8"),
        ("send_dev_ns", "<i8"),
        ("rx_ns", "<i8"),
        ("decoded_ns", "<i8"),
        ("bid_px", "<i8"),
        ("ask_px", "<i8"),
        # 1: not forwarded, a newer tick of its asset came in the same link batch (the
        # coordinator would have superseded it in the same wake-up); decoded_ns = rx_ns
        ("shed", "u1"),
    ]
)


# The packers take values in declared order: the ticks' pack calls below pass them so
default_registry().fields("VenueQuote", 1).expect(
    ("venue_id", "n_assets", "tick_seq", "tick_intended_ns", "budget_ns"),
    ("asset_id", "bid_px", "ask_px"),
)
default_registry().fields("LocalArbProblem", 1).expect(
    ("venue_id", "n_assets", "tick_seq", "tick_intended_ns", "budget_ns"),
    ("asset_id", "c", "gamma", "phi", "limit_lots", "bid_px", "ask_px"),
)
default_registry().fields("SharedSignals", 1).expect(
    ("venue_id", "n_assets", "tick_seq"),
    ("asset_id", "mid", "price_delta", "spread", "correlation", "liquidity_lots",
     "latency_proxy_ns"),
)  # fmt: skip

#: TICK values as ``messages.decode_values`` returns them; checked against the declaration.
TICK_FIELDS = (
    "msg_type", "version", "length", "device_id", "venue_id", "asset_id", "device_seq",
    "intended_send_ns", "send_ns", "bid_px", "ask_px", "bid_size", "ask_size",
)  # fmt: skip
if dm.value_fields(dm.MSG_TICK) != TICK_FIELDS:  # pragma: no cover - layout drift guard
    raise ImportError(f"TICK layout changed: {dm.value_fields(dm.MSG_TICK)}; update TICK_FIELDS")
T_ASSET, T_SEQ, T_INTENDED, T_SEND, T_BID, T_ASK = (
    TICK_FIELDS.index(f)
    for f in ("asset_id", "device_seq", "intended_send_ns", "send_ns", "bid_px", "ask_px")
)


class VenueCosts:
    """How a venue prices a tick into its private local problem (per lot, price units)."""

    def __init__(self, fee_bp: float, gamma: float, position_limit_lots: int) -> None:
        self.fee_frac = fee_bp * 1e-4
        self.gamma = gamma
        self.position_limit_lots = position_limit_lots

    def price(
        self, bid_px: int, ask_px: int, bid_size: int, ask_size: int
    ) -> tuple[float, float, float, int, int]:
        """One quote as the local problem's terms: (mid = c, half spread, φ = half spread +
        fee, liquidity = min size, limit = min(position limit, liquidity)); prices in price
        units (the quote's are fixed point, PRICE_SCALE)."""
        scale = dm.PRICE_SCALE
        mid = (bid_px + ask_px) / (2 * scale)
        half_spread = (ask_px - bid_px) / (2 * scale)
        liquidity = min(bid_size, ask_size)
        return (mid, half_spread, half_spread + self.fee_frac * mid, liquidity,
                min(self.position_limit_lots, liquidity))  # fmt: skip


class TickTranslator:
    """TICK record -> packed LocalArbProblem and SharedSignals messages (one asset per tick)."""

    def __init__(
        self, venue_id: int, sender_id: int, costs: VenueCosts, budget_ns: int,
        solver: VenueSolver | None = None, correlation: EwmaCorrelation | None = None,
        privacy: SignalPrivacy | None = None, sharer: SignalSharer | None = None,
    ) -> None:  # fmt: skip
        reg = default_registry()
        if (privacy is not None or sharer is not None) and solver is None:
            raise ConfigError(
                "privacy budgets and signal shares apply to federated mode (a translator "
                "with a solver): in central mode the coordinator gets the limit anyway"
            )
        #: secure aggregation of the signals: the released liquidity and correlation leave
        #: only in one masked SignalShare per release epoch (see .signal_shares); the per-tick
        #: SharedSignals then carry liquidity_lots = -1 and correlation = NaN
        self.sharer = sharer
        self.pending_share: bytes | None = None
        #: federated: the liquidity (borrow proxy) and correlation signals are released through
        #: their privacy budgets (see .signal_privacy); None: shared in the clear
        self.privacy = privacy
        #: the cross-venue correlation estimate (federated: fed by the rounds); None: NaN
        self.correlation = correlation
        #: federated mode: the local problem stays here and only the public quote goes out
        self.solver = solver
        self.quote_schema = reg.schema("VenueQuote")
        self.quote_packer = reg.packer(self.quote_schema, 1)
        self.reg = reg
        self.venue_id = venue_id
        self.sender_id = sender_id
        self.costs = costs
        self.budget_ns = budget_ns
        self.problem_schema = reg.schema("LocalArbProblem")
        self.signals_schema = reg.schema("SharedSignals")
        self.problem_packer = reg.packer(self.problem_schema, 1)
        self.signals_packer = reg.packer(self.signals_schema, 1)
        self.nonce = 0
        self.last_mid: dict[int, float] = {}  # asset -> mid of the venue's previous tick of it

    def translate(self, tick: tuple[Any, ...], now_ns: int, latency_ns: int) -> tuple[bytes, bytes]:
        """``tick``: TICK values in ``messages.value_fields(MSG_TICK)`` order. Returns the
        coordinator's message (LocalArbProblem, or VenueQuote in federated mode) and the
        SharedSignals."""
        (_t, _v, _l, _dev, _venue, asset, seq, intended, _send, bid, ask, bid_size,
         ask_size) = tick  # fmt: skip
        mid, half_spread, phi, liquidity, limit = self.costs.price(bid, ask, bid_size, ask_size)
        self.nonce += 1
        if self.solver is not None:
            self.solver.set_asset(asset, mid, self.costs.gamma, phi, limit, seq)
            problem = self.quote_packer.pack(
                *self.reg.envelope_values(self.quote_schema, 1, self.sender_id, self.nonce,
                                          now_ns),
                self.venue_id, 1, seq, intended, self.budget_ns, asset, bid, ask,
            )  # fmt: skip
        else:
            problem = self.problem_packer.pack(
                *self.reg.envelope_values(self.problem_schema, 1, self.sender_id, self.nonce,
                                          now_ns),
                self.venue_id, 1, seq, intended, self.budget_ns,
                asset, mid, self.costs.gamma, phi, limit, bid, ask,
            )  # fmt: skip
        last = self.last_mid.get(asset)
        delta = 0.0 if last is None else mid - last
        self.last_mid[asset] = mid
        self.nonce += 1
        corr = math.nan if self.correlation is None else self.correlation.correlation(asset)
        share_at: tuple[int, tuple[float, float]] | None = None
        # the share's epoch, if this tick is the first of a release epoch (secure aggregation)
        epoch = None if self.sharer is None else self.sharer.due(now_ns)
        if self.privacy is not None and (self.sharer is None or epoch is not None):
            # Federated: both derive from the venue's private state (the liquidity from its
            # limit and book, the correlation from its solves): noisy, at the release interval
            # of the tick's rig receive time, withheld once the budget is spent. Central mode
            # has no budget: the coordinator receives the limit in every LocalArbProblem.
            # Under secure aggregation only the tick that sends the epoch's share releases:
            # with several assets the other assets' first ticks of the epoch would each pay a
            # release (and ledger it) that nothing ever carries.
            liquidity = self.privacy.liquidity(asset, limit, now_ns)
            corr = self.privacy.correlation(asset, corr, now_ns)
        if self.sharer is not None:
            # The released values leave only in the epoch's masked share (the first tick of a
            # release epoch is the one that releases); the tick's signals carry neither.
            if epoch is not None:
                share_at = (epoch, (float(liquidity), corr))  # what the signals would carry
            liquidity, corr = WITHHELD_LOTS, math.nan
        signals = self.signals_packer.pack(
            *self.reg.envelope_values(self.signals_schema, 1, self.sender_id, self.nonce, now_ns),
            self.venue_id, 1, seq,
            asset, mid, delta, 2 * half_spread, corr, liquidity, latency_ns,
        )  # fmt: skip
        if share_at is not None:
            assert self.sharer is not None
            self.nonce += 1  # after the signals': the coordinator reads them in this order
            epoch, (liq, cor) = share_at
            self.pending_share = self.sharer.share(epoch, liq, cor, self.nonce, now_ns)
        return problem, signals

    def take_share(self) -> bytes | None:
        """The SignalShare the last :meth:`translate` packed (once), if any."""
        share, self.pending_share = self.pending_share, None
        return share


class SequenceChecker:
    """Device-sequence continuity per (device, venue): counts gaps, missing, duplicates."""

    def __init__(self) -> None:
        self.expected: int | None = None
        self.gaps = 0
        self.missing = 0
        self.duplicates = 0

    def observe(self, seq: int) -> bool:
        """Returns False for a duplicate/stale tick (which must not be forwarded)."""
        if self.expected is None or seq == self.expected:
            self.expected = seq + 1
            return True
        if seq > self.expected:
            self.gaps += 1
            self.missing += seq - self.expected
            self.expected = seq + 1
            return True
        self.duplicates += 1
        return False


def open_feed_link(cfg: dict[str, Any], source: str, clock: Clock) -> FeedLink:
    """Build the configured rig-side link backend (the pipeline never asks "emulator?")."""
    link = require(cfg, "link", str, source)
    return backend(link, role="feed", file=source).open_feed(cfg, source, clock)


def venue_rounds_for(
    cfg: dict[str, Any], source: str, sec: Any, sock: Any, translator: TickTranslator,
    venue_id: int, clock: Clock,
) -> VenueRounds | VenuePrices:  # fmt: skip
    """The venue's side of the federated protocol the campaign speaks (``protocol``: "price"
    or "admm"; absent: "admm", as roles configured before the price protocol)."""
    protocol = cfg.get("protocol", "admm")
    solver = translator.solver
    assert solver is not None
    if protocol == "price":
        masking = venue_masking(sec, cfg, venue_id, X_FIXED, PRICE_MASK_SUFFIX)
        return VenuePrices(sock, translator.reg, solver, venue_id, translator.sender_id, clock,
                           translator.correlation, masking=masking)  # fmt: skip
    if protocol != "admm":
        raise ConfigError("must be 'price' or 'admm'", file=source, key="protocol")
    return VenueRounds(
        sock,
        translator.reg,
        solver,
        venue_id,
        translator.sender_id,
        clock,
        translator.correlation,
        masking=round_masking(sec, cfg, venue_id),
    )


def run(cfg: dict[str, Any], path: Path, stop: StopFlag) -> int:
    source = str(path)
    clock = RealtimeClock()
    name = require(cfg, "name", str, source)
    venue_id = require(cfg, "venue_id", int, source)
    out_dir = Path(require(cfg, "out_dir", str, source))
    position_limit = require(cfg, "position_limit_lots", int, source)
    # the assets the venue quotes (a tick quotes one of them: its problem keeps one row each)
    n_assets = cfg.get("n_assets", 1)
    if not isinstance(n_assets, int) or isinstance(n_assets, bool) or not n_assets >= 1:
        raise ConfigError(f"must be an integer >= 1 (value {n_assets!r})", file=source,
                          key="n_assets")  # fmt: skip
    federated = bool(cfg.get("rounds_endpoint"))
    table = cfg.get("security")
    # federated + secure aggregation: the released signals leave only in masked shares
    share_signals = federated and isinstance(table, dict) and bool(table.get("secure_aggregation"))
    privacy = None
    if federated and cfg.get("privacy") is not None:
        privacy = SignalPrivacy(venue_id, require(cfg, "privacy", dict, source), position_limit,
                                source=source, aligned=share_signals)  # fmt: skip
    translator = TickTranslator(
        venue_id=venue_id,
        sender_id=require(cfg, "sender_id", int, source),
        costs=VenueCosts(
            fee_bp=require(cfg, "fee_bp", (int, float), source),
            gamma=require(cfg, "gamma", (int, float), source),
            position_limit_lots=position_limit,
        ),
        budget_ns=require(cfg, "budget_ns", int, source),
        solver=VenueSolver(n_assets) if federated else None,
        correlation=EwmaCorrelation(n_assets) if federated else None,
        privacy=privacy,
    )
    link = open_feed_link(cfg, source, clock)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    # a short queue: when the coordinator falls behind the outbox keeps the newest tick per
    # asset instead (see adapters/outbox.py); bytes in the kernel's buffers are bounded too
    push.setsockopt(zmq.SNDHWM, OUT_HWM)
    push.setsockopt(zmq.SNDBUF, OUT_SOCKET_BUFFER)
    push.setsockopt(zmq.LINGER, 2000)
    push.setsockopt(zmq.IMMEDIATE, 1)
    sec = open_role_security(cfg, source, clock, ctx)
    if privacy is not None and sec is not None:
        privacy.emit_to(sec.event)  # BUDGET_SPENT / BUDGET_REFUSED into the run's ledger
    rounds: VenueRounds | VenuePrices | None = None
    masking = signal_masking(sec, cfg, venue_id) if share_signals else None
    if masking is not None:
        assert sec is not None
        interval_ms = require(cfg, "signal_release_interval_ms", (int, float), source)

        def participants() -> int:
            return 0 if rounds is None else rounds.latest_participants

        translator.sharer = SignalSharer(
            masking, translator.reg, venue_id, translator.sender_id,
            len(sec.names_of(Role.VENUE)), round(interval_ms * 1e6), participants,
        )  # fmt: skip
    coordinator = "coordinator"
    if sec is not None:
        coordinator = sec.names_of(Role.COORDINATOR)[0]
        sec.client(push, coordinator)
    out: Any = push
    if sec is not None:
        out = SecureSocket(push, sealer=sec.sealer(PIPELINE, coordinator))
    try:
        push.connect(require(cfg, "coordinator_endpoint", str, source))
    except zmq.ZMQError as exc:
        raise PipelineError(f"{name}: cannot connect to coordinator: {exc}") from exc

    poller = zmq.Poller()
    poller.register(link.fileno(), zmq.POLLIN)
    push_events = getattr(push, "getsockopt")  # noqa: B009 (the raw socket's, not SecureSocket)
    outbox = Outbox(lambda msg: out.send(msg, copy=True),
                    lambda: bool(push_events(zmq.EVENTS) & zmq.POLLOUT))  # fmt: skip
    waiting_out = False
    if translator.solver is not None:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.IDENTITY, venue_identity(venue_id))
        dealer.setsockopt(zmq.LINGER, 0)
        rounds_sock: Any = dealer
        if sec is not None:
            sec.client(dealer, coordinator)
            rounds_sock = SecureSocket(
                dealer, sealer=sec.sealer(ROUNDS, coordinator),
                guard=sec.guard(ROUNDS, [coordinator]),
            )  # fmt: skip
        try:
            dealer.connect(require(cfg, "rounds_endpoint", str, source))
        except zmq.ZMQError as exc:
            raise PipelineError(
                f"{name}: cannot connect to the coordinator's rounds: {exc}"
            ) from exc
        rounds = venue_rounds_for(cfg, source, sec, rounds_sock, translator, venue_id, clock)
        poller.register(dealer, zmq.POLLIN)
    sync = open_sync_master(cfg, source, link, clock)
    trace = TraceBuffer(TICK_TRACE_DTYPE)
    seqs = SequenceChecker()
    counts = {
        "ticks": 0,
        "heartbeats": 0,
        "decode_errors": 0,
        "other_messages": 0,
        "forwarded": 0,
        "superseded": 0,  # not forwarded: a newer tick of the asset came before it could go
        "frames": 0,  # ZeroMQ messages the forwarded ticks left in
        "stale_dropped": 0,
    }
    last_error = ""
    ready: dict[str, Any] = {"timestamp_source": link.timestamp_source}
    address = getattr(link, "address", None)
    if address is not None:
        ready["address"] = list(address)
    if rounds is not None:
        VenueSolver.warm_up()
        if isinstance(rounds, VenuePrices):
            VenuePrices.warm_up()
    if sec is not None:
        sec.connect_registry()
    quiesce_gc()
    write_json_atomic(out_dir / f"{name}.ready.json", ready)

    try:
        while not stop.is_set:
            try:
                timeout = 100 if sync is None else sync.timeout_ms(clock.now_ns(), 100)
                if rounds is None:  # (with messages waiting for the socket: look again soon)
                    batch = link.receive(timeout_ms=1 if outbox.pending else timeout)
                else:
                    # Read (and so stamp) what the link has first — a serial link's stamps are
                    # user-space, taken at the read — then answer a waiting round, then work
                    # through the ticks.
                    ready = dict(poller.poll(timeout))
                    batch = link.receive(timeout_ms=0) if link.fileno() in ready else []
                    if dealer in ready:
                        rounds.on_readable()
                if sync is not None:
                    sync.poll(clock.now_ns())
                if sec is not None:
                    sec.service()
            except OSError as exc:
                if stop.is_set:
                    break
                raise LinkError(f"{name}: link receive failed: {exc}") from exc
            # The ticks the link delivered together leave in one frame: one tag, one CurveZMQ
            # box, one ZeroMQ send (the coordinator cuts it by the envelopes' payload_len).
            # Keeping up, that is one tick; behind, the per-send cost (the I/O thread's wake-up,
            # ~20-100 us here) is paid once per batch instead of per tick, so the adapter
            # catches up instead of queueing; and while the coordinator is behind (the socket
            # at its high-water mark) the ticks wait in the outbox, the newest per asset.
            # First the batch's messages in order (sync, heartbeats, sequence); then its ticks:
            # of several ticks of one asset that the link delivered together only the newest is
            # forwarded — the coordinator would supersede the others in the same wake-up (one
            # frame is one batch), so no decision changes; they are flagged ``shed`` in the
            # trace and counted (``superseded``). Keeping up, a batch holds one tick; behind,
            # this is where the load is shed before the per-tick work.
            ticks: list[tuple[Any, tuple[Any, ...]]] = []
            newest: dict[int, int] = {}  # asset -> index in ticks of its newest
            for rec in batch:
                try:
                    mtype, tick = dm.decode_values(rec.payload)
                except DecodeError as exc:
                    counts["decode_errors"] += 1
                    last_error = str(exc)
                    continue
                if mtype == dm.MSG_HEARTBEAT:
                    counts["heartbeats"] += 1
                    continue
                if mtype != dm.MSG_TICK:
                    if mtype == dm.MSG_DELAY_REQ and sync is not None:
                        sync.on_delay_req(tick, rec.rx_ns)
                    else:
                        counts["other_messages"] += 1
                    continue
                counts["ticks"] += 1
                if not seqs.observe(tick[T_SEQ]):
                    counts["stale_dropped"] += 1
                    continue
                newest[tick[T_ASSET]] = len(ticks)
                ticks.append((rec, tick))
            for k, (rec, tick) in enumerate(ticks):
                seq = tick[T_SEQ]
                send_dev = tick[T_SEND]
                if newest[tick[T_ASSET]] != k:
                    counts["superseded"] += 1
                    trace.append(
                        (venue_id, tick[T_ASSET], seq, tick[T_INTENDED], send_dev, rec.rx_ns,
                         rec.rx_ns, tick[T_BID], tick[T_ASK], 1)
                    )  # fmt: skip
                    continue
                latency = rec.rx_ns - send_dev
                problem, signals = translator.translate(tick, rec.rx_ns, latency)
                decoded = clock.now_ns()
                gone = outbox.add_tick(tick[T_ASSET], problem + signals, trace.n)
                if gone is not None:  # its older tick never left: superseded here
                    trace.view()[gone]["shed"] = 1
                    counts["superseded"] += 1
                    counts["forwarded"] -= 1
                share = translator.take_share()
                if share is not None:  # once per release epoch: its own message, in order
                    outbox.add_other(share)
                counts["forwarded"] += 1
                trace.append(
                    (venue_id, tick[T_ASSET], seq, tick[T_INTENDED], send_dev, rec.rx_ns, decoded,
                     tick[T_BID], tick[T_ASK], 0)
                )  # fmt: skip
            outbox.flush()
            if outbox.pending != waiting_out:  # wake when the socket takes more
                waiting_out = outbox.pending
                if waiting_out:
                    poller.register(push, zmq.POLLIN | zmq.POLLOUT)
                else:
                    poller.unregister(push)
    finally:
        outbox.flush()
        counts["frames"] = outbox.frames
        counts["unsent_at_stop"] = len(outbox.items)  # the socket took no more before the stop
        if privacy is not None:
            privacy.finish()  # the refusal summaries, before the ledger link closes
        trace.save(out_dir / f"{name}.trace.npy")
        if rounds is not None:
            rounds.solves.save(out_dir / f"{name}.solves.npy")
            if isinstance(rounds, VenueRounds) and rounds.masking is not None:
                rounds.save_convergence(out_dir, name)
        if sync is not None:
            sync.save(out_dir / f"{name}.sync.npy")
        stats = {
            "role": "venue_adapter",
            "name": name,
            "venue_id": venue_id,
            "timestamp_source": link.timestamp_source,
            "link": link.counters(),
            "adapter": counts,
            "sequence": {"gaps": seqs.gaps, "missing": seqs.missing, "duplicates": seqs.duplicates},
            "last_error": last_error,
            "cpu": cpu_usage(),
            "sync": sync.counts if sync is not None else None,
            "signals": None if translator.correlation is None else translator.correlation.summary(),
            "rounds": None
            if rounds is None
            else {**rounds.counts, "last_error": rounds.last_error},
            "security": None if sec is None else sec.stats(),
            "privacy": None if privacy is None else privacy.state(),
            "signal_shares": None
            if translator.sharer is None
            else {**translator.sharer.counts, "last_error": translator.sharer.last_error},
        }
        write_json_atomic(out_dir / f"{name}.stats.json", stats)
        if sec is not None:
            sec.close()
        link.close()
        push.close()
        if rounds is not None:
            dealer.close(linger=0)
    return 0


def main() -> None:
    run_role(run)


if __name__ == "__main__":
    main()
