"""Rig side of the start handshake: a venue adapter arms its feed device with the run's schedule
and starts it (the protocol: ``firmware_interfaces/device_messages.toml``, above ARM).

How the schedule reaches a running adapter: the orchestrator fixes it once every role is up
and writes it atomically (write, then rename) to the adapter's schedule file,
``<proc>/<name>.arm.json`` — ``{arm_seq, start_ns, tick_interval_ns, n_ticks, venue_id,
n_assets}``, ``start_ns`` on the rig timebase. The adapter's loop calls :meth:`FeedArming.poll`
with the time it already read; until the file exists that looks for it every
:data:`SCHEDULE_CHECK_NS` (one ``stat``), then sends ARM every :data:`ARM_REPEAT_NS` until the
ARMED of that ``arm_seq`` arrives (a UDP link sends nothing before the device's first datagram
told it where the device is: counted ``arms_unsent``), writes that answer to
``<proc>/<name>.armed.json`` — ``{status: "ok" | "refused", arm_seq, start_device_ns,
device_time_ns, rx_ns, arms_sent}``, what the orchestrator waits for — and, armed OK, sends START
at ``start_ns``. After START (or a refusal) :meth:`poll` says it is done and the loop stops
calling it: until then the loop pays two short calls per wake-up (its timeout and the poll,
each a comparison unless something is due), nothing after.

Counted: ``arms_sent``, ``arms_unsent``, ``armed_ok``, ``armed_refused``, ``armed_repeated``
(the ARMED of the accepted ``arm_seq`` again: the device answered a repeated ARM),
``unexpected_armed`` (another ``arm_seq`` or device, or none asked for), ``starts_sent``,
``starts_unsent``, ``send_errors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbsphere.adapters.links import FeedLink
from arbsphere.errors import ConfigError, LinkError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.runtime import write_json_atomic

#: ARM is repeated this often until its ARMED arrives
ARM_REPEAT_NS = 100_000_000
#: the schedule file is looked for this often until it exists
SCHEDULE_CHECK_NS = 20_000_000
#: the schedule file's keys, in ARM's field order
SCHEDULE_KEYS = ("arm_seq", "start_ns", "tick_interval_ns", "n_ticks", "venue_id", "n_assets")
#: ARMED positions in its ``messages.decode_values`` tuple
_DEVICE, _SEQ, _STATUS, _START_DEV, _DEV_TIME = (
    dm.value_fields(dm.MSG_ARMED).index(f)
    for f in ("device_id", "arm_seq", "status", "start_device_ns", "device_time_ns")
)
_ARM = dm.packer(dm.MSG_ARM)
_START = dm.packer(dm.MSG_START)


@dataclass(frozen=True)
class ArmingSettings:
    """A venue adapter's start handshake in its role config: arm device ``device_id`` with
    the schedule the orchestrator writes to ``schedule_path``; the answer goes to
    ``answer_path``."""

    device_id: int
    schedule_path: str
    answer_path: str

    def __post_init__(self) -> None:
        if not 0 <= self.device_id < 2**32:
            raise ConfigError(f"must be a device id (0 .. 2^32-1), got {self.device_id}",
                              key="device_id")  # fmt: skip


def schedule_record(
    arm_seq: int, start_ns: int, tick_interval_ns: int, n_ticks: int, venue_id: int, n_assets: int
) -> dict[str, int]:
    """The schedule file's content (what the orchestrator writes)."""
    values = (arm_seq, start_ns, tick_interval_ns, n_ticks, venue_id, n_assets)
    return dict(zip(SCHEDULE_KEYS, values, strict=True))


def read_schedule(path: Path) -> tuple[int, ...]:
    """A schedule file's values in :data:`SCHEDULE_KEYS` order; ConfigError naming the file
    and the key at fault."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the arm schedule: {exc}", file=str(path)) from exc
    if not isinstance(data, dict) or set(data) != set(SCHEDULE_KEYS):
        raise ConfigError(f"must be an object with keys {', '.join(SCHEDULE_KEYS)}",
                          file=str(path))  # fmt: skip
    for key in SCHEDULE_KEYS:
        value = data[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"must be an integer, got {value!r}", file=str(path), key=key)
    return tuple(int(data[k]) for k in SCHEDULE_KEYS)


class FeedArming:
    """One adapter's start handshake with its feed device (see the module docstring)."""

    def __init__(self, settings: ArmingSettings, link: FeedLink) -> None:
        self.settings = settings
        self.link = link
        self.schedule_path = Path(settings.schedule_path)
        self.answer_path = Path(settings.answer_path)
        #: "waiting" (no schedule yet), "arming", "armed" (OK, START due), "started", "refused"
        self.state = "waiting"
        self.schedule: tuple[int, ...] | None = None
        self.next_ns = 0  # next schedule check, ARM repeat, or START
        self.answer: dict[str, Any] | None = None
        self.counts = dict.fromkeys(
            ("arms_sent", "arms_unsent", "armed_ok", "armed_refused", "armed_repeated",
             "unexpected_armed", "starts_sent", "starts_unsent", "send_errors"), 0,
        )  # fmt: skip
        self.last_error = ""

    def timeout_ms(self, now_ns: int, cap_ms: int) -> int:
        """How long the loop may block before :meth:`poll` has something to do."""
        if self.state not in ("waiting", "arming", "armed"):
            return cap_ms
        left = self.next_ns - now_ns
        return 0 if left <= 0 else min(cap_ms, -(-left // 1_000_000))

    def poll(self, now_ns: int) -> bool:
        """Do what is due at ``now_ns``; True once there is nothing left to do (started or
        refused), so the caller stops calling."""
        if now_ns < self.next_ns:
            return False
        state = self.state
        if state == "waiting":
            self.next_ns = now_ns + SCHEDULE_CHECK_NS
            if self.schedule_path.exists():
                self.schedule = read_schedule(self.schedule_path)
                self.state = "arming"
                self.next_ns = now_ns  # ARM at once
        elif state == "arming":
            self.next_ns = now_ns + ARM_REPEAT_NS
            self._send_arm()
        elif state == "armed":
            self._send_start()
            self.state = "started"
        return self.state in ("started", "refused")

    def _send_arm(self) -> None:
        assert self.schedule is not None
        raw = _ARM.pack(dm.MSG_ARM, dm.DEVICE_MESSAGE_VERSION, _ARM.size,
                        self.settings.device_id, *self.schedule)  # fmt: skip
        self.counts["arms_sent" if self._send(raw) else "arms_unsent"] += 1

    def _send_start(self) -> None:
        assert self.schedule is not None
        raw = _START.pack(dm.MSG_START, dm.DEVICE_MESSAGE_VERSION, _START.size,
                          self.settings.device_id, self.schedule[0], self.schedule[1])  # fmt: skip
        self.counts["starts_sent" if self._send(raw) else "starts_unsent"] += 1

    def _send(self, raw: bytes) -> bool:
        """Send one message; False (counted by the caller) when the link cannot reach the
        device yet or the send failed (counted ``send_errors`` too: never fatal here)."""
        try:
            return self.link.send_many((raw,)) is not None
        except LinkError as exc:
            self.counts["send_errors"] += 1
            self.last_error = str(exc)
            return False

    def on_armed(self, values: tuple[Any, ...], rx_ns: int) -> None:
        """An ARMED (``messages.decode_values`` values) received at ``rx_ns``."""
        s = self.schedule
        seq = int(values[_SEQ])
        mine = s is not None and seq == s[0] and values[_DEVICE] == self.settings.device_id
        if not mine:
            self.counts["unexpected_armed"] += 1
            self.last_error = f"ARMED arm_seq {seq} from device {values[_DEVICE]} not asked for"
            return
        if self.state != "arming":
            self.counts["armed_repeated"] += 1
            return
        ok = int(values[_STATUS]) == dm.ARM_STATUS_OK
        self.counts["armed_ok" if ok else "armed_refused"] += 1
        self.answer = {
            "status": "ok" if ok else "refused", "arm_seq": seq,
            "start_device_ns": int(values[_START_DEV]), "device_time_ns": int(values[_DEV_TIME]),
            "rx_ns": rx_ns, "arms_sent": self.counts["arms_sent"],
        }  # fmt: skip
        write_json_atomic(self.answer_path, self.answer)
        assert s is not None
        self.state = "armed" if ok else "refused"
        self.next_ns = s[1]  # START at start_ns (at once if that passed)

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "state": self.state, "answer": self.answer,
                "last_error": self.last_error}  # fmt: skip
