"""Security over real ZeroMQ sockets, end to end in one process: the campaign registry (authority,
roster, governance ROUTER, ledger) and one :class:`RoleSecurity` per role (coordinator, two
venues, broker), each on its own ZeroMQ context as in separate processes, with CURVE + ZAP on
pipeline sockets (tcp://127.0.0.1, ephemeral ports) and tagged messages through
:class:`SecureSocket`.

Each test shows a mechanism refusing what it exists to refuse (unknown or wrong-role client at
the handshake; tampered, replayed, late, revoked, expired or unattested message at message
time; a checkpoint whose consistency proof does not extend what the signer signed last), that
the refusal is counted where it happened, and that it ends up in the ledger, which then
verifies (chain, Merkle proofs, checkpoint signatures and co-signatures).

Waits are poll loops with deadlines that keep every role's governance channel serviced; the
credential-expiry test runs on a shared clock that the test advances (real time + offset) in
steps shorter than the skew window, so several credential lifetimes pass in under a second.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.security.attest import attest
from arbsphere.security.campaign_registry import (
    CREDENTIAL_SKEW_NS,
    LEDGER_DIR,
    CampaignRegistry,
    make_members,
)
from arbsphere.security.identity import Role, RoleIdentity
from arbsphere.security.ledger import EventKind, LedgerEntry, read_entries, verify_ledger
from arbsphere.security.merkle import MerkleTree, leaf_hash
from arbsphere.security.role_security import PIPELINE, RoleSecurity
from arbsphere.security.secure_socket import SecureSocket
from arbsphere.security.settings import SecurityConfig
from arbsphere.security.tags import Sealer
from arbsphere.security.zap import curve_client
from arbsphere.testing import StepClock

ROLES = ("coordinator", "venue_a", "venue_b", "broker")
VENUES = {"venue_a": 100, "venue_b": 101}
COORDINATOR_ID, BROKER_ID = 1, 2
WAIT_S = 5.0
QUIET_MS = 150

REG = default_registry()
QUOTE = REG.schema("VenueQuote")
PLAN = REG.schema("PlanDelta", 2)


# --- helpers ---------------------------------------------------------------------------------
def quote(sender_id: int, nonce: int, ts_ns: int) -> bytes:
    """A VenueQuote with two assets (prices derived from the nonce, so every message differs)."""
    hdr = np.zeros(1, QUOTE.header.dtype)
    hdr["venue_id"] = sender_id
    hdr["n_assets"] = 2
    hdr["tick_seq"] = nonce
    hdr["tick_intended_ns"] = ts_ns
    hdr["budget_ns"] = 2_000_000
    assert QUOTE.item is not None
    items = np.zeros(2, QUOTE.item.dtype)
    items["asset_id"] = [0, 1]
    items["bid_px"] = [1_000_000 + nonce, 2_000_000 + nonce]
    items["ask_px"] = [1_000_100 + nonce, 2_000_100 + nonce]
    return REG.encode(QUOTE, hdr, items, sender_id=sender_id, nonce=nonce, origin_ts_ns=ts_ns)


def plan_delta(nonce: int, ts_ns: int) -> bytes:
    """A one-leg TRADE PlanDelta from the coordinator."""
    hdr = np.zeros(1, PLAN.header.dtype)
    hdr["delta_id"] = nonce
    hdr["ts_ns"] = ts_ns
    hdr["sender"] = COORDINATOR_ID
    hdr["n_legs"] = 1
    hdr["cause_venue"] = 100
    hdr["kind"] = 1
    assert PLAN.item is not None
    legs = np.zeros(1, PLAN.item.dtype)
    legs["delta_id"] = nonce
    legs["venue"] = 100
    legs["side"] = 1
    legs["size_lots"] = 3
    legs["limit_px"] = 1_000_050
    return REG.encode(PLAN, hdr, legs, sender_id=COORDINATOR_ID, nonce=nonce, origin_ts_ns=ts_ns)


class Sender:
    """One sender's messages on one link: incrementing nonce, origin_ts_ns = clock now."""

    def __init__(self, clock: Clock, sender_id: int, sock: SecureSocket) -> None:
        self.clock = clock
        self.sender_id = sender_id
        self.sock = sock
        self.nonce = 0

    def send(self) -> bytes:
        self.nonce += 1
        msg = quote(self.sender_id, self.nonce, self.clock.now_ns())
        self.sock.send(msg)
        return msg


def recv_n(sock: SecureSocket, n: int, timeout_s: float = WAIT_S) -> list[bytes]:
    """Up to ``n`` messages that pass the guard (refused ones are dropped by SecureSocket)."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        left_ms = max(0, round((deadline - time.monotonic()) * 1000))
        if not sock.poll(left_ms):
            break
        with contextlib.suppress(zmq.Again):  # the guard refused what was queued
            got.append(sock.recv(zmq.NOBLOCK))
    return got


def processed(sock: SecureSocket) -> int:
    """Messages the socket's guard has judged so far (accepted + refused)."""
    assert sock.guard is not None
    return sock.guard.accepted + sum(sock.guard.refusals.values())


def drain(sock: SecureSocket, total: int, timeout_s: float = WAIT_S) -> list[bytes]:
    """Receive until the guard has judged ``total`` messages in all; returns those it passed."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while processed(sock) < total:
        left_ms = max(0, round((deadline - time.monotonic()) * 1000))
        if not sock.poll(left_ms):
            raise AssertionError(f"judged {processed(sock)} of {total} messages in {timeout_s} s")
        with contextlib.suppress(zmq.Again):  # the guard refused what was queued
            got.append(sock.recv(zmq.NOBLOCK))
    return got


def registry_refusals(c: Campaign) -> Any:
    """The registry's governance-channel refusals by reason (its guard, read across threads:
    a Counter read is fine for a poll)."""
    sec = c.registry._security
    assert sec is not None
    return sec.guards[0].refusals


def events(entries: list[LedgerEntry], kind: EventKind, **match: Any) -> list[LedgerEntry]:
    return [
        e
        for e in entries
        if e.kind == kind and all(e.details.get(k) == v for k, v in match.items())
    ]


class Campaign:
    """The registry and the four roles, each role on its own context (see module docstring).

    ``pump`` services every role's governance channel (``service()``: frames, renewal,
    ZAP-refusal and message-refusal reports); roles in ``no_tick`` only handle frames (they
    never renew); ``finish`` ends the run while pumping and verifies the ledger."""

    def __init__(self, run_dir: Path, settings: SecurityConfig, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else RealtimeClock()
        self.run_dir = run_dir
        self.sockets: list[zmq.Socket[Any]] = []
        self.ctxs: dict[str, zmq.Context[Any]] = {}
        self.roles: dict[str, RoleSecurity] = {}
        self.no_tick: set[str] = set()
        self.finished = False
        self.registry = CampaignRegistry(
            run_dir,
            settings,
            make_members("coordinator", COORDINATOR_ID, VENUES, "broker", BROKER_ID),
            self.clock,
            signer="coordinator",
            cosigners=list(VENUES),
            run_details={"campaign": "test_security_pipeline"},
        )
        self.registry.start()
        for name in ROLES:
            ctx: zmq.Context[Any] = zmq.Context()
            self.ctxs[name] = ctx
            settings_table = self.registry.role_settings(name)
            self.roles[name] = RoleSecurity(settings_table, self.clock, ctx, source=name)
        for sec in self.roles.values():
            sec.connect_registry()
        self.wait_for(lambda: set(self.registry.joined) == set(ROLES), "every role's HELLO")

    # --- driving -----------------------------------------------------------------------------
    def pump(self) -> None:
        for name, sec in self.roles.items():
            if sec.gov is None:
                continue
            if name in self.no_tick:
                sec.handle_governance()
            else:
                sec.service()

    def wait_for(self, pred: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if pred():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.003)

    def settle(self, seconds: float = 0.05) -> None:
        """Pump for a short while (frames in flight get handled)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            time.sleep(0.003)

    # --- sockets -----------------------------------------------------------------------------
    def socket(self, role: str, kind: int) -> zmq.Socket[Any]:
        s: zmq.Socket[Any] = self.ctxs[role].socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, 2000)
        self.sockets.append(s)
        return s

    def serve(self, role: str, kind: int, domain: str, admits: list[Role]) -> tuple[Any, str]:
        """A CURVE server socket of ``role`` admitting ``admits`` through ZAP ``domain``."""
        s = self.socket(role, kind)
        self.roles[role].server(s, domain, admits)
        s.bind("tcp://127.0.0.1:*")
        return s, s.getsockopt_string(zmq.LAST_ENDPOINT)

    def connect(self, role: str, kind: int, server: str, endpoint: str) -> zmq.Socket[Any]:
        """A CURVE client socket of ``role`` connected to ``server``'s ``endpoint``."""
        s = self.socket(role, kind)
        self.roles[role].client(s, server)
        s.connect(endpoint)
        return s

    def venue_link(self, venues: list[str]) -> tuple[SecureSocket, dict[str, Sender]]:
        """The coordinator's inbound PULL (admits venues and the broker) guarding the PIPELINE
        channel, and a sealing PUSH from each of ``venues``."""
        coord = self.roles["coordinator"]
        pull, endpoint = self.serve("coordinator", zmq.PULL, "inbound", [Role.VENUE, Role.BROKER])
        inbound = SecureSocket(pull, guard=coord.guard(PIPELINE, venues))
        senders = {}
        for v in venues:
            push = self.connect(v, zmq.PUSH, "coordinator", endpoint)
            sealer = self.roles[v].sealer(PIPELINE, "coordinator")
            senders[v] = Sender(self.clock, VENUES[v], SecureSocket(push, sealer=sealer))
        return inbound, senders

    # --- the end -----------------------------------------------------------------------------
    def finish(self, require_cosigners: tuple[str, ...] = tuple(VENUES)) -> list[LedgerEntry]:
        """RUN_STOP + final checkpoint (roles pumped meanwhile); verify the ledger against the
        registry's summary; return its entries."""
        out: dict[str, Any] = {}
        th = threading.Thread(target=lambda: out.update(self.registry.finish(True, "test end")))
        th.start()
        deadline = time.monotonic() + 15.0
        while th.is_alive() and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.003)
        th.join(timeout=1.0)
        self.finished = True
        assert not th.is_alive(), "registry.finish did not return"
        assert self.registry.error is None, self.registry.error
        ledger = self.run_dir / LEDGER_DIR
        result = verify_ledger(
            ledger,
            self.registry.public_keys(),
            require_cosigners=require_cosigners,
            expected_size=out["size"],
            expected_root=bytes.fromhex(out["root"]),
        )
        assert result.final_signer == "coordinator"
        assert set(require_cosigners) <= set(result.final_cosigners)
        assert result.events == out["size"]
        return read_entries(ledger)

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            th = threading.Thread(target=lambda: self.registry.finish(False, "test teardown"))
            th.start()
            deadline = time.monotonic() + 10.0
            while th.is_alive() and time.monotonic() < deadline:
                self.pump()
                time.sleep(0.005)
        for s in self.sockets:
            s.close(linger=0)
        for sec in self.roles.values():
            sec.close()
        for ctx in self.ctxs.values():
            ctx.destroy(linger=0)
        self.registry.cleanup()


@pytest.fixture
def make_campaign(tmp_path: Path) -> Iterator[Callable[..., Campaign]]:
    made: list[Campaign] = []

    def make(settings: SecurityConfig | None = None, clock: Clock | None = None) -> Campaign:
        c = Campaign(tmp_path / f"run{len(made)}", settings or SecurityConfig(), clock)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --- 1. happy path ---------------------------------------------------------------------------
def test_happy_path_messages_arrive_intact_and_ledger_verifies(make_campaign: Any) -> None:
    c = make_campaign(SecurityConfig(checkpoint_interval_s=0.3))
    inbound, senders = c.venue_link(["venue_a", "venue_b"])
    sent = [senders[v].send() for _ in range(5) for v in ("venue_a", "venue_b")]
    got = recv_n(inbound, len(sent))
    assert sorted(got) == sorted(sent)  # the tag is stripped, the bytes are intact
    decoded = REG.decode(got[0])
    assert decoded.schema.name == "VenueQuote" and decoded.sender_id in VENUES.values()
    # per sender, in order
    for v, sid in VENUES.items():
        mine = [REG.decode(m) for m in got if REG.decode(m).sender_id == sid]
        assert [m.nonce for m in mine] == [1, 2, 3, 4, 5], v

    coord = c.roles["coordinator"]
    stats = coord.stats()
    assert stats["zap"] == {"accepted": 2, "refusals": {}}
    assert stats["messages"]["pipeline"] == {"accepted": 10, "refused": {}}
    c.wait_for(lambda: c.registry.ledger.checkpoints != (), "a periodic checkpoint")

    entries = c.finish()
    joined = {e.details["name"] for e in events(entries, EventKind.ROLE_JOINED)}
    assert joined == set(ROLES)
    issued = {e.details["name"] for e in events(entries, EventKind.CREDENTIAL_ISSUED)}
    assert issued == {*ROLES, "registry"}
    assert not events(entries, EventKind.MESSAGE_REFUSED)
    assert not events(entries, EventKind.CREDENTIAL_REFUSED)
    assert entries[0].kind == EventKind.RUN_START and entries[-1].kind == EventKind.RUN_STOP
    for name in ("coordinator", *VENUES):
        assert c.roles[name].counts["checkpoints_signed"] >= 2, name  # periodic + final
        assert c.roles[name].counts["checkpoints_refused"] == 0, name


# --- 2. unknown CURVE client -----------------------------------------------------------------
def test_unknown_curve_client_refused_at_handshake(make_campaign: Any) -> None:
    c = make_campaign()
    inbound, senders = c.venue_link(["venue_a"])
    coord = c.roles["coordinator"]
    intruder = RoleIdentity.generate("intruder", Role.VENUE)  # well-formed keys, no credential
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        curve_client(
            push,
            intruder,
            c.roles["venue_a"].roster.entries["coordinator"].credential.curve_public_z85,
        )
        push.connect(inbound.sock.getsockopt_string(zmq.LAST_ENDPOINT))
        push.send(quote(VENUES["venue_a"], 1000, c.clock.now_ns()))  # queued, never delivered
        c.wait_for(lambda: coord.auth is not None and coord.auth.refusals["unknown"] >= 1, "ZAP")
        push.close(linger=0)
    finally:
        ctx.destroy(linger=0)
    good = senders["venue_a"].send()
    assert recv_n(inbound, 2, timeout_s=QUIET_MS / 1000) == [good]  # only the venue's
    assert inbound.guard is not None and dict(inbound.guard.refusals) == {}
    zap = coord.stats()["zap"]
    assert zap["accepted"] == 1
    assert zap["refusals"]["unknown"] >= 1
    assert set(zap["refusals"]) == {"unknown"}
    c.settle()  # tick() ledgers the queued handshake refusals

    entries = c.finish()
    refused = events(
        entries, EventKind.CREDENTIAL_REFUSED, reason="unknown", where="handshake", at="coordinator"
    )
    assert len(refused) == zap["refusals"]["unknown"] >= 1
    assert {e.details["curve_key"] for e in refused} == {intruder.curve_public.decode()}


# --- 3. wrong role ---------------------------------------------------------------------------
def test_wrong_role_refused_at_handshake(make_campaign: Any) -> None:
    c = make_campaign()
    coord = c.roles["coordinator"]
    # venue quotes: venues only; plans: the broker only (two ZAP domains on one context)
    pull, quotes_ep = c.serve("coordinator", zmq.PULL, "quotes", [Role.VENUE])
    plans, plans_ep = c.serve("coordinator", zmq.PUSH, "plans", [Role.BROKER])
    broker_push = c.connect("broker", zmq.PUSH, "coordinator", quotes_ep)
    venue_pull = c.connect("venue_a", zmq.PULL, "coordinator", plans_ep)
    c.wait_for(lambda: coord.auth is not None and coord.auth.refusals["wrong_role"] >= 2, "ZAP")
    with contextlib.suppress(zmq.Again):  # after the failed handshake there may be no pipe
        broker_push.send(quote(BROKER_ID, 1, c.clock.now_ns()), zmq.NOBLOCK)
    assert not pull.poll(QUIET_MS)

    # the right roles get through the same sockets
    broker_pull = c.connect("broker", zmq.PULL, "coordinator", plans_ep)
    msg = plan_delta(1, c.clock.now_ns())
    plans.send(msg)
    assert broker_pull.poll(WAIT_S * 1000) and broker_pull.recv() == msg
    assert not venue_pull.poll(QUIET_MS)
    zap = coord.stats()["zap"]
    assert zap["accepted"] == 1
    assert set(zap["refusals"]) == {"wrong_role"}
    c.settle()

    entries = c.finish()
    refused = events(entries, EventKind.CREDENTIAL_REFUSED, reason="wrong_role", at="coordinator")
    assert len(refused) == zap["refusals"]["wrong_role"]
    keys = {e.details["curve_key"] for e in refused}
    roster = coord.roster.entries
    assert keys == {
        roster["broker"].credential.curve_public_z85,
        roster["venue_a"].credential.curve_public_z85,
    }


# --- 4. tampered, replayed, late -------------------------------------------------------------
def test_tampered_replayed_late_refused_counted_ledgered(make_campaign: Any) -> None:
    c = make_campaign()
    coord, venue = c.roles["coordinator"], c.roles["venue_a"]
    pull, endpoint = c.serve("coordinator", zmq.PULL, "inbound", [Role.VENUE])
    guard = coord.guard(PIPELINE, ["venue_a"])
    inbound = SecureSocket(pull, guard=guard)
    raw = c.connect("venue_a", zmq.PUSH, "coordinator", endpoint)  # valid CURVE identity
    sealer = venue.sealer(PIPELINE, "coordinator")
    assert isinstance(sealer, Sealer)
    sid = VENUES["venue_a"]
    now = c.clock.now_ns
    max_past_ns = venue.settings.max_past_ns

    first = quote(sid, 1, now())
    raw.send(sealer.seal(first))
    tampered = bytearray(sealer.seal(quote(sid, 2, now())))
    tampered[60] ^= 0x01  # a payload byte (bid price), envelope untouched
    raw.send(bytes(tampered))
    replay = quote(sid, 3, now())
    sealed = sealer.seal(replay)
    raw.send(sealed)
    raw.send(sealed)
    raw.send(sealer.seal(quote(sid, 4, now() - max_past_ns - 1_000_000_000)))
    last = quote(sid, 5, now())
    raw.send(sealer.seal(last))

    got = drain(inbound, 6)
    assert got == [first, replay, last]  # never the refused ones
    assert dict(guard.refusals) == {"bad_tag": 1, "replayed": 1, "skew_past": 1}
    assert guard.accepted == 3
    assert coord.stats()["messages"]["pipeline"]["refused"] == dict(guard.refusals)
    coord.report_refusals()
    coord.report_refusals()  # nothing new: no second event
    c.settle()

    entries = c.finish()
    refused = events(entries, EventKind.MESSAGE_REFUSED, at="coordinator", channel="pipeline")
    by_reason = {e.details["reason"]: e.details for e in refused}
    assert sorted(by_reason) == ["bad_tag", "replayed", "skew_past"]
    assert len(refused) == 3
    for d in by_reason.values():
        assert d["count"] == 1 and d["total"] == 1 and d["where"] == "message"


# --- 5. revocation ---------------------------------------------------------------------------
def test_revoked_credential_refused_on_open_connection(make_campaign: Any) -> None:
    c = make_campaign()
    coord = c.roles["coordinator"]
    inbound, senders = c.venue_link(["venue_a", "venue_b"])
    before = [senders["venue_a"].send(), senders["venue_b"].send()]
    assert sorted(recv_n(inbound, 2)) == sorted(before)
    serial = c.roles["venue_a"].me.credential.serial

    c.registry.revoke("venue_a")
    c.wait_for(
        lambda: all(s.counts["revocation_lists"] >= 1 for s in c.roles.values()),
        "every role to adopt the revocation list",
    )
    senders["venue_a"].send()  # the connection is still open: refused at message time
    after = senders["venue_b"].send()
    assert drain(inbound, 4) == [after]
    assert inbound.guard is not None
    assert dict(inbound.guard.refusals) == {"credential_revoked": 1}
    # a new connection under the revoked credential is refused at the handshake
    c.connect("venue_a", zmq.PUSH, "coordinator", inbound.sock.getsockopt_string(zmq.LAST_ENDPOINT))
    c.wait_for(lambda: coord.auth is not None and coord.auth.refusals["revoked"] >= 1, "ZAP")
    # the governance channel too: the registry refuses the revoked role's events
    c.roles["venue_a"].event(EventKind.PLAN_DELTA, 0, {"from": "revoked venue_a"})
    c.wait_for(lambda: registry_refusals(c)["credential_revoked"] >= 1, "the registry's refusal")
    c.settle()

    entries = c.finish(require_cosigners=("venue_b",))
    assert c.registry.summary()["final_cosigners"] == ["venue_b"]  # venue_a is not asked
    revoked = events(entries, EventKind.CREDENTIAL_REVOKED, name="venue_a")
    assert [e.details["serial"] for e in revoked] == [serial]
    assert not events(entries, EventKind.PLAN_DELTA)
    at_registry = events(
        entries, EventKind.CREDENTIAL_REFUSED, at="registry", reason="credential_revoked"
    )
    assert len(at_registry) == 1 and at_registry[0].details["channel"] == "governance"
    at_message = events(
        entries, EventKind.CREDENTIAL_REFUSED, at="coordinator", reason="credential_revoked"
    )
    assert len(at_message) == 1
    assert at_message[0].details["count"] == 1 and at_message[0].details["where"] == "message"
    assert at_message[0].details["channel"] == "pipeline"
    assert events(entries, EventKind.CREDENTIAL_REFUSED, reason="revoked", where="handshake")


# --- 6. rotation at half-life, expiry at message time ----------------------------------------
def test_rotation_keeps_pipeline_flowing_and_expired_sender_is_refused(
    make_campaign: Any,
) -> None:
    clock = StepClock(base=RealtimeClock())
    validity_s = 4.0
    c = make_campaign(
        SecurityConfig(credential_validity_s=validity_s, checkpoint_interval_s=1.0), clock
    )
    c.no_tick.add("venue_b")  # venue_b handles frames but never renews
    coord, va, vb = c.roles["coordinator"], c.roles["venue_a"], c.roles["venue_b"]
    inbound, senders = c.venue_link(["venue_a", "venue_b"])
    serial_a = va.me.credential.serial
    b_expires = vb.me.credential.not_after_ns + CREDENTIAL_SKEW_NS
    a_first_expiry = va.me.credential.not_after_ns + CREDENTIAL_SKEW_NS
    coord_first_expiry = coord.me.credential.not_after_ns + CREDENTIAL_SKEW_NS

    accepted: dict[str, list[int]] = {"venue_a": [], "venue_b": []}
    refused_b_at: list[tuple[int, int]] = []  # (clock before sending, after receiving)
    accepted_b_at: list[tuple[int, int]] = []
    step_s = 0.25
    while clock.now_ns() < b_expires + 1_000_000_000:
        clock.sleep(step_s)
        c.settle(0.01)
        t = clock.now_ns()
        sent_b = senders["venue_b"].send()
        senders["venue_a"].send()
        got = drain(inbound, processed(inbound) + 2)
        for m in got:
            name = "venue_a" if REG.decode(m).sender_id == VENUES["venue_a"] else "venue_b"
            accepted[name].append(REG.decode(m).nonce)
        (accepted_b_at if sent_b in got else refused_b_at).append((t, clock.now_ns()))

    # venue_a renewed (at half-life, again and again) and nothing of it was ever refused
    assert va.me.credential.serial != serial_a
    assert va.counts["credential_renewed"] >= 2
    assert coord.counts["peer_credentials"] >= 2
    assert accepted["venue_a"] == list(range(1, senders["venue_a"].nonce + 1))
    assert clock.now_ns() > a_first_expiry  # well past venue_a's first credential
    # venue_b: accepted until its credential (+ skew) ran out, refused from then on
    assert accepted_b_at and refused_b_at
    assert max(before for before, _ in accepted_b_at) < b_expires
    assert min(after for _, after in refused_b_at) >= b_expires
    assert inbound.guard is not None
    assert dict(inbound.guard.refusals) == {"credential_expired": len(refused_b_at)}
    assert vb.me.credential.serial == c.registry.roster.entries["venue_b"].credential.serial

    # its governance events are refused by the registry too
    vb.event(EventKind.PLAN_DELTA, 0, {"from": "expired venue_b"})
    c.wait_for(lambda: registry_refusals(c)["credential_expired"] >= 1, "the registry's refusal")

    c.settle(0.05)
    entries = c.finish(require_cosigners=("venue_a",))
    assert c.registry.summary()["final_cosigners"] == ["venue_a"]
    assert not events(entries, EventKind.PLAN_DELTA)
    assert events(entries, EventKind.CREDENTIAL_EXPIRED, at="registry", reason="credential_expired")
    # the registry rotated its own credential as well (roles judge its frames by it)
    assert events(entries, EventKind.CREDENTIAL_ROTATED, name="registry")
    rotated = events(entries, EventKind.CREDENTIAL_ROTATED, name="venue_a")
    assert len(rotated) >= 2 and rotated[-1].details["serial"] == va.me.credential.serial
    assert not events(entries, EventKind.CREDENTIAL_ROTATED, name="venue_b")
    expired = events(
        entries, EventKind.CREDENTIAL_EXPIRED, at="coordinator", reason="credential_expired"
    )
    assert sum(e.details["count"] for e in expired) == len(refused_b_at)
    # reported after the coordinator's first credential ran out: the registry judged its
    # frames by the rotated one
    assert all(e.ts_ns >= coord_first_expiry for e in expired)


# --- 7. checkpoint co-signing refuses an inconsistent ledger ---------------------------------
def test_checkpoint_with_inconsistent_history_is_not_signed(
    make_campaign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = make_campaign(SecurityConfig(checkpoint_interval_s=0.2))
    reg = c.registry
    signers = ("coordinator", *VENUES)
    c.wait_for(lambda: len(reg.ledger.checkpoints) >= 1, "a first checkpoint")
    c.wait_for(
        lambda: all(c.roles[n].counts["checkpoints_signed"] >= 1 for n in signers),
        "the first signatures",
    )
    c.settle(0.3)  # let any round in flight close
    signed = {n: c.roles[n].counts["checkpoints_signed"] for n in signers}
    last_signed = {n: c.roles[n]._last_signed for n in signers}
    n_checkpoints = len(reg.ledger.checkpoints)

    # the registry now presents a forked history (same sizes, other leaves): its root, and a
    # consistency proof that is valid within the fork but not from what the signers signed
    def fork(size: int) -> MerkleTree:
        return MerkleTree([leaf_hash(b"forged %d" % i) for i in range(size)])

    monkeypatch.setattr(reg.ledger, "root_at", lambda size: fork(size).root())
    monkeypatch.setattr(
        reg.ledger, "consistency_proof", lambda old, new: fork(new).consistency_proof(old, new)
    )
    c.roles["coordinator"].event(EventKind.PLAN_DELTA, 0, {"delta_id": 1})  # the ledger grows
    c.wait_for(
        lambda: all(c.roles[n].counts["checkpoints_refused"] >= 1 for n in signers),
        "every signer to refuse the forked checkpoint",
    )
    c.wait_for(lambda: reg.counts.get("checkpoints_unsigned", 0) >= 1, "the round to close")
    monkeypatch.undo()
    for n in signers:
        assert c.roles[n].counts["checkpoints_signed"] == signed[n], n
        assert c.roles[n]._last_signed == last_signed[n], n
    assert len(reg.ledger.checkpoints) == n_checkpoints

    entries = c.finish()  # the honest ledger still extends what everyone signed
    refused = events(entries, EventKind.CREDENTIAL_REFUSED, reason="checkpoint_refused")
    assert refused
    assert set(refused[0].details["by"]) == set(signers)
    assert refused[0].details["at"] == "registry"
    for n in signers:
        assert "consistency proof" in refused[0].details["by"][n], n


# --- 8. attested plan deltas -----------------------------------------------------------------
def test_broker_refuses_unattested_and_wrongly_attested_plans(make_campaign: Any) -> None:
    c = make_campaign(SecurityConfig(attest_plan_deltas=True))
    coord, broker, venue = c.roles["coordinator"], c.roles["broker"], c.roles["venue_a"]
    assert coord.settings.attest_plan_deltas and broker.settings.attest_plan_deltas
    push, endpoint = c.serve("coordinator", zmq.PUSH, "plans", [Role.BROKER])
    sealer = coord.sealer(PIPELINE, "broker")
    assert isinstance(sealer, Sealer)
    out = SecureSocket(push, sealer=sealer, attest=coord.sign_plan)
    guard = broker.guard(PIPELINE, ["coordinator"], attested_by="coordinator")
    inbound = SecureSocket(c.connect("broker", zmq.PULL, "coordinator", endpoint), guard=guard)
    now = c.clock.now_ns

    good = plan_delta(1, now())
    out.send(good)
    unattested = plan_delta(2, now())
    push.send(sealer.seal(unattested))  # the coordinator's tag, no attestation
    venue_signed = plan_delta(3, now())
    push.send(sealer.seal(attest(venue.identity.signing_key, venue_signed)))
    good2 = plan_delta(4, now())
    out.send(good2)

    got = drain(inbound, 4)
    assert got == [good, good2]  # attestation stripped, message intact
    assert dict(guard.refusals) == {"bad_attestation": 2}
    assert guard.attestation is not None
    assert (guard.attestation.verified, guard.attestation.refused) == (2, 2)
    broker.report_refusals()
    c.settle()

    entries = c.finish()
    refused = events(entries, EventKind.MESSAGE_REFUSED, at="broker", reason="bad_attestation")
    assert len(refused) == 1 and refused[0].details["count"] == 2


def test_refusals_map_to_the_ledger_kinds_the_issue_names() -> None:
    from arbsphere.security.role_security import refusal_kind

    assert refusal_kind("expired", handshake=True) == EventKind.CREDENTIAL_EXPIRED
    assert refusal_kind("credential_expired") == EventKind.CREDENTIAL_EXPIRED
    assert refusal_kind("revoked", handshake=True) == EventKind.CREDENTIAL_REFUSED
    assert refusal_kind("unknown", handshake=True) == EventKind.CREDENTIAL_REFUSED
    assert refusal_kind("credential_revoked") == EventKind.CREDENTIAL_REFUSED
    for reason in ("bad_tag", "replayed", "too_old", "skew_past", "bad_attestation"):
        assert refusal_kind(reason) == EventKind.MESSAGE_REFUSED
