"""One feed device's session, whatever its transport: answer the start handshake, idle until
armed when the config has no schedule, then run the open-loop schedule.

:func:`serve_feed` is what :mod:`.feed_udp` and :mod:`.feed_serial` call once their link is
open. A config with ``start_at_ns`` (the orchestrator's emulators) runs that schedule at once
and answers an ARM of the same schedule OK (:class:`~.start_handshake.StartHandshake` preset).
Without one (an external device, ``arbsphere device ...``) the device idles — a HEARTBEAT every
``heartbeat_interval_ms`` (so a UDP rig learns its address; ``device_seq`` 0, the first tick's),
the clock-sync exchange and ARM/START served while it waits — until the armed schedule is due:
then tick ``k`` is due ``k * tick_interval_ns`` after the start (the market at rate
``1e9 / tick_interval_ns``), ``n_ticks`` of them; then it idles again until the next ARM (a
higher ``arm_seq``: the next campaign run), until it is stopped. The stats hold the latest
schedule's counters and ``start_handshake.schedules_run``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from arbsphere.clock import Clock, DeviceClock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import ConfigReader, DeviceContext
from arbsphere.firmware_interfaces.emulators.schedule import (
    MAX_SLEEP_S,
    FeedPlan,
    OpenLoopSchedule,
    ServicedSleep,
    Transmitter,
    open_quotes,
    run_feed,
)
from arbsphere.firmware_interfaces.emulators.sync_responder import RigInbound
from arbsphere.firmware_interfaces.start_handshake import (
    MAX_INTERVAL_NS,
    MIN_INTERVAL_NS,
    Capabilities,
    Schedule,
    StartHandshake,
    responder_offset,
)

#: the start estimate is frozen this long before it is due (the schedule's own wait takes over,
#: after the armed plan's quote stream is built)
HANDOFF_NS = 50_000_000
#: heartbeat interval of an idle device configured without heartbeats (it must be found)
IDLE_HEARTBEAT_NS = 100_000_000


def feed_handshake(plan: FeedPlan, dev: DeviceClock, inbound: RigInbound) -> StartHandshake:
    """The feed's start handshake, installed on ``inbound`` (ARM / START go there): what the
    device can run follows from its plan (a preset plan: exactly that schedule)."""
    market = plan.market
    n_assets = market.n_assets if plan.asset_order == "round_robin" else 1
    # the market's episodes must stay rarer than each asset's quotes (MarketConfig's rule)
    episodes = market.episode_rate_per_s * n_assets
    longest = MAX_INTERVAL_NS if episodes <= 0 else math.ceil(1e9 / episodes) - 1
    cap = Capabilities(plan.venue_id, n_assets, MIN_INTERVAL_NS, min(MAX_INTERVAL_NS, longest))
    preset = None
    if not plan.await_arm:
        interval = round(1e9 / market.rate_hz)
        cap = dataclasses.replace(cap, min_interval_ns=interval, max_interval_ns=interval,
                                  n_ticks=plan.n_ticks)  # fmt: skip
        preset = Schedule(0, plan.start_at_ns, interval, plan.n_ticks or 0, plan.venue_id,
                          n_assets)  # fmt: skip
    start = StartHandshake(plan.device_id, dev, cap, responder_offset(inbound.responder),
                           preset=preset)  # fmt: skip
    inbound.start = start
    return start


def serve_feed(
    plan: FeedPlan,
    cfg: ConfigReader,
    tx: Transmitter,
    inbound: RigInbound,
    rig: Clock,
    dev: DeviceClock,
    ctx: DeviceContext,
) -> OpenLoopSchedule | None:
    """Run the feed's session (see the module docstring); the schedule it ran, or None when
    stopped before it was armed."""
    start = feed_handshake(plan, dev, inbound)
    sleep = ServicedSleep(ctx.waker, rig, inbound)
    stop = lambda: ctx.stop.is_set  # noqa: E731
    if not plan.await_arm:
        return _run(plan, cfg, tx, rig, dev, ctx, sleep)
    # the quote kernels compile (or load from cache) now, not when tick 0 is due
    open_quotes(plan, cfg).next_batch(1)
    ctx.stats.update(idle_heartbeats=0)
    schedule = None
    while True:
        armed = await_schedule(plan, start, tx, sleep, rig, dev, stop, ctx.stats)
        if armed is None:
            return schedule
        schedule = _run(armed, cfg, tx, rig, dev, ctx, sleep)
        if stop():
            return schedule
        start.finish()  # idle again: the next ARM brings the next schedule


def _run(
    plan: FeedPlan, cfg: ConfigReader, tx: Transmitter, rig: Clock, dev: DeviceClock,
    ctx: DeviceContext, sleep: ServicedSleep,
) -> OpenLoopSchedule:  # fmt: skip
    """One schedule: the plan's quotes sent on time (see :func:`~.schedule.run_feed`)."""
    schedule = OpenLoopSchedule(plan.start_at_ns, rig, sleep, lambda: ctx.stop.is_set,
                                late_tolerance_ns=plan.late_tolerance_ns)  # fmt: skip
    run_feed(plan, open_quotes(plan, cfg), tx, schedule, dev, ctx.stats)
    return schedule


def await_schedule(
    plan: FeedPlan,
    start: StartHandshake,
    tx: Transmitter,
    sleep: ServicedSleep,
    rig: Clock,
    dev: DeviceClock,
    stop: Any,
    stats: dict[str, Any],
) -> FeedPlan | None:
    """Idle (heartbeats, the link served) until the armed schedule is about to start; the
    plan to run then, or None if a stop came first."""
    hb = dm.new_record(dm.MSG_HEARTBEAT, plan.device_id)
    every = plan.heartbeat_interval_ns or IDLE_HEARTBEAT_NS
    next_hb = rig.now_ns()
    while not stop():
        now = rig.now_ns()
        due = start.start_rig_ns()
        if due is not None and now >= due - HANDOFF_NS:
            return armed_plan(plan, start.begin(due), due)
        if now >= next_hb:
            hb["device_seq"] = 0  # the first tick's sequence: nothing sent yet
            hb["device_time_ns"] = dev.device_time(rig.now_ns())
            tx.send([dm.encode(hb)])
            stats["idle_heartbeats"] += 1
            next_hb = max(next_hb + every, now)
        wake = next_hb if due is None else min(next_hb, due - HANDOFF_NS)
        sleep(min(max(0, wake - now) * 1e-9, MAX_SLEEP_S))
    return None


def armed_plan(plan: FeedPlan, s: Schedule, start_rig_ns: int) -> FeedPlan:
    """``plan`` with the armed schedule ``s``: tick 0 due at rig time ``start_rig_ns``, ``n_ticks``
    of them ``tick_interval_ns`` apart (the market at that rate)."""
    market = dataclasses.replace(plan.market, rate_hz=1e9 / s.tick_interval_ns)
    return dataclasses.replace(plan, start_at_ns=start_rig_ns, n_ticks=s.n_ticks, market=market,
                               await_arm=False)  # fmt: skip
