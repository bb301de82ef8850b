"""Misbehaving-device switches: an emulator made to break the device protocol on purpose, so
the conformance suites can be shown to catch each fault (``tests/test_conformance_misbehave.py``).

An emulator's config may carry ``misbehave: {<switch>: value, ...}`` (absent or empty: a
well-behaved device). The switches, and the check each must make fail:

=====================  ==============================================  ========================
switch                 what the device does                            caught by
=====================  ==============================================  ========================
``bad_crc: N``         damages every N-th transport unit it sends      ``framing``
                       (serial: a flipped byte in the frame's CRC;
                       UDP has no CRC: the datagram cut 3 bytes short)
``sequence_jumps: N``  every N-th TICK skips a ``device_seq``           ``tick_sequence``
``no_sync_answers``    never answers a SYNC                             ``sync_answers``
``answers_any_device`` answers a SYNC addressed to another device      ``malformed_no_answer``
``crash_on_malformed`` exits (code 3) on the first malformed input     ``malformed_survives``
``duplicate_acks: N``  sends every N-th ACK twice (broker)             ``answered_once``
``overfill: N``        every N-th FILL reports one lot more than the   ``fill_size``
                       order's size (broker)
=====================  ==============================================  ========================

The hooks are wrappers applied where an emulator builds its parts (transmitter, sync
responder, broker logic); a device without a ``misbehave`` table is unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from arbsphere.errors import DeviceError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import ConfigReader
from arbsphere.firmware_interfaces.sync_responder import PendingDelayReq, SyncResponder

#: the switches a feed device takes, and those a broker device takes
FEED_SWITCHES = ("bad_crc", "sequence_jumps", "no_sync_answers", "answers_any_device",
                 "crash_on_malformed")  # fmt: skip
BROKER_SWITCHES = ("bad_crc", "no_sync_answers", "answers_any_device", "crash_on_malformed",
                   "duplicate_acks", "overfill")  # fmt: skip
_FLAGS = ("no_sync_answers", "answers_any_device", "crash_on_malformed")


@dataclass(frozen=True)
class Misbehave:
    """The switches of one device (0 / False: off)."""

    bad_crc: int = 0
    sequence_jumps: int = 0
    no_sync_answers: bool = False
    answers_any_device: bool = False
    crash_on_malformed: bool = False
    duplicate_acks: int = 0
    overfill: int = 0

    def on(self) -> dict[str, Any]:
        """The switches that are on (the device's stats report them)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def ticks(self, tx: Any) -> None:
        """Every ``sequence_jumps``-th TICK ``tx.send_stamped`` sends skips a ``device_seq``
        (the ones after it keep the skip: one gap each time)."""
        if self.sequence_jumps:
            tx.send_stamped = _jumping_ticks(tx.send_stamped, self.sequence_jumps)

    def responder(self, responder: SyncResponder) -> SyncResponder:
        if not (self.no_sync_answers or self.answers_any_device or self.crash_on_malformed):
            return responder
        return _MisbehavingResponder(responder, self)

    def transmitter(self, tx: Any, backend: str) -> None:
        """Damage every N-th unit ``tx.send_raw`` puts on the wire (``bad_crc``)."""
        if self.bad_crc:
            tx.send_raw = _every_nth(tx.send_raw, self.bad_crc, _damage(backend))

    def broker(self, broker: Any, backend: str) -> None:
        """The broker logic's ACKs duplicated / overfilled, its malformed input fatal, its UDP
        reply datagrams damaged (``bad_crc``; a serial broker's damage is on its wire)."""
        if self.duplicate_acks or self.overfill:
            broker.ack_messages = _bad_acks(broker.ack_messages, self)
        if self.crash_on_malformed:
            broker._bad = _crash(broker._bad)
        if self.bad_crc and backend == "udp":
            broker.reply = _every_nth(broker.reply, self.bad_crc, _damage("udp"), result=True)


def read_misbehave(cfg: ConfigReader, allowed: Sequence[str]) -> Misbehave:
    """The ``misbehave`` table of an emulator's config (errors name the file and the key)."""
    table = cfg.get_table("misbehave")
    table.only(allowed)
    values: dict[str, Any] = {}
    for name in allowed:
        if not table.has(name):
            continue
        if name in _FLAGS:
            value = table.data[name]
            if not isinstance(value, bool):
                raise table.error(name, f"must be true or false, got {value!r}")
            values[name] = value
        else:
            values[name] = table.get_int(name, min_value=1)
    return Misbehave(**values)


_TICK_SEQ = dm.LAYOUTS[dm.MSG_TICK].field("device_seq").offset
_U64 = struct.Struct("<Q")


def _jumping_ticks(send_stamped: Callable[..., Any], every: int) -> Callable[..., Any]:
    """``send_stamped`` with the TICKs' ``device_seq`` raised by one more every ``every``
    ticks (other messages, e.g. a DELAY_REQ, pass unchanged)."""
    ticks = [0]

    def wrapped(messages: Sequence[bytes | bytearray], *args: Any, **kw: Any) -> Any:
        out = []
        for m in messages:
            if m[0] == dm.MSG_TICK:
                ticks[0] += 1
                b = bytearray(m)
                seq = _U64.unpack_from(b, _TICK_SEQ)[0]
                _U64.pack_into(b, _TICK_SEQ, seq + ticks[0] // every)
                m = b
            out.append(m)
        return send_stamped(out, *args, **kw)

    return wrapped


class _MisbehavingResponder(SyncResponder):
    """A sync responder that drops SYNCs, answers them whatever their addressee, or crashes
    on malformed input (all else as the wrapped one: it shares its state)."""

    def __init__(self, inner: SyncResponder, mb: Misbehave) -> None:
        self.__dict__.update(inner.__dict__)
        self.mb = mb

    def reject(self, reason: str, detail: str, n: int = 1) -> None:
        super().reject(reason, detail, n)
        if self.mb.crash_on_malformed and reason != "wrong_device":
            raise DeviceError(f"misbehave crash_on_malformed: {reason}: {detail}")

    def on_message(
        self, msg: bytes | bytearray | memoryview, rx_rig_ns: int, *, user_stamp: bool = False
    ) -> PendingDelayReq | None:
        raw = bytes(msg)
        if self.mb.answers_any_device and len(raw) >= 8 and raw[0] == dm.MSG_SYNC:
            raw = raw[:4] + self.device_id.to_bytes(4, "little") + raw[8:]
        req = super().on_message(raw, rx_rig_ns, user_stamp=user_stamp)
        return None if self.mb.no_sync_answers else req


def _every_nth(
    send: Callable[..., Any], n: int, damage: Callable[[bytes], bytes], *, result: bool = False
) -> Callable[..., Any]:
    """``send`` with its first argument (or, ``result``: its return value) damaged every
    ``n``-th call."""
    calls = [0]

    def wrapped(data: Any, *args: Any, **kw: Any) -> Any:
        calls[0] += 1
        hit = calls[0] % n == 0
        if result:
            out = send(data, *args, **kw)
            return damage(out) if hit else out
        return send(damage(bytes(data)) if hit else data, *args, **kw)

    return wrapped


def _damage(backend: str) -> Callable[[bytes], bytes]:
    def serial(data: bytes) -> bytes:
        b = bytearray(data)
        end = b.index(0)  # the first frame's delimiter; its CRC is encoded just before
        at = max(0, end - 2)
        b[at] = b[at] ^ 0x5A if b[at] ^ 0x5A else b[at] ^ 0x5B
        return bytes(b)

    def udp(data: bytes) -> bytes:
        return data[:-3]

    return serial if backend == "serial" else udp


def _bad_acks(
    ack_messages: Callable[[np.ndarray], list[bytes]], mb: Misbehave
) -> Callable[[np.ndarray], list[bytes]]:
    seen = [0, 0]  # ACKs so far, FILLs so far

    def wrapped(acks: np.ndarray) -> list[bytes]:
        if mb.overfill:
            for i in range(len(acks)):
                if int(acks["status"][i]) == dm.ACK_STATUS_FILL:
                    seen[1] += 1
                    if seen[1] % mb.overfill == 0:
                        acks["filled_lots"][i] += 1
        out = ack_messages(acks)
        if not mb.duplicate_acks:
            return out
        doubled = []
        for m in out:
            seen[0] += 1
            doubled += [m, m] if seen[0] % mb.duplicate_acks == 0 else [m]
        return doubled

    return wrapped


def _crash(bad: Callable[[str, str], None]) -> Callable[[str, str], None]:
    def wrapped(key: str, detail: str) -> None:
        bad(key, detail)
        raise DeviceError(f"misbehave crash_on_malformed: {key}: {detail}")

    return wrapped
