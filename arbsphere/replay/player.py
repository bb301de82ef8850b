"""The journal player role: a recorded run's venue inputs, re-sent to a live coordinator.

``python -m arbsphere.replay.player CONFIG.json`` with ``{journal_dir, journal_head
(optional), speed ("1", "N" or "max"), start_at_ns, coordinator_endpoint, out_dir,
venues: {venue_id: name}, name}``. It reads the journal (verified as it is read), keeps the
INPUT records that carry a LocalArbProblem (the venue adapters' messages; ExecutionReports come
from the live broker instead), and PUSHes each, frames as recorded, to the coordinator at
``start_at_ns + (recorded rx − first rx) / speed`` on the rig clock (``max``: back to back). The
recorded nonces are kept, so the coordinator's per-sender ordering checks still hold.

Its trace stands in for the venue adapters' (``<venue>.trace.npy``, same dtype): the scheduled
send time is the tick's intended time and every rig-side stamp is the actual send time, so the
analysis measures from the replayed schedule with no coordinated omission. Stats:
``<name>.stats.json`` with what was sent and how late.
"""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

import zmq

from arbsphere.adapters.venue_adapter import TICK_TRACE_DTYPE
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.journal_records import REC_INPUT, decode_frames
from arbsphere.errors import ConfigError, DecodeError, PipelineError
from arbsphere.journal import JournalHead
from arbsphere.replay.engine import journal_records
from arbsphere.runtime import StopFlag, cpu_usage, require, run_role, write_json_atomic
from arbsphere.tracebuf import TraceBuffer

# LocalArbProblem positions in its decode_values tuple (the first item: a tick's asset)
_PROBLEM = default_registry().fields("LocalArbProblem", 1)
_PROBLEM_ASSET = _PROBLEM.items + _PROBLEM.item.asset_id
_PROBLEM_QUOTE = slice(*_PROBLEM.item_span("bid_px", "ask_px"))


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


def run(cfg: dict[str, Any], path: Path, stop: StopFlag) -> int:
    source = str(path)
    clock = RealtimeClock()
    name = require(cfg, "name", str, source)
    out_dir = Path(require(cfg, "out_dir", str, source))
    speed = parse_speed(require(cfg, "speed", str, source))
    head_data = cfg.get("journal_head")
    head = JournalHead.from_dict(head_data) if isinstance(head_data, dict) else None
    inputs = load_inputs(Path(require(cfg, "journal_dir", str, source)), head)
    venues = {int(k): v for k, v in require(cfg, "venues", dict, source).items()}
    start_at = require(cfg, "start_at_ns", int, source)
    reg = default_registry()
    problem_id = reg.schema("LocalArbProblem").id
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.setsockopt(zmq.LINGER, 2000)
    try:
        push.connect(require(cfg, "coordinator_endpoint", str, source))
    except zmq.ZMQError as exc:
        raise PipelineError(f"{name}: cannot connect to the coordinator: {exc}") from exc
    traces = {v: TraceBuffer(TICK_TRACE_DTYPE) for v in venues}
    write_json_atomic(out_dir / f"{name}.ready.json", {"inputs": len(inputs)})
    first_rx = inputs[0][0] if inputs else 0
    sent = 0
    max_late = 0
    unknown_venue = 0
    try:
        for rx, frames in inputs:
            due = start_at if speed is None else start_at + round((rx - first_rx) / speed)
            while not stop.is_set:
                left = due - clock.now_ns()
                if left <= 0:
                    break
                select.select([], [], [], min(left * 1e-9, 0.05))
            if stop.is_set:
                break
            now = clock.now_ns()
            push.send_multipart(frames, copy=True)
            # every tick of the frame (an adapter that fell behind sent several in one)
            for msg in reg.messages_of(frames):
                schema, values = reg.decode_values(msg)
                if schema.id != problem_id:
                    continue  # the tick's signals
                venue, seq = values[_PROBLEM.venue_id], values[_PROBLEM.tick_seq]
                asset = values[_PROBLEM_ASSET]
                bid, ask = values[_PROBLEM_QUOTE]
                trace = traces.get(venue)
                if trace is None:
                    unknown_venue += 1
                else:
                    intended = due if speed is not None else now
                    trace.append((venue, asset, seq, intended, now, now, now, bid, ask, 0))
            sent += 1
            max_late = max(max_late, now - due)
    finally:
        for venue, trace in traces.items():
            trace.save(out_dir / f"{venues[venue]}.trace.npy")
        write_json_atomic(
            out_dir / f"{name}.stats.json",
            {"role": "journal_player", "inputs": len(inputs), "sent": sent,
             "unknown_venue": unknown_venue, "max_late_us": round(max_late / 1e3, 3),
             "speed": cfg["speed"], "stopped_early": sent < len(inputs), "cpu": cpu_usage()},
        )  # fmt: skip
        push.close()
    return 0


def main() -> None:
    run_role(run)


if __name__ == "__main__":
    main()
