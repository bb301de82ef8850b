"""The broker adapter's contract suite: the judges on frames recorded from the adapter's own loop
(no processes), each kind of broken frame caught by its check and only by it; and the suite run
against the broker adapter and its emulated device (slow)."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from arbsphere.adapters.broker_adapter import _BrokerLoop
from arbsphere.adapters.links import Received
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.clock import RealtimeClock
from arbsphere.conformance.broker_contract import broker_checks
from arbsphere.conformance.contract_suite import contract_checks
from arbsphere.conformance.model import FAIL, PASS, SKIPPED, Check
from arbsphere.conformance.plan_script import PlanScript, SentDelta
from arbsphere.contracts import default_registry
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.rig.config import load_campaign
from arbsphere.security.secure_socket import SecureSocket
from arbsphere.security.tags import TAG_BYTES, Opener, Sealer
from arbsphere.sender_ids import BROKER_SENDER_ID
from arbsphere.testing import FakeBrokerLink, FakeSocket, StepClock

ROOT = Path(__file__).resolve().parents[1]
KEY = bytes(range(32))
T0 = 10**12
REG = default_registry()
_NONCE_AT = next(f.offset for f in REG.envelope.fields if f.name == "nonce")
_U64 = struct.Struct("<Q")

Recorded = tuple[list[list[bytes]], list[SentDelta]]


def _answer(link: FakeBrokerLink) -> list[Received]:
    """The device's final ACK of every order the link sent: alternately FILL, PARTIAL, REJECT."""
    acks: list[Received] = []
    for batch in link.sent:
        for order in batch:
            _mtype, values = dm.decode_values(order)
            f = dict(zip(dm.value_fields(dm.MSG_ORDER), values, strict=True))
            status = (dm.ACK_STATUS_FILL, dm.ACK_STATUS_PARTIAL,
                      dm.ACK_STATUS_REJECT)[len(acks) % 3]  # fmt: skip
            rec = dm.new_record(dm.MSG_ACK, 200)
            rec["order_id"] = f["order_id"]
            rec["status"] = status
            size = int(f["size_lots"])
            rec["filled_lots"] = {dm.ACK_STATUS_FILL: size, dm.ACK_STATUS_REJECT: 0}.get(
                status, size - 1
            )
            acks.append(Received(payload=dm.encode(rec), rx_ns=T0))
    link.sent.clear()
    return acks


def _record(fault_every: int = 0) -> Recorded:
    """What the broker adapter's loop pushes, sealed as its socket seals it, for a script of
    four deltas over 3 venues × 2 assets (the second with a wrong plan hash, then the
    snapshot), every order answered."""
    clock = StepClock(T0, 1_000)
    link = FakeBrokerLink(StepClock(T0))
    plans, out = FakeSocket(), FakeSocket()
    sealed = SecureSocket(out, sealer=Sealer(KEY, sender_id=BROKER_SENDER_ID))  # type: ignore[arg-type]
    loop = _BrokerLoop(REG, 200, PlanReplica(3, 2, fault_every=fault_every), link, plans, plans,
                       sealed, clock)  # fmt: skip
    script = PlanScript(3, 2, n_trades=4, corrupt_at=2)
    while (raw := script.next(clock.now_ns())) is not None:
        plans.deliver(raw)
        loop.plans()
        link.incoming = _answer(link)
        loop.acks(sync=None)
    return [[m] for m in out.sent], script.sent


def _judge(messages: list[list[bytes]], sent: list[SentDelta]) -> dict[str, Check]:
    opener = Opener({BROKER_SENDER_ID: KEY}, RealtimeClock(), max_past_ns=2**62,
                    max_future_ns=2**62)  # fmt: skip
    checks = [
        *contract_checks(messages, REG, "toyPair", "broker", ["a", "b", "c"], BROKER_SENDER_ID,
                         (T0, T0 + 10**9), tags=opener),
        *broker_checks(messages, REG, sent, tagged=True),
    ]  # fmt: skip
    return {c.name: c for c in checks}


def _failing(messages: list[list[bytes]], sent: list[SentDelta]) -> dict[str, float | None]:
    return {n: c.value for n, c in _judge(messages, sent).items() if c.verdict == FAIL}


def _reseal(body: bytes) -> bytes:
    """``body`` (envelope + payload) with a valid tag, whatever its nonce."""
    return Sealer(KEY).seal(body)


def _tamper_tag(m: list[bytes]) -> list[bytes]:
    return [m[0][:-1] + bytes([m[0][-1] ^ 1])]


def _nonce_of(m: list[bytes]) -> int:
    return int(_U64.unpack_from(m[0], _NONCE_AT)[0])


def test_recorded_broker_frames_pass_every_check() -> None:
    messages, sent = _record()
    checks = _judge(messages, sent)
    assert {n: c.verdict for n, c in checks.items() if c.verdict != PASS} == {}
    assert checks["orders_reported"].detail.startswith("0 of 8 legs")
    assert checks["replica_divergence"].value == 1  # delta 2's wrong hash, reported once


@pytest.mark.parametrize(
    ("name", "break_it", "caught_by"),
    [
        ("a tampered tag", lambda ms: [_tamper_tag(ms[0]), *ms[1:]], {"message_tags": 1}),
        ("a missing tag", lambda ms: [[ms[0][0][:-TAG_BYTES]], *ms[1:]], {"message_tags": 1}),
        (
            "a repeated nonce",  # the third frame re-sealed with the second one's nonce
            lambda ms: [*ms[:2], [_reseal(ms[2][0][:_NONCE_AT] + _U64.pack(_nonce_of(ms[1]))
                                          + ms[2][0][_NONCE_AT + 8 : -TAG_BYTES])], *ms[3:]],
            {"envelope_nonce": 1},
        ),
        (
            "a schema version the broker does not speak",  # PlanDelta v1 (it speaks v2)
            lambda ms: [*ms, [_reseal(REG.encode(
                REG.schema("PlanDelta", 1), np.zeros(1, REG.schema("PlanDelta", 1).header_dtype),
                sender_id=BROKER_SENDER_ID, nonce=_nonce_of(ms[-1]) + 9, origin_ts_ns=T0))]],
            {"contract_versions": 1},
        ),
        ("a frame of two reports lost", lambda ms: [*ms[:3], *ms[4:]], {"orders_reported": 2}),
        ("a frame of two reports sent twice", lambda ms: [*ms, ms[0]],
         {"reports_once": 2, "envelope_nonce": 2}),
    ],
)  # fmt: skip
def test_each_broken_frame_is_caught_by_its_check(
    name: str, break_it: Callable[[list[list[bytes]]], list[list[bytes]]],
    caught_by: dict[str, int],
) -> None:  # fmt: skip
    messages, sent = _record()
    # recorded: delta 1's two reports in one frame, delta 2's ReplicaStatus, its two reports,
    # and so on (each frame one tag)
    assert [len(REG.messages_of([m[0][:-TAG_BYTES]])) for m in messages] == [2, 1, 2, 2, 2]
    assert _failing(break_it(messages), sent) == caught_by, name


def test_a_replica_that_diverges_on_its_own_is_caught() -> None:
    # the adapter's replica corrupted on every 3rd trade: it reports a delta whose hash agreed
    messages, sent = _record(fault_every=3)
    assert _failing(messages, sent) == {"replica_consistent": 1}


def test_a_broker_that_never_reports_the_divergence_is_caught() -> None:
    messages, sent = _record()
    quiet = [m for m in messages if REG.decode(REG.messages_of([m[0][:-TAG_BYTES]])[0]).schema.name
             != "ReplicaStatus"]  # fmt: skip
    assert _failing(quiet, sent) == {"replica_divergence": 0}


def test_without_tags_the_check_is_skipped_with_its_reason() -> None:
    messages, _sent = _record()
    plain = [[m[0][:-TAG_BYTES]] for m in messages]
    checks = contract_checks(plain, REG, "toyPair", "broker", ["a", "b", "c"], BROKER_SENDER_ID,
                             (T0, T0 + 10**9), tags_reason="tags = false")  # fmt: skip
    tags = {c.name: c for c in checks}["message_tags"]
    assert (tags.verdict, tags.detail) == (SKIPPED, "tags = false")
    assert all(c.ok for c in checks)


# --- the suite against the broker adapter and its emulated device ---------------------------


@pytest.mark.slow
def test_broker_adapter_suite_passes_with_tags_judged(tmp_path: Path) -> None:
    from arbsphere.rig.conformance_broker import run_broker_adapter_suite

    campaign = load_campaign(ROOT / "campaigns/loopback.toml")
    result = run_broker_adapter_suite(campaign, RealtimeClock(), tmp_path, listen_s=3.0)
    checks = {c.name: c for c in result.checks}
    assert result.passed, [(c.name, c.detail) for c in result.checks if not c.ok]
    assert checks["message_tags"].verdict == PASS  # the loopback campaign has tags on
    assert checks["replica_divergence"].value == 1
    assert result.info["roles"]["broker"]["exit_code"] == 0


@pytest.mark.slow
def test_broker_adapter_suite_catches_a_replica_fault_and_skips_tags_when_off(
    tmp_path: Path,
) -> None:
    from arbsphere.rig.conformance_broker import run_broker_adapter_suite

    c = load_campaign(ROOT / "campaigns/loopback.toml")
    campaign = dataclasses.replace(
        c, broker=dataclasses.replace(c.broker, replica_fault_every=2),
        security=dataclasses.replace(c.security, tags=False),
    )  # fmt: skip
    result = run_broker_adapter_suite(campaign, RealtimeClock(), tmp_path, listen_s=1.0)
    checks = {c.name: c for c in result.checks}
    assert checks["replica_consistent"].verdict == FAIL
    assert checks["message_tags"].verdict == SKIPPED
    assert "tags = false" in checks["message_tags"].detail


def test_a_session_that_cannot_start_its_adapter_is_a_failed_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arbsphere.errors import PipelineError
    from arbsphere.rig import conformance_broker
    from arbsphere.rig.orchestrator import Orchestrator

    def refuse(self: Orchestrator) -> None:
        raise PipelineError("broker_adapter 'broker' exited with code 1 before it was ready")

    monkeypatch.setattr(Orchestrator, "_start_broker", refuse)
    campaign = load_campaign(ROOT / "campaigns/loopback.toml")
    result = conformance_broker.run_broker_adapter_suite(campaign, RealtimeClock(), tmp_path,
                                                         listen_s=0.1)  # fmt: skip
    checks = {c.name: c for c in result.checks}
    assert checks["adapter_session"].verdict == FAIL
    assert "exited with code 1" in checks["adapter_session"].detail
    assert checks["contract_frames"].verdict == FAIL and not result.passed
