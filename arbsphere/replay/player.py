"""The journal player role: a recorded run's venue inputs, re-sent to a live coordinator.

``python -m arbsphere.replay.player CONFIG.json`` (a :class:`PlayerRoleConfig`). It reads the
journal (verified as it is read), keeps the INPUT records that carry a LocalArbProblem (the
venue adapters' messages; ExecutionReports come from the live broker instead), and PUSHes
each, frames as recorded, to the coordinator at
``start_at_ns + (recorded rx − first rx) / speed`` on the rig clock (``max``: back to back). The
recorded nonces are kept, so the coordinator's per-sender ordering checks still hold.

Its trace stands in for the venue adapters' (``<venue>.trace.npy``, same dtype): the scheduled
send time is the tick's intended time and every rig-side stamp is the actual send time, so the
analysis measures from the replayed schedule with no coordinated omission. Stats:
``<name>.stats.json`` with what was sent and how late.
"""

from __future__ import annotations

import select
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from arbsphere.adapters.venue_adapter import TICK_TRACE_DTYPE
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.journal_records import REC_INPUT, decode_frames
from arbsphere.errors import ConfigError, DecodeError, PipelineError
from arbsphere.journal import JournalHead
from arbsphere.replay.engine import journal_records
from arbsphere.runtime import RoleProcess, StopFlag, cpu_usage, run_role
from arbsphere.tracebuf import TraceBuffer

# LocalArbProblem positions in its decode_values tuple (the first item: a tick's asset)
_PROBLEM = default_registry().fields("LocalArbProblem", 1)
_PROBLEM_ASSET = _PROBLEM.items + _PROBLEM.item.asset_id
_PROBLEM_QUOTE = slice(*_PROBLEM.item_span("bid_px", "ask_px"))
_REG = default_registry()
_PROBLEM_ID = _REG.schema("LocalArbProblem").id


def parse_speed(text: str) -> float | None:
    """``"max"`` -> None (no pacing); a number > 0 -> that factor."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"must be a number > 0 or 'max', got {text!r}", key="speed") from None
    if not value > 0:
        raise ConfigError(f"must be a number > 0 or 'max', got {text!r}", key="speed")
    return value


def load_inputs(directory: Path, head: JournalHead | None) -> list[tuple[int, list[bytes]]]:
    """(recorded rx_ns, frames) of every recorded LocalArbProblem input, in journal order."""
    reg = default_registry()
    problem_id = reg.schema("LocalArbProblem").id
    out = []
    for rec in journal_records(directory, head):
        if rec.type != REC_INPUT:
            continue
        frames = decode_frames(rec.payload)
        try:
            schema, _ = reg.decode_values(reg.messages_of(frames)[0])
        except DecodeError:
            continue  # recorded as received; the coordinator counted it then
        if schema.id == problem_id:
            out.append((rec.ts_ns, frames))
    return out


@dataclass(frozen=True)
class PlayerRoleConfig:
    """Everything the journal player is told by the replay's orchestrator."""

    name: str
    out_dir: str
    journal_dir: str
    #: "1" (as recorded), "N" (N times faster) or "max" (back to back)
    speed: str
    #: rig time of the first input's send
    start_at_ns: int
    coordinator_endpoint: str
    #: venue id -> venue name (whose trace the player writes)
    venues: dict[int, str]
    #: the journal's head as its result set recorded it (None: read to the end)
    journal_head: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        parse_speed(self.speed)

    @property
    def pace(self) -> float | None:
        """The speed factor (None: no pacing)."""
        return parse_speed(self.speed)


class JournalPlayer(RoleProcess):
    """The recorded inputs, the PUSH to the coordinator and one trace per venue; :meth:`serve`
    sends the inputs on their schedule."""

    def __init__(self, cfg: PlayerRoleConfig, clock: Clock) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.out_dir = Path(cfg.out_dir)
        self.clock = clock
        head = JournalHead.from_dict(cfg.journal_head) if cfg.journal_head is not None else None
        self.inputs = load_inputs(Path(cfg.journal_dir), head)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 1_000_000)
        self.push.setsockopt(zmq.LINGER, 2000)
        try:
            self.push.connect(cfg.coordinator_endpoint)
        except zmq.ZMQError as exc:
            raise PipelineError(f"{cfg.name}: cannot connect to the coordinator: {exc}") from exc
        self.traces = {v: TraceBuffer(TICK_TRACE_DTYPE) for v in cfg.venues}
        self.sent = 0
        self.max_late = 0
        self.unknown_venue = 0

    def ready_info(self) -> dict[str, Any]:
        return {"inputs": len(self.inputs)}

    def serve(self, stop: StopFlag) -> None:
        """Each input at its due time (``start_at_ns`` + its recorded offset / speed)."""
        speed, start_at, clock = self.cfg.pace, self.cfg.start_at_ns, self.clock
        first_rx = self.inputs[0][0] if self.inputs else 0
        for rx, frames in self.inputs:
            due = start_at if speed is None else start_at + round((rx - first_rx) / speed)
            while not stop.is_set:
                left = due - clock.now_ns()
                if left <= 0:
                    break
                select.select([], [], [], min(left * 1e-9, 0.05))
            if stop.is_set:
                break
            now = clock.now_ns()
            self.push.send_multipart(frames, copy=True)
            self._trace(frames, due if speed is not None else now, now)
            self.sent += 1
            self.max_late = max(self.max_late, now - due)

    def _trace(self, frames: list[bytes], intended: int, now: int) -> None:
        """A trace row for every tick of the frame (an adapter that fell behind sent several
        in one)."""
        reg = _REG
        for msg in reg.messages_of(frames):
            schema, values = reg.decode_values(msg)
            if schema.id != _PROBLEM_ID:
                continue  # the tick's signals
            venue, seq = values[_PROBLEM.venue_id], values[_PROBLEM.tick_seq]
            trace = self.traces.get(venue)
            if trace is None:
                self.unknown_venue += 1
                continue
            bid, ask = values[_PROBLEM_QUOTE]
            trace.append((venue, values[_PROBLEM_ASSET], seq, intended, now, now, now, bid, ask, 0))

    def save(self) -> None:
        for venue, trace in self.traces.items():
            trace.save(self.out_dir / f"{self.cfg.venues[venue]}.trace.npy")

    def stats(self) -> dict[str, Any]:
        return {
            "role": "journal_player", "inputs": len(self.inputs), "sent": self.sent,
            "unknown_venue": self.unknown_venue, "max_late_us": round(self.max_late / 1e3, 3),
            "speed": self.cfg.speed, "stopped_early": self.sent < len(self.inputs),
            "cpu": cpu_usage(),
        }  # fmt: skip

    def close(self) -> None:
        self.push.close()


def start(cfg: PlayerRoleConfig, source: str) -> JournalPlayer:
    return JournalPlayer(cfg, RealtimeClock())


def main() -> None:
    run_role(PlayerRoleConfig, start)


if __name__ == "__main__":
    main()
