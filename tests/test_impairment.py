"""Link impairment: the deterministic plan, the release scheduler, config validation, the
in-emulator transmitter wrapper, and the loopback UDP relay as a real process."""

from __future__ import annotations

import json
import math
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from arbsphere.clock import RealtimeClock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces.emulators.impair_relay import Direction, LatenessHistogram
from arbsphere.firmware_interfaces.emulators.impairment import (
    LEAD_STEP_NS,
    MAX_LEAD_NS,
    ImpairedTransmitter,
    Impairer,
    ImpairmentPlan,
    ImpairmentSpec,
    LinkImpairment,
)
from arbsphere.firmware_interfaces.emulators.schedule import stamp_messages
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
from arbsphere.testing import StepClock

US = 1_000
N_RATES = 100_000


def _actions(spec: ImpairmentSpec, n: int) -> list[tuple[tuple[int, ...], bool]]:
    plan = ImpairmentPlan(spec)
    return [(a.delays_ns, a.reordered) for a in (plan.take() for _ in range(n))]


def _within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# --- the plan -------------------------------------------------------------------------------

SPEC = ImpairmentSpec(delay_us=100, jitter_us=40, loss=0.1, duplicate=0.1, reorder=0.1, seed=7)


def test_plan_is_deterministic_per_seed_and_index() -> None:
    a = _actions(SPEC, 10_000)
    assert a == _actions(SPEC, 10_000)
    other = _actions(ImpairmentSpec(**{**SPEC.__dict__, "seed": 8}), 10_000)
    assert a != other
    assert sum(x != y for x, y in zip(a, other, strict=True)) > 1_000  # not a near-copy
    # random access gives the same action as the sequence: it depends on the index only
    plan = ImpairmentPlan(SPEC)
    for k in (9_999, 0, 4_096, 4_095, 123):
        act = plan.action(k)
        assert (act.delays_ns, act.reordered) == a[k]
    assert plan.counters()["packets_in"] == 0  # action() is pure; take() counts


def test_plan_rates_within_binomial_tolerance() -> None:
    spec = ImpairmentSpec(loss=0.2, duplicate=0.05, reorder=0.1, seed=3)
    plan = ImpairmentPlan(spec)
    acts = [plan.take() for _ in range(N_RATES)]
    c = plan.counters()
    dropped = sum(a.dropped for a in acts)
    kept = N_RATES - dropped
    assert c["packets_in"] == N_RATES and c["dropped"] == dropped
    assert c["duplicated"] == sum(a.duplicated for a in acts)
    assert c["reordered"] == sum(a.reordered for a in acts)
    assert c["copies"] == kept + c["duplicated"]
    assert _within_binomial(dropped, N_RATES, 0.2)
    assert _within_binomial(c["duplicated"], kept, 0.05)
    assert _within_binomial(c["reordered"], kept, 0.1)
    assert not any(a.dropped and a.reordered for a in acts)


def test_plan_jitter_distributions() -> None:
    n = N_RATES
    uni = ImpairmentPlan(ImpairmentSpec(delay_us=500, jitter_us=100, seed=1))
    d = [uni.action(k).delays_ns[0] for k in range(n)]
    assert min(d) >= 400 * US and max(d) <= 600 * US
    assert min(d) < 401 * US and max(d) > 599 * US  # the whole range is used
    se = 100 * US / math.sqrt(3) / math.sqrt(n)
    assert abs(sum(d) / n - 500 * US) < 5 * se

    nor = ImpairmentPlan(ImpairmentSpec(delay_us=1000, jitter_us=100, jitter_dist="normal"))
    d = [nor.action(k).delays_ns[0] for k in range(n)]
    mean = sum(d) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / n)
    assert abs(mean - 1000 * US) < 5 * 100 * US / math.sqrt(n)
    assert abs(std - 100 * US) < 2 * US

    # clipped at 0: the mean of max(0, X), X ~ N(100, 100) µs, is 100 Φ(1) + 100 φ(1)
    clip = ImpairmentPlan(ImpairmentSpec(delay_us=100, jitter_us=100, jitter_dist="normal"))
    d = [clip.action(k).delays_ns[0] for k in range(n)]
    assert min(d) == 0 and sum(x == 0 for x in d) > 0.1 * n
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    want = 100 * US * (0.5 * (1 + math.erf(1 / math.sqrt(2)))) + 100 * US * phi
    assert abs(sum(d) / n - want) < 2 * US


# --- the scheduler --------------------------------------------------------------------------


def _run(imp: Impairer[int], n: int, spacing_ns: int, step_ns: int = 1 * US) -> list[int]:
    """Submit 0..n-1 every ``spacing_ns`` while draining every ``step_ns``; then flush."""
    out: list[int] = []
    now = 0
    k = 0
    while k < n:
        if now >= k * spacing_ns:
            imp.submit(k, now)
            k += 1
            continue
        out += imp.due(now)
        now += step_ns
    return out + imp.flush()


def test_impairer_releases_in_time_order_ties_by_submission() -> None:
    spec = ImpairmentSpec(delay_us=50, jitter_us=30, seed=11)
    imp: Impairer[int] = Impairer(spec)
    plan = ImpairmentPlan(spec)
    for k in range(200):
        imp.submit(k, k * 10 * US)
    release = {k: k * 10 * US + plan.action(k).delays_ns[0] for k in range(200)}
    assert imp.next_release_ns() == min(release.values())
    assert imp.due(min(release.values()) - 1) == []
    got = imp.due(10**12)
    assert got == sorted(range(200), key=lambda k: (release[k], k))
    assert got != list(range(200))  # 30 µs jitter over 10 µs spacing reorders
    assert imp.counters()["out_of_order"] > 0 and imp.pending == 0
    assert imp.next_release_ns() is None

    tie: Impairer[str] = Impairer(ImpairmentSpec(delay_us=100))
    for name in "abcdef":
        tie.submit(name, 5_000)
    assert tie.due(104_999) == [] and tie.next_release_ns() == 105_000
    assert tie.due(105_000) == list("abcdef")


def test_impairer_reorder_gap_holds_behind_later_packets() -> None:
    spec = ImpairmentSpec(delay_us=20, reorder=0.2, reorder_gap=2, seed=5)
    plan = ImpairmentPlan(spec)
    imp: Impairer[int] = Impairer(spec)
    out = _run(imp, 2_000, spacing_ns=5 * US)
    assert sorted(out) == list(range(2_000))  # nothing lost, nothing doubled
    pos = {k: i for i, k in enumerate(out)}
    held = [k for k in range(2_000) if plan.action(k).reordered]
    assert len(held) > 300 and imp.counters()["reordered"] == len(held)
    checked = 0
    for k in held:
        later = [j for j in range(k + 1, 2_000) if not plan.action(j).reordered][:2]
        if len(later) == 2:
            assert pos[k] > pos[later[1]]  # behind the 2nd later packet, right after it
            assert all(plan.action(j).reordered for j in out[pos[later[1]] + 1 : pos[k]])
            checked += 1
    assert checked > 300
    not_held = [k for k in out if k not in set(held)]
    assert not_held == sorted(not_held)  # without jitter the others keep their order
    assert imp.counters()["out_of_order"] > 0


def test_impairer_reorder_delay_and_timeout() -> None:
    # extra delay instead of a packet count: 50 µs hold at 5 µs spacing = ~10 packets later
    spec = ImpairmentSpec(reorder=0.1, reorder_gap=0, reorder_delay_us=50, seed=2)
    plan = ImpairmentPlan(spec)
    out = _run(Impairer(spec), 1_000, spacing_ns=5 * US)
    assert sorted(out) == list(range(1_000))
    pos = {k: i for i, k in enumerate(out)}
    held = [k for k in range(990) if plan.action(k).reordered]
    assert len(held) > 50
    for k in held:  # released at 5k + 50 µs: after packet k + 9 (5k + 45), before k + 10
        others = [j for j in range(k + 1, k + 20) if not plan.action(j).reordered]
        assert all(pos[j] < pos[k] for j in others if j <= k + 9)
        assert all(pos[j] > pos[k] for j in others if j >= k + 10)
    # a held packet with no later traffic goes out at its timeout
    lone: Impairer[str] = Impairer(
        ImpairmentSpec(delay_us=10, reorder=1.0, reorder_gap=3, reorder_timeout_us=200)
    )
    lone.submit("x", 0)
    assert lone.next_release_ns() == 210 * US
    assert lone.due(209 * US) == [] and lone.due(210 * US) == ["x"]


def test_impairer_duplicates_and_overflow() -> None:
    imp: Impairer[int] = Impairer(ImpairmentSpec(delay_us=5, duplicate=1.0), max_pending=10)
    for k in range(8):
        imp.submit(k, 0)
    assert imp.due(5 * US) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # 5 fit: 10 copies pending max
    c = imp.counters()
    assert (c["packets_in"], c["duplicated"], c["overflow"], c["released"]) == (8, 8, 3, 10)


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ({"to_rig": {"delay_us": -5}}, "link.to_rig.delay_us", "-5"),
        ({"to_device": {"loss": 1.5}}, "link.to_device.loss", "1.5"),
        ({"to_rig": {"dealy_us": 500}}, "link.to_rig.dealy_us", "dealy_us"),
        ({"to_rig": {"jitter_dist": "pareto"}}, "link.to_rig.jitter_dist", "pareto"),
        ({"to_rig": {"seed": "7"}}, "link.to_rig.seed", "'7'"),
        ({"to_rig": {"reorder": 0.1, "reorder_gap": 0}}, "link.to_rig.reorder", "0.1"),
        ({"to_rig": 3}, "link.to_rig", "int"),
        ({"both": {}}, "link.both", "both"),
    ],
)
def test_config_errors_name_file_key_and_value(table: dict[str, Any], key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        LinkImpairment.from_table(table, "campaign.json", "link")
    err = info.value
    assert err.file == "campaign.json" and err.key == key
    assert "campaign.json" in str(err) and key in str(err) and value in str(err)


def test_config_reads_asymmetric_link() -> None:
    link = LinkImpairment.from_table(
        {"to_rig": {"delay_us": 500, "loss": 0.01}, "to_device": {"delay_us": 120}}, "c.json"
    )
    assert link.to_rig == ImpairmentSpec(delay_us=500, loss=0.01, seed=1)
    assert link.to_device == ImpairmentSpec(delay_us=120, seed=2)
    assert LinkImpairment.from_table({}, "c.json").to_rig.is_identity
    with pytest.raises(ValueError, match="loss"):
        ImpairmentSpec(loss=-0.1)


# --- in-emulator wrapper --------------------------------------------------------------------


class RecordingTx:
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.sent: list[tuple[int, list[bytes]]] = []
        self.closed = False

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        self.sent.append((self.clock.now, list(messages)))

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        self.send(stamp_messages(messages, stamp_offset, stamp()))

    def counters(self) -> dict[str, int]:
        return {"sends": len(self.sent)}

    def close(self) -> None:
        self.closed = True


def test_impaired_transmitter_releases_on_poll_and_flush() -> None:
    clock = StepClock()
    inner = RecordingTx(clock)
    tx = ImpairedTransmitter(inner, ImpairmentSpec(delay_us=100, loss=0.5, seed=4), clock)
    for k in range(20):
        clock.now = k * 10 * US
        tx.send([bytes([k]), b"x"])
    assert tx.next_release_ns() is not None
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += round(seconds * 1e9)

    sleep_and_poll = tx.wrap_sleep(sleep)
    sleep_and_poll(1.0)  # cut short to the next release, which goes out
    assert slept[0] < 1e-4 and inner.sent and inner.sent[-1][0] == clock.now

    def wait_until(t: int) -> bool:
        clock.now = max(clock.now, t)
        return True

    tx.flush(wait_until)
    sent = [m[0][0] for _, m in inner.sent]
    kept = [k for k in range(20) if not ImpairmentPlan(tx.impairer.plan.spec).action(k).dropped]
    assert sent == kept and all(m[1] == b"x" for _, m in inner.sent)
    assert [t for t, _ in inner.sent] == [k * 10 * US + 100 * US for k in sent]  # on time
    c = tx.counters()
    assert c["sends"] == len(kept) and c["impair_dropped"] == 20 - len(kept)
    assert c["impair_released"] == len(kept) and c["impair_pending"] == 0
    tx.close()
    assert inner.closed and tx.counters()["impair_discarded"] == 0

    inner = RecordingTx(clock)
    tx = ImpairedTransmitter(inner, ImpairmentSpec(delay_us=100), clock)
    tx.send([b"now"])
    tx.flush()  # without a wait: at once
    assert inner.sent == [(clock.now, [b"now"])]
    tx.send([b"late"])
    tx.close()
    assert inner.closed and tx.counters()["impair_discarded"] == 1


def test_impaired_transmitter_holds_from_the_devices_transmit_time() -> None:
    clock = StepClock()
    inner = RecordingTx(clock)
    tx = ImpairedTransmitter(inner, ImpairmentSpec(delay_us=100), clock)
    clock.now = 9 * US
    tx.send([b"a"], at_ns=2 * US)  # stamped at 2 µs, handed over at 9 µs
    tx.send([b"b"])  # no stamp: held from now
    assert tx.impairer.next_release_ns() == 102 * US
    clock.now = 200 * US
    tx.poll()
    assert [m for _, m in inner.sent] == [[b"a"], [b"b"]]
    assert tx.counters()["impair_max_late_ns"] == 200 * US - 102 * US


def test_impaired_transmitter_learns_its_handover_cost_so_the_wire_delay_is_the_injected_one() -> (
    None
):
    clock = StepClock(0, 12 * US)
    inner = RecordingTx(clock)
    tx = ImpairedTransmitter(inner, ImpairmentSpec(delay_us=500), clock)
    period = 1_000 * US
    lates = []
    for k in range(200):
        clock.now = k * period
        tx.send([bytes([k])], k * period)
        due = tx.next_release_ns()
        assert due is not None
        clock.now = due  # a sleeper asked for `due` (it spins there) and polls
        assert tx.poll() == 1
        lates.append(tx.late_sum_ns)
    per_packet = [b - a for a, b in zip([0, *lates], lates, strict=False)]
    assert per_packet[0] == 12 * US  # before it learned: injected + handover
    assert all(abs(x) <= LEAD_STEP_NS for x in per_packet[-40:])
    assert abs(tx.lead_ns - 12 * US) <= LEAD_STEP_NS
    c = tx.counters()
    assert c["impair_max_late_ns"] == 12 * US and abs(c["impair_median_late_ns"]) <= 1_000
    assert c["impair_stalls"] == 0
    # a stall (the poll began far past the release) is late, counted, and leaves the lead be
    lead = tx.lead_ns
    clock.now = 200 * period
    tx.send([b"stalled"], 200 * period)
    clock.now += 500 * US + 5 * MAX_LEAD_NS
    tx.poll()
    assert tx.lead_ns == lead and tx.stalls == 1
    assert tx.counters()["impair_max_late_ns"] > MAX_LEAD_NS


def test_stalls_do_not_make_the_on_time_releases_early() -> None:
    """On a busy host most releases may be met late (the loop busy, a wake-up late). Those must
    not teach the stage to hand the on-time ones over early: a min-RTT filter and a low
    feed_wire percentile pick exactly those, and an early tail biases offset and delay."""
    clock = StepClock(0, 1 * US)
    inner = RecordingTx(clock)
    tx = ImpairedTransmitter(inner, ImpairmentSpec(delay_us=500), clock)
    period = 1_000 * US
    on_time: list[int] = []
    for k in range(600):
        clock.now = k * period
        tx.send([bytes([k % 256])], k * period)
        due = tx.next_release_ns()
        assert due is not None
        stalled = k % 5 < 3  # 60 % of the releases met 30 us late
        clock.now = due + (30 * US if stalled else 0)
        before = tx.late_sum_ns
        assert tx.poll() == 1
        if not stalled:
            on_time.append(tx.late_sum_ns - before)
    assert tx.stalls == 360
    assert tx.lead_ns <= 2 * US  # the handover cost (1 us), not the stalls
    assert all(late >= -2 * US for late in on_time[-50:])  # never handed over early
    c = tx.counters()
    assert abs(c["impair_p5_late_ns"]) <= 2_000  # the on-time releases: the low tail
    assert c["impair_median_late_ns"] >= 25_000  # the stalls dominate the median


def test_lateness_histogram_percentiles() -> None:
    h = LatenessHistogram()
    for v in [1_000] * 50 + [2_000] * 49 + [50_000_000]:  # reported: the bucket's upper edge
        h.record(v)
    s = h.summary()
    assert (s["count"], s["p50_us"], s["p99_us"], s["max_us"]) == (100, 1.1, 2.1, 50_000.0)
    h.record(-5)
    assert h.early == 1


def test_relay_direction_replies_to_latest_source_when_no_destination_given() -> None:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    dev_side, rig_side, device, rig = socks
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        dev_side.setblocking(False)
        rig_side.setblocking(False)
        clock = RealtimeClock()
        to_rig = Direction("to_rig", dev_side, rig_side, None, ImpairmentSpec(), 100)
        to_dev = Direction("to_device", rig_side, dev_side, None, ImpairmentSpec(), 100)
        to_rig.reverse, to_dev.reverse = to_dev, to_rig
        buf = bytearray(65536)

        def hop(d: Direction, sender: socket.socket, data: bytes) -> None:
            sender.sendto(data, d.rx.getsockname())
            assert select.select([d.rx], [], [], 2.0)[0], "datagram did not arrive"
            d.receive(buf, clock)
            d.release_due(clock)

        hop(to_rig, device, b"tick")  # the rig has not spoken yet: nowhere to send
        assert to_rig.counts["no_destination"] == 1 and to_rig.counts["forwarded"] == 0
        hop(to_dev, rig, b"order")  # the device spoke before: it gets the order
        assert device.recv(100) == b"order"
        hop(to_rig, device, b"ack")  # and the rig, having spoken, gets the answer, as is
        assert rig.recv(100) == b"ack"
        assert to_rig.counts["forwarded"] == to_dev.counts["forwarded"] == 1
        assert to_rig.stats()["destination"] == list(rig.getsockname())
    finally:
        for s in socks:
            s.close()


# --- the relay process ----------------------------------------------------------------------

RELAY = "arbsphere.firmware_interfaces.emulators.impair_relay"
HEAD = struct.Struct("<cIq")  # path tag, sequence, sender's CLOCK_REALTIME send stamp
N_PROC = 300


def _payload(tag: bytes, seq: int, send_ns: int) -> bytes:
    body = bytes((seq * 7 + i) & 0xFF for i in range(seq % 50))
    return HEAD.pack(tag, seq, send_ns) + body


def spawn(cfg: dict[str, Any], path: Path) -> subprocess.Popen[bytes]:
    path.write_text(json.dumps(cfg))
    return subprocess.Popen([sys.executable, "-m", RELAY, str(path)], stderr=subprocess.PIPE)


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> Any:
    end = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.01)
    return json.loads(path.read_text())


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    assert enable_rx_software_timestamps(s)
    s.setblocking(False)
    return s


def _drain(s: socket.socket, got: dict[bytes, dict[int, tuple[int, bytes]]]) -> None:
    while True:
        try:
            data, anc, _, _ = s.recvmsg(65536, ANCBUFSIZE)
        except BlockingIOError:
            return
        rx = kernel_rx_stamp(anc)
        assert rx is not None
        tag, seq, send_ns = HEAD.unpack_from(data)
        got.setdefault(tag, {})
        assert seq not in got[tag], f"{tag!r} {seq} twice"
        got[tag][seq] = (rx - send_ns, data)


def _median(values: list[int]) -> float:
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def test_relay_process_delay_loss_content_and_sigterm(tmp_path: Path) -> None:
    rig, dev = _udp(), _udp()
    proc = spawn({
        "rig_host": "127.0.0.1", "rig_port": rig.getsockname()[1],
        "device_host": "127.0.0.1", "device_port": dev.getsockname()[1],
        "to_rig": {"delay_us": 500}, "to_device": {"loss": 0.2, "seed": 9},
        "ready_path": str(tmp_path / "relay.ready.json"),
        "stats_path": str(tmp_path / "relay.stats.json"),
    }, tmp_path / "relay.json")  # fmt: skip
    got: dict[bytes, dict[int, tuple[int, bytes]]] = {}
    sent: dict[bytes, dict[int, bytes]] = {b"R": {}, b"D": {}, b"X": {}}
    try:
        ready = wait_file(tmp_path / "relay.ready.json", proc)
        to_relay_dev = ("127.0.0.1", ready["device_side_port"])
        to_relay_rig = ("127.0.0.1", ready["rig_side_port"])
        plan = [  # (offset in the 1 ms period, path tag, sender, destination)
            (0, b"R", dev, to_relay_dev),  # device -> relay -> rig, 500 µs
            (250 * US, b"D", rig, to_relay_rig),  # rig -> relay -> device, loss 0.2
            (750 * US, b"X", dev, rig.getsockname()),  # device -> rig directly: the baseline
        ]
        t0 = time.clock_gettime_ns(time.CLOCK_REALTIME) + 5_000 * US
        for seq in range(-20, N_PROC):  # 20 warm-up periods, not measured
            for offset, tag, sock, dest in plan:
                due = t0 + (seq + 20) * 1_000 * US + offset
                while (left := due - time.clock_gettime_ns(time.CLOCK_REALTIME)) > 0:
                    select.select([rig, dev], [], [], left * 1e-9)
                    _drain(rig, got)
                    _drain(dev, got)
                now = time.clock_gettime_ns(time.CLOCK_REALTIME)
                data = _payload(tag, seq & 0xFFFFFFFF, now)
                sock.sendto(data, dest)
                sent[tag][seq & 0xFFFFFFFF] = data
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            select.select([rig, dev], [], [], 0.01)
            _drain(rig, got)
            _drain(dev, got)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rig.close()
        dev.close()
    stats = json.loads((tmp_path / "relay.stats.json").read_text())
    assert stats["exit_code"] == 0 and stats["stop_signal"] == signal.SIGTERM
    warm = set(range(2**32 - 20, 2**32))
    for tag in (b"R", b"D", b"X"):
        for seq, (_, data) in got.get(tag, {}).items():
            assert data == sent[tag][seq]  # forwarded byte for byte
    measured = {t: [d for s, (d, _) in got[t].items() if s not in warm] for t in (b"R", b"X")}
    assert len(got[b"R"]) == N_PROC + 20 == stats["to_rig"]["forwarded"]
    assert len(got[b"X"]) == N_PROC + 20
    base, delayed = _median(measured[b"X"]), _median(measured[b"R"])
    relay0 = _median([d for s, (d, _) in got[b"D"].items() if s not in warm])
    print(f"one-way medians: direct {base / US:.1f} µs, relay 0 µs {relay0 / US:.1f} µs, "
          f"relay 500 µs {delayed / US:.1f} µs; lateness to_rig "
          f"{stats['to_rig']['lateness']}, to_device {stats['to_device']['lateness']}, "
          f"slack {stats['timer_slack_ns']} {stats['timer_slack_error']}")  # fmt: skip
    assert abs(delayed - base - 500 * US) <= 30 * US
    assert min(measured[b"R"]) >= 500 * US  # never released early
    # loss: the relay's count of drops is exactly the set of missing datagrams
    td = stats["to_device"]
    missing = set(sent[b"D"]) - set(got[b"D"])
    assert td["received"] == N_PROC + 20 and td["dropped"] == len(missing)
    assert _within_binomial(len(missing), N_PROC + 20, 0.2)
    assert td["forwarded"] == len(got[b"D"]) == N_PROC + 20 - len(missing)
    plan_d = ImpairmentPlan(ImpairmentSpec(loss=0.2, seed=9))
    order = sorted(sent[b"D"], key=lambda s: (s + 20) % 2**32)  # send order
    assert missing == {s for i, s in enumerate(order) if plan_d.action(i).dropped}
    assert stats["to_rig"]["pending"] == stats["to_device"]["pending"] == 0
    assert stats["to_rig"]["lateness"]["early"] == 0


def test_relay_bad_config_exits_2_naming_file_key_value(tmp_path: Path) -> None:
    proc = spawn({"to_rig": {"loss": 1.5}, "ready_path": str(tmp_path / "r.json"),
                   "stats_path": str(tmp_path / "s.json")}, tmp_path / "relay.json")  # fmt: skip
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert b"relay.json" in err and b"to_rig.loss" in err and b"1.5" in err
    assert not (tmp_path / "r.json").exists()
