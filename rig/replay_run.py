"""``arbsphere replay RUN_DIR --speed 1|N|max``: the live pipeline driven by a recorded journal.

The recorded venue inputs (LocalArbProblem messages as the coordinator received them) are sent
by a journal player in place of feed devices and venue adapters, at the recorded pace, N times
faster, or back to back; the coordinator, broker adapter and broker device run live. The result
is a new result set (``results/<campaign>-replay/<run-id>/``) whose manifest says what it was
replayed from (run, journal head, speed). The offered rate scales with the speed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console

from arbsphere.clock import RealtimeClock
from arbsphere.errors import JournalError, ResultSetError
from arbsphere.replay.check import journal_of
from arbsphere.replay.player import PlayerRoleConfig, parse_speed
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, load_campaign
from arbsphere.rig.orchestrator import (
    START_MARGIN_S,
    Orchestrator,
    bound_endpoints,
)
from arbsphere.runtime import config_to_json

#: stands in for "max" when scaling the schedule (only the watch deadline depends on it)
MAX_SPEED_FACTOR = 1000.0
#: exchanges with the broker device before the replayed inputs start
BROKER_LOCK_LEAD_S = 4.0


class ReplayOrchestrator(Orchestrator):
    """Coordinator and broker as usual; a journal player instead of devices and adapters."""

    journal_dir: Path
    journal_head: dict[str, Any] | None
    speed: str

    def start(self) -> None:
        coord = self.spawn(
            "coordinator", "coordinator", "arbsphere.coordinator.service",
            config_to_json(self.coordinator_config(coordination=False)),
        )  # fmt: skip
        ready = self.wait_file(coord, self.proc_dir / "coordinator.ready.json")
        self.inbound, self.outbound = bound_endpoints(ready, "coordinator")
        self._start_broker()

    def cosigners(self) -> list[str]:
        return []  # the venues do not run: the journal player stands in for them

    def start_feeds(self) -> int:
        # the broker's clock exchange runs from the broker adapter's start: give it time to
        # lock before the replayed inputs (a sped-up replay has almost no warm-up of its own)
        lead = BROKER_LOCK_LEAD_S if self.campaign.clock_sync.rate_hz > 0 else 0.0
        start_at = self.clock.now_ns() + int((START_MARGIN_S + lead) * 1e9)
        c = self.campaign
        cfg = PlayerRoleConfig(
            name="journal-player", out_dir=str(self.proc_dir), journal_dir=str(self.journal_dir),
            speed=self.speed, start_at_ns=start_at, coordinator_endpoint=self.inbound,
            venues={v.venue_id: v.name for v in c.venues}, journal_head=self.journal_head,
        )  # fmt: skip
        player = self.spawn("journal-player", "feed_device", "arbsphere.replay.player",
                             config_to_json(cfg))  # fmt: skip
        self.wait_file(player, self.proc_dir / "journal-player.ready.json")
        return start_at


def replay_campaign(run_dir: Path, manifest: dict[str, Any]) -> Campaign:
    """The campaign a result set ran: its copy of the campaign file (else the original), with
    the schedule it actually ran (rate, warm-up, duration: overridable on the command line)
    taken from the manifest's resolved configuration."""
    copy = run_dir / "campaign.toml"
    original = manifest.get("config_file")
    if copy.is_file():
        campaign = load_campaign(copy)
    elif isinstance(original, str) and Path(original).is_file():
        campaign = load_campaign(Path(original))
    else:
        raise ResultSetError(f"{run_dir}: no campaign.toml and the original campaign file is gone")
    resolved = manifest.get("config", {})
    try:
        return dataclasses.replace(
            campaign,
            rate_hz=float(resolved["rate_hz"]),
            warmup_s=float(resolved["warmup_s"]),
            duration_s=float(resolved["duration_s"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultSetError(
            f"{run_dir / 'manifest.json'}: key 'config': no usable schedule ({exc})"
        ) from exc


def run_replay(run_dir: Path, speed_text: str, console: Console) -> int:
    speed = parse_speed(speed_text)
    journal_dir, head, manifest = journal_of(run_dir)
    recorded = replay_campaign(run_dir, manifest)
    if recorded.coordinator.coordination != "central":
        raise JournalError(
            f"{run_dir}: a {recorded.coordinator.coordination} run: a live replay re-times the "
            "ticks, so the solves' rounds differ from the recording and need the venues' "
            "private problems, which the journal never saw. `arbsphere replay --verify` "
            "re-executes it from its recorded round answers; --speed covers central "
            "coordination (e.g. campaigns/loopback-central.toml)"
        )
    factor = MAX_SPEED_FACTOR if speed is None else speed
    campaign = dataclasses.replace(
        recorded,
        name=f"{recorded.name}-replay",
        warmup_s=recorded.warmup_s / factor,
        duration_s=recorded.duration_s / factor,
        rate_hz=recorded.rate_hz * factor,  # warm-up ticks (rate x warm-up) stay the same
        rates_hz=(),
        # the player sends the journaled inputs as recorded (untagged, under the venues' sender
        # ids): the replay's own manifest and report show plaintext; the recorded run's
        # security is in its own ledger
        security=dataclasses.replace(recorded.security, transport="plaintext", tags=False),
    )

    class _Orch(ReplayOrchestrator):
        pass

    _Orch.journal_dir = journal_dir
    _Orch.journal_head = head.to_dict() if head is not None else None
    _Orch.speed = speed_text
    console.print(
        f"replaying {run_dir} ({recorded.name}, journal {journal_dir.name}) at speed "
        f"{speed_text} through the live coordinator and broker"
    )
    result = execute_campaign(
        campaign, RealtimeClock(), orchestrator=_Orch,
        rig_timebase_adapters=frozenset(v.name for v in campaign.venues),
        manifest_extra={"replayed_from": {
            "run_dir": str(run_dir), "run_id": manifest.get("run_id"),
            "journal_head": _Orch.journal_head, "speed": speed_text,
        }},
    )  # fmt: skip
    from arbsphere.rig.console import headline_table

    console.print(headline_table(result.kpi))
    if result.complete:
        console.print(f"[green]complete[/]: replay result set {result.run_dir}")
        return 0
    console.print(f"[red]INCOMPLETE[/]: {result.reason}")
    console.print(f"result set (marked incomplete): {result.run_dir}")
    return 1
