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

from arbsphere.adapters.feed_arming import FeedArming
from arbsphere.adapters.links import Received, link_settings, timestamps_of
from arbsphere.adapters.outbox import Outbox
from arbsphere.adapters.role_config import VenueFederation, VenueRoleConfig
from arbsphere.adapters.signal_privacy import WITHHELD_LOTS, SignalPrivacy
from arbsphere.adapters.signal_shares import SignalSharer
from arbsphere.adapters.sync_master import open_sync_master
from arbsphere.adapters.venue_prices import VenuePrices
from arbsphere.adapters.venue_rounds import VenueRounds
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.errors import ConfigError, DecodeError, LinkError, PipelineError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.price_protocol import PRICE_MASK_SUFFIX
from arbsphere.privacy.secure_rounds import MASK_SESSION_SUFFIX, X_FIXED
from arbsphere.privacy.secure_signals import LIQ_FIXED, SIGNALS_SESSION_SUFFIX
from arbsphere.rounds_protocol import venue_identity
from arbsphere.runtime import RoleProcess, StopFlag, cpu_usage, run_role
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE, ROUNDS
from arbsphere.security.role_sockets import Plaintext, role_sockets
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


def venue_rounds_for(
    protocol: str, sock: Any, translator: TickTranslator, venue_id: int, clock: Clock,
    masked_by: Plaintext | None = None,
) -> VenueRounds | VenuePrices:  # fmt: skip
    """The venue's side of the federated ``protocol`` ("price" or "admm") on ``sock``;
    ``masked_by``: the role's sockets whose masking party masks the answers (secure
    aggregation), None: in clear."""
    solver = translator.solver
    assert solver is not None
    reg, sender, corr = translator.reg, translator.sender_id, translator.correlation
    if protocol == "price":
        masking = None if masked_by is None else masked_by.masking(venue_id, X_FIXED,
                                                                   PRICE_MASK_SUFFIX)  # fmt: skip
        return VenuePrices(sock, reg, solver, venue_id, sender, clock, corr, masking=masking)
    if protocol != "admm":
        raise ConfigError(f"must be 'price' or 'admm' (value {protocol!r})", key="protocol")
    masking = None if masked_by is None else masked_by.masking(venue_id, X_FIXED,
                                                               MASK_SESSION_SUFFIX)  # fmt: skip
    return VenueRounds(sock, reg, solver, venue_id, sender, clock, corr, masking=masking)


def _translator(cfg: VenueRoleConfig, source: str) -> TickTranslator:
    """The venue's tick translator: its costs, and in federated mode its solver, correlation
    estimate and privacy budgets."""
    fed = cfg.federated
    privacy = None
    if fed is not None and fed.privacy is not None:
        privacy = SignalPrivacy(cfg.venue_id, fed.privacy, cfg.position_limit_lots,
                                source=source, aligned=fed.secure_aggregation)  # fmt: skip
    return TickTranslator(
        venue_id=cfg.venue_id, sender_id=cfg.sender_id,
        costs=VenueCosts(fee_bp=cfg.fee_bp, gamma=cfg.gamma,
                         position_limit_lots=cfg.position_limit_lots),
        budget_ns=cfg.budget_ns,
        solver=VenueSolver(cfg.n_assets) if fed is not None else None,
        correlation=EwmaCorrelation(cfg.n_assets) if fed is not None else None,
        privacy=privacy,
    )  # fmt: skip


def _coordinator_push(
    ctx: zmq.Context[zmq.Socket[bytes]], security: Plaintext, cfg: VenueRoleConfig
) -> tuple[zmq.Socket[bytes], Any]:
    """The PUSH to the coordinator, connected: the raw socket (readiness) and what the outbox
    sends on (sealed with security on)."""
    push = ctx.socket(zmq.PUSH)
    # a short queue: when the coordinator falls behind the outbox keeps the newest tick per
    # asset instead (see adapters/outbox.py); bytes in the kernel's buffers are bounded too
    push.setsockopt(zmq.SNDHWM, OUT_HWM)
    push.setsockopt(zmq.SNDBUF, OUT_SOCKET_BUFFER)
    push.setsockopt(zmq.LINGER, 2000)
    push.setsockopt(zmq.IMMEDIATE, 1)
    security.client(push, Role.COORDINATOR)
    out = security.sender(push, PIPELINE, Role.COORDINATOR)
    try:
        push.connect(cfg.coordinator_endpoint)
    except zmq.ZMQError as exc:
        raise PipelineError(f"{cfg.name}: cannot connect to coordinator: {exc}") from exc
    return push, out


def _rounds_dealer(
    ctx: zmq.Context[zmq.Socket[bytes]], security: Plaintext, cfg: VenueRoleConfig,
    fed: VenueFederation,
) -> tuple[zmq.Socket[bytes], Any]:  # fmt: skip
    """The DEALER of the coordinator's rounds, connected: the raw socket (for the poller) and
    what the rounds speak on."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, venue_identity(cfg.venue_id))
    dealer.setsockopt(zmq.LINGER, 0)
    security.client(dealer, Role.COORDINATOR)
    sock = security.exchange(dealer, ROUNDS, Role.COORDINATOR)
    try:
        dealer.connect(fed.rounds_endpoint)
    except zmq.ZMQError as exc:
        raise PipelineError(
            f"{cfg.name}: cannot connect to the coordinator's rounds: {exc}"
        ) from exc
    return dealer, sock


def new_counts() -> dict[str, int]:
    """The venue adapter's message counters (its stats' ``adapter``)."""
    return {
        "ticks": 0,
        "heartbeats": 0,
        "decode_errors": 0,
        "other_messages": 0,
        "forwarded": 0,
        "superseded": 0,  # not forwarded: a newer tick of the asset came before it could go
        "frames": 0,  # ZeroMQ messages the forwarded ticks left in
        "stale_dropped": 0,
    }


class VenueProcess(RoleProcess):
    """One venue adapter: its link, translator, sockets (security decided once), rounds,
    clock sync and trace, wired from the role config; :meth:`serve` is the tick loop."""

    def __init__(self, cfg: VenueRoleConfig, source: str, clock: Clock) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.out_dir = Path(cfg.out_dir)
        self.clock = clock
        self.translator = translator = _translator(cfg, source)
        self.privacy = translator.privacy
        self.link = cfg.link.open(clock)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.security = security = role_sockets(cfg.security, source, clock, ctx)
        if self.privacy is not None:
            self.privacy.emit_to(security.event)  # BUDGET_SPENT / BUDGET_REFUSED: the ledger
        self.push, out = _coordinator_push(ctx, security, cfg)
        push_events = getattr(self.push, "getsockopt")  # noqa: B009 (the raw socket's)
        self.outbox = Outbox(lambda msg: out.send(msg, copy=True),
                             lambda: bool(push_events(zmq.EVENTS) & zmq.POLLOUT))  # fmt: skip
        self.rounds: VenueRounds | VenuePrices | None = None
        self.dealer: zmq.Socket[bytes] | None = None
        fed = cfg.federated
        if fed is not None:
            self._share_signals(fed)
            self.dealer, rounds_sock = _rounds_dealer(ctx, security, cfg, fed)
            masked_by = security if fed.secure_aggregation else None
            self.rounds = venue_rounds_for(fed.protocol, rounds_sock, translator, cfg.venue_id,
                                           clock, masked_by)  # fmt: skip
        self.sync = open_sync_master(cfg.sync, self.link, clock)
        #: the start handshake with a feed device the orchestrator does not launch
        self.arming = None if cfg.arming is None else FeedArming(cfg.arming, self.link)
        self.trace = TraceBuffer(TICK_TRACE_DTYPE)
        self.seqs = SequenceChecker()
        self.counts = new_counts()
        self.last_error = ""
        if self.rounds is not None:
            VenueSolver.warm_up()
            if isinstance(self.rounds, VenuePrices):
                VenuePrices.warm_up()
        security.connect_governance()

    def _share_signals(self, fed: VenueFederation) -> None:
        """Under secure aggregation the released signals leave only in masked shares."""
        if not fed.secure_aggregation:
            return
        cfg = self.cfg
        masking = self.security.masking(cfg.venue_id, LIQ_FIXED, SIGNALS_SESSION_SUFFIX)
        assert masking is not None  # secure aggregation comes with the security table

        def participants() -> int:
            return 0 if self.rounds is None else self.rounds.latest_participants

        t = self.translator
        t.sharer = SignalSharer(
            masking, t.reg, cfg.venue_id, t.sender_id, cfg.n_venues,
            round(fed.signal_release_interval_ms * 1e6), participants,
        )  # fmt: skip

    def ready_info(self) -> dict[str, Any]:
        ready: dict[str, Any] = {"timestamp_source": self.link.timestamp_source}
        address = getattr(self.link, "address", None)
        if address is not None:
            ready["address"] = list(address)
        return ready

    def serve(self, stop: StopFlag) -> None:
        """Until ``stop``: receive what the link has (and answer the rounds, serve the clock
        sync and the security timers), forward the ticks, flush the outbox; while it waits
        for the socket, wake when that takes more."""
        sync, rounds, link, clock, security = (
            self.sync, self.rounds, self.link, self.clock, self.security
        )  # fmt: skip
        outbox, push, dealer, forward = self.outbox, self.push, self.dealer, self._forward
        arming = self.arming  # None once it has nothing left to do
        link_fd = link.fileno()
        poller = zmq.Poller()
        poller.register(link_fd, zmq.POLLIN)
        if dealer is not None:
            poller.register(dealer, zmq.POLLIN)
        waiting_out = False
        while not stop.is_set:
            try:
                timeout = 100 if sync is None else sync.timeout_ms(clock.now_ns(), 100)
                if arming is not None:
                    timeout = arming.timeout_ms(clock.now_ns(), timeout)
                if rounds is None:  # (with messages waiting for the socket: look again soon)
                    batch = link.receive(timeout_ms=1 if outbox.pending else timeout)
                else:
                    # Read (and so stamp) what the link has first — a serial link's stamps
                    # are user-space, taken at the read — then answer a waiting round, then
                    # work through the ticks.
                    ready = dict(poller.poll(timeout))
                    batch = link.receive(timeout_ms=0) if link_fd in ready else []
                    if dealer in ready:
                        rounds.on_readable()
                if sync is not None:
                    sync.poll(clock.now_ns())
                if arming is not None and arming.poll(clock.now_ns()):
                    arming = None
                security.service()
            except OSError as exc:
                if stop.is_set:
                    break
                raise LinkError(f"{self.name}: link receive failed: {exc}") from exc
            forward(batch)
            outbox.flush()
            if outbox.pending != waiting_out:  # wake when the socket takes more
                waiting_out = outbox.pending
                if waiting_out:
                    poller.register(push, zmq.POLLIN | zmq.POLLOUT)
                else:
                    poller.unregister(push)

    def _forward(self, batch: list[Received]) -> None:
        """The ticks the link delivered together leave in one frame: one tag, one CurveZMQ
        box, one ZeroMQ send (the coordinator cuts it by the envelopes' payload_len). Keeping
        up, that is one tick; behind, the per-send cost (the I/O thread's wake-up, ~20-100 us
        here) is paid once per batch instead of per tick, so the adapter catches up instead of
        queueing; and while the coordinator is behind (the socket at its high-water mark) the
        ticks wait in the outbox, the newest per asset."""
        ticks, newest = self._sort(batch)
        if not ticks:
            return
        counts, trace, outbox, translator = self.counts, self.trace, self.outbox, self.translator
        venue_id, now = self.cfg.venue_id, self.clock.now_ns
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
            decoded = now()
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

    def _sort(
        self, batch: list[Received]
    ) -> tuple[list[tuple[Received, tuple[Any, ...]]], dict[int, int]]:
        """The batch's messages in order (clock sync, heartbeats, sequence), then its ticks:
        of several ticks of one asset that the link delivered together only the newest is
        forwarded — the coordinator would supersede the others in the same wake-up (one frame
        is one batch), so no decision changes; the others are flagged ``shed`` in the trace and
        counted (``superseded``). Keeping up, a batch holds one tick; behind, this is where
        the load is shed before the per-tick work. Returns the ticks and, per asset, the index
        of its newest."""
        ticks: list[tuple[Received, tuple[Any, ...]]] = []
        newest: dict[int, int] = {}  # asset -> index in ticks of its newest
        counts, sync, seqs = self.counts, self.sync, self.seqs
        for rec in batch:
            try:
                mtype, tick = dm.decode_values(rec.payload)
            except DecodeError as exc:
                counts["decode_errors"] += 1
                self.last_error = str(exc)
                continue
            if mtype == dm.MSG_HEARTBEAT:
                counts["heartbeats"] += 1
                continue
            if mtype != dm.MSG_TICK:
                if mtype == dm.MSG_DELAY_REQ and sync is not None:
                    sync.on_delay_req(tick, rec.rx_ns)
                elif mtype == dm.MSG_ARMED and self.arming is not None:
                    self.arming.on_armed(tick, rec.rx_ns)
                else:
                    counts["other_messages"] += 1
                continue
            counts["ticks"] += 1
            if not seqs.observe(tick[T_SEQ]):
                counts["stale_dropped"] += 1
                continue
            newest[tick[T_ASSET]] = len(ticks)
            ticks.append((rec, tick))
        return ticks, newest

    def save(self) -> None:
        """What the outbox still holds goes if the socket takes it; the privacy budgets'
        refusal summaries (before the ledger link closes); the traces."""
        outbox, out_dir, name = self.outbox, self.out_dir, self.name
        outbox.flush()
        self.counts["frames"] = outbox.frames
        self.counts["unsent_at_stop"] = len(outbox.items)  # the socket took no more
        if self.privacy is not None:
            self.privacy.finish()
        self.trace.save(out_dir / f"{name}.trace.npy")
        rounds = self.rounds
        if rounds is not None:
            rounds.solves.save(out_dir / f"{name}.solves.npy")
            if isinstance(rounds, VenueRounds) and rounds.masking is not None:
                rounds.save_convergence(out_dir, name)
        if self.sync is not None:
            self.sync.save(out_dir / f"{name}.sync.npy")

    def stats(self) -> dict[str, Any]:
        t, rounds, seqs, sync = self.translator, self.rounds, self.seqs, self.sync
        return {
            "role": "venue_adapter",
            "name": self.name,
            "venue_id": self.cfg.venue_id,
            "timestamp_source": self.link.timestamp_source,
            "timestamps": timestamps_of(self.link, None if sync is None else sync.tx_source),
            "link": self.link.counters(),
            "link_settings": link_settings(self.link),
            "adapter": self.counts,
            "sequence": {"gaps": seqs.gaps, "missing": seqs.missing, "duplicates": seqs.duplicates},
            "last_error": self.last_error,
            "cpu": cpu_usage(),
            "sync": sync.counts if sync is not None else None,
            "arming": None if self.arming is None else self.arming.stats(),
            "signals": None if t.correlation is None else t.correlation.summary(),
            "rounds": None if rounds is None else {**rounds.counts,
                                                   "last_error": rounds.last_error},
            "security": self.security.stats(),
            "privacy": None if self.privacy is None else self.privacy.state(),
            "signal_shares": None if t.sharer is None else {**t.sharer.counts,
                                                            "last_error": t.sharer.last_error},
        }  # fmt: skip

    def close(self) -> None:
        self.security.close()
        self.link.close()
        self.push.close()
        if self.dealer is not None:
            self.dealer.close(linger=0)


def start(cfg: VenueRoleConfig, source: str) -> VenueProcess:
    return VenueProcess(cfg, source, RealtimeClock())


def main() -> None:
    run_role(VenueRoleConfig, start)


if __name__ == "__main__":
    main()
