"""The ``arbsphere`` command line.

``arbsphere run [CAMPAIGN]``  run a latency campaign (default ``campaigns/loopback.toml``) and
                              write its result set; prints a headline table and the path.
``arbsphere calibrate [CAMPAIGN]``  inject known clock errors and link delays (default
                              ``campaigns/calibration.toml``), recover them, print injected vs
                              recovered; exit 1 when an error exceeds its limit.
``arbsphere replay RUN_DIR --verify``  re-execute the coordinator from the run's journal and
                              compare every PlanDelta byte for byte (exit 1 names the record).
``arbsphere replay RUN_DIR --speed 1|N|max``  drive the live pipeline from the journal.
``arbsphere verify RUN_DIR [--authority DID]``  check the manifest's signature, file hashes,
                              credentials and the ledger.
``arbsphere report RUN_DIR [--out FILE]``  regenerate a run's report.html from its result set.
``arbsphere probe [--json]``  this host's network interfaces (address, timestamping capabilities
                              read from the kernel) and serial ports (USB identity, latency timer).
``arbsphere conformance [CAMPAIGN] [--junit FILE] [--json FILE]``  every device of the campaign
                              (default ``campaigns/loopback.toml``) through its conformance
                              suite; exit 0 only if every required check passes, 1 otherwise.
``arbsphere probe CAMPAIGN [--json] [--strict]``  check every hardware device of the campaign
                              (port opens with its settings, interface has the address, timestamp
                              mode possible); exit 1 naming what is missing.
``arbsphere headers [--lang c|cpp|all]``  regenerate the committed C headers and the generated
                              C++ SDK headers from the layout declarations.
``arbsphere device KIND --config FILE``  an emulated device (feed-udp, feed-serial, broker-udp,
                              broker-serial) on its own, as an external device for a campaign's
                              ``device = "hardware"``: a feed waits for the rig's ARM.

Exit codes: 0 complete run; 1 the run ended early (its result set is written and marked
incomplete, with the reason); 2 configuration error (the message names file and key).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from arbsphere.clock import RealtimeClock
from arbsphere.errors import ArbSphereError, ConfigError
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import DEFAULT_CAMPAIGN, load_campaign
from arbsphere.rig.console import (
    HEALTH_STYLE,
    HEALTH_WORD,
    complete_line,
    fmt,
    headline_table,
    health_line,
    sci,
)

DEFAULT_CALIBRATION = Path("campaigns/calibration.toml")


@contextlib.contextmanager
def _progress(console: Console) -> Iterator[tuple[Progress, TaskID]]:
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield progress, progress.add_task("starting", total=1.0)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    path = Path(args.campaign) if args.campaign else DEFAULT_CAMPAIGN
    campaign = load_campaign(path)
    if args.duration is not None:
        import dataclasses

        campaign = dataclasses.replace(campaign, duration_s=float(args.duration))
    rates = campaign.rates_hz or (campaign.rate_hz,)
    console.print(
        f"campaign [bold]{campaign.name}[/] ({path}): {len(campaign.venues)} venues x "
        f"{' / '.join(f'{r:g}' for r in rates)} ticks/s for {campaign.duration_s:g} s"
        + (" each (rate sweep)" if len(rates) > 1 else "")
    )
    with _progress(console) as (progress, task):

        def on_progress(frac: float, phase: str) -> None:
            progress.update(task, completed=frac, description=phase)

        if campaign.rates_hz:
            from arbsphere.rig.sweep import execute_sweep

            sweep = execute_sweep(campaign, RealtimeClock(), on_progress=on_progress)
        else:
            result = execute_campaign(campaign, RealtimeClock(), on_progress=on_progress)
    if campaign.rates_hz:
        return _print_sweep(sweep, console)
    kpi = result.kpi
    console.print(headline_table(kpi))
    health = health_line(kpi)
    if health is not None:
        console.print(health, highlight=False, emoji=False)
    hedge = kpi["hedge"]
    tp = kpi["throughput"]
    loss = kpi["loss"]
    gap = hedge["objective_gap_vs_centralized"]
    rounds = hedge.get("rounds_per_tick", {})
    what = "rounds" if hedge.get("coordination") == "federated" else "iterations"
    console.print(
        f"hedge ({hedge.get('coordination', 'central')}): {hedge['ticks_solved']} ticks solved, "
        f"{hedge['deltas']} deltas, max |net delta| {hedge['max_abs_net_delta']} lots; "
        f"{what} per solve p50 {fmt(rounds.get('p50'))} p99 {fmt(rounds.get('p99'))}, "
        f"{hedge['early_stops']} early stops; objective gap vs centralized p50 "
        f"{sci(gap['p50'])} p99 {sci(gap.get('p99'))} max {sci(gap['max'])}"
    )
    console.print(
        f"throughput: {tp['ticks_in']} ticks in ({tp['ticks_per_s']}/s), {tp['orders_out']} "
        f"orders out; loss: gaps {loss['gaps']}, crc errors {loss['crc_errors']}, "
        f"dropped {loss['dropped']}"
    )
    gov = kpi.get("governance")
    if gov is not None:
        refused = {k: sum(v.values()) for k, v in gov["refusals"].items()}
        security = result.manifest["security"]
        console.print(
            f"security: {gov['transport']}"
            + ("" if gov["tags"] else " [red](message tags OFF)[/]")
            + (" [red](PLAINTEXT)[/]" if gov["transport"] == "plaintext" else "")
            + f"; ledger {gov['events']} events, {gov['checkpoints']} checkpoints, "
            + ("[green]verified[/]" if gov["verified"] else "[red]NOT verified[/]")
            + f"; refusals {refused}",
            emoji=False,
        )
        console.print(
            f"authority {security['authority_did']} (pin it: arbsphere verify RUN_DIR "
            "--authority DID)",
            emoji=False,
            markup=False,
        )
    if result.complete:
        console.print(complete_line(kpi, result.run_dir), highlight=False)
        console.print(f"report: {result.run_dir / 'report.html'}")
        return 0
    console.print(f"[red]INCOMPLETE[/]: {result.reason}")
    console.print(f"result set (marked incomplete): {result.run_dir}")
    return 1


def _print_sweep(sweep: Any, console: Console) -> int:
    table = Table(title="tick_to_trade by offered rate (µs)", title_justify="left")
    for col in ("rate/s", "ticks in", "count", "p50", "p99", "p99.9", "max", "±clk", "run",
                "health"):  # fmt: skip
        table.add_column(col, justify="right", no_wrap=True)
    worst: dict[str, Any] = {}
    for rate, res in sweep.runs:
        t = res.kpi.get("tick_to_trade", {})
        u = t.get("uncertainty_us")
        verdict = (res.kpi.get("health") or {}).get("verdict")
        if verdict in ("degraded", "fell_behind") and worst.get("verdict") != "fell_behind":
            worst = {"verdict": verdict}
        table.add_row(
            f"{rate:g}", str(res.kpi.get("throughput", {}).get("ticks_in")), str(t.get("count")),
            *(fmt(t.get(k)) for k in ("p50", "p99", "p999", "max")),
            "unsync" if t.get("synchronised") is False else fmt(u),
            "ok" if res.complete else "[red]incomplete[/]",
            "-" if verdict not in HEALTH_STYLE
            else f"[{HEALTH_STYLE[verdict]}]{HEALTH_WORD[verdict]}[/]",
        )  # fmt: skip
    console.print(table)
    if sweep.complete:
        console.print(complete_line({"health": worst or None}, sweep.run_dir), highlight=False)
        console.print(f"report: {sweep.run_dir / 'report.html'}")
        return 0
    console.print(f"[red]INCOMPLETE[/]: {sweep.reason}")
    console.print(f"result set (marked incomplete): {sweep.run_dir}")
    return 1


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.rig.calibration import run_calibration

    path = Path(args.campaign) if args.campaign else DEFAULT_CALIBRATION
    campaign = load_campaign(path)
    if args.duration is not None:
        import dataclasses

        campaign = dataclasses.replace(campaign, duration_s=float(args.duration))
    console.print(
        f"calibration [bold]{campaign.name}[/] ({path}): a baseline run without link "
        f"impairment, then the injected run ({campaign.duration_s:g} s each)"
    )
    with _progress(console) as (progress, task):

        def on_progress(frac: float, phase: str) -> None:
            progress.update(task, completed=frac, description=phase)

        result = run_calibration(campaign, RealtimeClock(), on_progress=on_progress)
    table = Table(title="Injected vs recovered", title_justify="left")
    cols = ("quantity", "device", "injected", "recovered", "error", "of it: link", "limit", "",
            "note")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in ("quantity", "device", "note") else "right")
    for line in result.lines:
        mark = {"pass": "[green]ok[/]", "fail": "[red]FAIL[/]", "info": "info",
                "link-limited": "[yellow]ok (link)[/]"}[line.verdict]  # fmt: skip
        unit = f" {line.unit}" if line.unit else ""
        table.add_row(
            line.quantity, line.device,
            *(("-" if v is None else f"{v:,.3f}{unit}")
              for v in (line.injected, line.recovered, line.error, line.link_asymmetry,
                        line.limit)),
            mark, line.note,
        )  # fmt: skip
    console.print(table)
    console.print(
        "[dim]of it: link = the link's own asymmetry over the same exchanges (from the injected "
        "truth): a two-way exchange cannot see it, so no estimator removes it[/]"
    )
    console.print(f"result set: {result.run_dir} (calibration.json)")
    if not result.complete:
        console.print(f"[red]INCOMPLETE[/]: {result.reason}")
        return 1
    if not result.passed:
        console.print("[red]calibration FAILED[/]: an error exceeds its limit")
        return 1
    if result.link_limited:
        console.print(
            f"[green]calibration passed[/] ([yellow]{result.link_limited} line(s) over the "
            "limit by no more than the link's own asymmetry[/]: the rig's share is within it)"
        )
        return 0
    console.print("[green]calibration passed[/]")
    return 0


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.replay.check import verify_run

    run_dir = Path(args.run_dir)
    if args.verify:
        result, seconds = verify_run(run_dir)
        rate = result.records / seconds if seconds > 0 else 0.0
        rounds = (
            f", {result.round_records} round answers and timeouts" if result.round_records else ""
        )
        snapshots = (
            f", {result.snapshots_replayed} PlanSnapshots" if result.snapshots_recorded else ""
        )
        console.print(
            f"replayed {result.records} records ({result.inputs} inputs, {result.batches} "
            f"batches{rounds}, {result.deltas_replayed} PlanDeltas{snapshots}) in "
            f"{seconds:.2f} s ({rate:,.0f} records/s)"
        )
        if result.divergence is not None:  # the replay stops there: not the journal's length
            console.print("(stopped at the first divergence)")
        for note in result.notes:
            console.print(f"note: {note}")
        if result.divergence is not None:
            console.print(f"[red]DIVERGED[/] at {result.divergence}", highlight=False)
            return 1
        if not result.identical:
            console.print("[red]NOT VERIFIED[/]: the journal ends before its STATE record")
            return 1
        console.print(
            "[green]identical[/]: every PlanDelta (and PlanSnapshot) byte for byte and the "
            "final state digest"
        )
        return 0
    from arbsphere.rig.replay_run import run_replay

    return run_replay(run_dir, args.speed, console)


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 verified, 1 naming the first failure, 2 not a result set or a malformed DID."""
    from arbsphere.errors import ResultSetError, SecurityError
    from arbsphere.kpi.verify import MANIFEST, verify_result_set
    from arbsphere.security.identity import public_from_did_key

    def say(markup: str, style: str | None = None) -> None:
        console.print(markup, style=style, highlight=False, emoji=False)  # did:key: is no emoji

    run_dir = Path(args.run_dir)
    if not (run_dir / MANIFEST).is_file():
        what = "no such directory" if not run_dir.is_dir() else f"no {MANIFEST}"
        say(f"[red]usage error[/]: {escape(str(run_dir))}: {what} (a result set is "
            "results/<campaign>/<run-id>)")  # fmt: skip
        return 2
    if args.authority is not None:
        try:
            public_from_did_key(args.authority)
        except SecurityError as exc:
            say(f"[red]usage error[/]: --authority: {escape(str(exc))}")
            return 2
    try:
        report = verify_result_set(run_dir, authority_did=args.authority)
    except (ResultSetError, SecurityError) as exc:
        say(f"[red]verification FAILED[/]: {escape(str(exc))}")
        return 1
    for line in report.lines():
        say(escape(line), "yellow" if line.startswith(("warning", "unlisted", "note")) else None)
    say("[green]verified[/]")
    return 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 written, 1 not written (an input differs from the manifest, not a single run), 2 no
    result set there."""
    from arbsphere.errors import ResultSetError
    from arbsphere.kpi.regenerate import regenerate_report
    from arbsphere.kpi.resultset import MANIFEST

    run_dir = Path(args.run_dir)
    if not (run_dir / MANIFEST).is_file():
        what = "no such directory" if not run_dir.is_dir() else f"no {MANIFEST}"
        console.print(f"[red]usage error[/]: {escape(str(run_dir))}: {what}", highlight=False)
        return 2
    try:
        done = regenerate_report(run_dir, Path(args.out) if args.out else None)
    except ResultSetError as exc:
        console.print(f"[red]report not written[/]: {escape(str(exc))}", highlight=False)
        return 1
    for note in done.notes:
        console.print(f"note: {escape(note)}", style="yellow", highlight=False)
    console.print(f"report: {escape(str(done.path))}", highlight=False)
    return 0


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.rig.probe import print_probe, probe_host

    if args.campaign is not None:
        return _probe_campaign(args, console)
    found = probe_host()
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print_probe(found, console)
    return 0


def cmd_conformance(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 every required check passed, 1 one failed, 2 configuration error."""
    from arbsphere.conformance.model import verdict_counts
    from arbsphere.conformance.writers import print_results, write_json, write_junit
    from arbsphere.rig.conformance_run import run_conformance

    path = Path(args.campaign) if args.campaign else DEFAULT_CAMPAIGN
    campaign = load_campaign(path)
    console.print(
        f"conformance of campaign [bold]{campaign.name}[/] ({path}): "
        f"{len(campaign.venues)} feed devices and the broker device, then the adapters' "
        "contract traffic (the venue adapters of emulated feeds, the broker adapter)"
    )
    results = run_conformance(
        campaign, RealtimeClock(), on_device=lambda d: console.print(f"[dim]running {d}[/]")
    )
    print_results(results, console)
    if args.junit:
        write_junit(results, Path(args.junit))
        console.print(f"JUnit XML: {args.junit}")
    if args.json:
        write_json(results, Path(args.json))
        console.print(f"JSON: {args.json}")
    counts = verdict_counts(c for r in results for c in r.checks)
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    failed = [f"{r.device}: {c.name}" for r in results for c in r.checks if not c.ok]
    if failed:
        console.print(f"[red]conformance FAILED[/] ({summary}): {', '.join(failed)}")
        return 1
    console.print(f"[green]conformance passed[/] ({summary})")
    return 0


def _probe_campaign(args: argparse.Namespace, console: Console) -> int:
    """Check every hardware device of the campaign; exit 1 naming what is missing."""
    from arbsphere.rig.probe_campaign import missing, missing_lines, print_checks, probe_campaign

    campaign = load_campaign(args.campaign)
    checks = probe_campaign(campaign)
    failed = missing(checks, strict=args.strict)
    if args.json:
        print(json.dumps({"campaign": campaign.source, "ok": not failed,
                          "checks": [c.to_json() for c in checks],
                          "missing": missing_lines(failed)}, indent=2))  # fmt: skip
    else:
        print_checks(checks, console, f"devices of {campaign.source}")
    if not failed:
        if not args.json:
            console.print("[green]nothing missing[/]")
        return 0
    err = Console(stderr=True)
    err.print(f"[red]probe FAILED[/]: {len(failed)} check(s) of {escape(campaign.source)}:",
              highlight=False)  # fmt: skip
    for line in missing_lines(failed):
        err.print(f"  {escape(line)}", highlight=False)
    return 1


def cmd_headers(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.contracts_header import render_contracts_header
    from arbsphere.firmware_interfaces.device_header import render_device_header
    from arbsphere.rig.cpp_headers import cpp_sdk_files

    root = Path(__file__).resolve().parents[1]
    targets: dict[Path, str] = {}
    if args.lang in ("c", "all"):
        targets[root / "arbsphere" / "include" / "arbsphere_contracts.h"] = (
            render_contracts_header()
        )
        targets[root / "firmware_interfaces" / "include" / "arbsphere_device.h"] = (
            render_device_header()
        )
    if args.lang in ("cpp", "all"):
        targets.update(cpp_sdk_files())
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}")
    return 0


def cmd_device(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.rig.external_device import run_external_device

    return run_external_device(args.kind, args.config)


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    from arbsphere.clock import RealtimeClock
    from arbsphere.rig.sim import SCENARIOS, run_sim

    if args.scenario is None:
        for name, sc in SCENARIOS.items():
            console.print(f"{name:14s} {sc.doc}", highlight=False)
        return 0
    run_dir = run_sim(
        args.scenario, RealtimeClock(), Path(args.results_dir), args.seconds, args.protocol
    )
    kpi = json.loads((run_dir / "kpi.json").read_text())
    h, sim = kpi["hedge"], kpi["sim"]
    gap, rounds, real = (
        h["objective_gap_vs_centralized"],
        h["rounds_per_tick"],
        h["realized_net_delta"],
    )
    console.print(
        f"sim {sim['scenario']}: {sim['steps']} steps ({sim['venues']} venues x {sim['assets']} "
        f"assets) in {sim['wall_s']} s; {h['deltas']} deltas, max |net delta| after trades "
        f"{h['max_abs_net_delta']}, final plan net {h['final_plan_net']}; rounds p50 "
        f"{fmt(rounds['p50'])} p99 {fmt(rounds['p99'])}, {h['early_stops']} early stops; gap "
        f"p50 {sci(gap['p50'])} p99 {sci(gap['p99'])} max {sci(gap['max'])}; shortfalls "
        f"{h['compensation']['shortfalls']}, realized |net| max {real['max_abs_lots']}",
        highlight=False,
    )
    console.print(f"[green]complete[/]: result set {run_dir}")
    console.print(f"report: {run_dir / 'report.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arbsphere", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a latency campaign and write its result set")
    run.add_argument("campaign", nargs="?", help=f"campaign file (default {DEFAULT_CAMPAIGN})")
    run.add_argument("--duration", type=float, help="override campaign.duration_s (seconds)")
    run.set_defaults(func=cmd_run)
    cal = sub.add_parser(
        "calibrate", help="inject clock errors and link delays, recover them, compare"
    )
    cal.add_argument("campaign", nargs="?", help=f"campaign file (default {DEFAULT_CALIBRATION})")
    cal.add_argument("--duration", type=float, help="override campaign.duration_s (seconds)")
    cal.set_defaults(func=cmd_calibrate)
    rep = sub.add_parser("replay", help="re-execute a run's coordinator from its journal")
    rep.add_argument("run_dir", help="a result set with a journal (results/<campaign>/<run>)")
    rep.add_argument(
        "--verify",
        action="store_true",
        help="compare every PlanDelta and the final state with the recording",
    )
    rep.add_argument("--speed", default="1",
                     help="drive the live pipeline from the journal: 1 (recorded pace), N "
                     "(N times faster) or max")  # fmt: skip
    rep.set_defaults(func=cmd_replay)
    sim = sub.add_parser("sim", help="federated coordination in process on a scenario")
    sim.add_argument("scenario", nargs="?", help="scenario name (none: list them)")
    sim.add_argument("--seconds", type=float, help="override the scenario's length")
    sim.add_argument(
        "--protocol",
        choices=("price", "admm"),
        help="the federated protocol (default: the scenario's, price)",
    )
    sim.add_argument("--results-dir", default="results", help="where result sets go")
    sim.set_defaults(func=cmd_sim)
    ver = sub.add_parser(
        "verify", help="check a result set's file hashes, credentials and governance ledger"
    )
    ver.add_argument("run_dir", help="a result set (results/<campaign>/<run-id>)")
    ver.add_argument(
        "--authority", metavar="DID", help="the campaign authority you trust (did:key:z...)"
    )
    ver.set_defaults(func=cmd_verify)
    report = sub.add_parser("report", help="regenerate a run's report.html from its result set")
    report.add_argument("run_dir", help="a result set (results/<campaign>/<run-id>)")
    report.add_argument(
        "--out", metavar="FILE", help="write here instead of the result set's report.html"
    )
    report.set_defaults(func=cmd_report)
    probe = sub.add_parser(
        "probe", help="list this host's network interfaces (timestamping) and serial ports; "
        "with a campaign, check its hardware devices"
    )  # fmt: skip
    probe.add_argument("campaign", nargs="?",
                       help="check every hardware device of this campaign file")  # fmt: skip
    probe.add_argument("--json", action="store_true", help="JSON on stdout instead of tables")
    probe.add_argument("--strict", action="store_true",
                       help="with a campaign: warnings (low latency refused) fail too")  # fmt: skip
    probe.set_defaults(func=cmd_probe)
    conf = sub.add_parser(
        "conformance", help="run every device of a campaign through its conformance suite"
    )
    conf.add_argument("campaign", nargs="?", help=f"campaign file (default {DEFAULT_CAMPAIGN})")
    conf.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase a check)")
    conf.add_argument("--json", metavar="FILE", help="write the results as JSON")
    conf.set_defaults(func=cmd_conformance)
    headers = sub.add_parser("headers", help="regenerate the C headers and the C++ SDK headers")
    headers.add_argument(
        "--lang",
        choices=("c", "cpp", "all"),
        default="all",
        help="c: the C headers; cpp: the generated C++ SDK (sdk/cpp/include); all (default)",
    )
    headers.set_defaults(func=cmd_headers)
    dev = sub.add_parser(
        "device", help="run an emulated device on its own (an external device for the rig)"
    )
    dev.add_argument("kind", choices=("feed-udp", "feed-serial", "broker-udp", "broker-serial"))
    dev.add_argument("--config", required=True, help="the device's JSON config")
    dev.set_defaults(func=cmd_device)
    return parser


#: the width of tables written to a log or a pipe (``COLUMNS`` overrides it)
_LOG_WIDTH = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 120


def main(argv: list[str] | None = None) -> int:
    # a log or a pipe has no width; rich would assume 80 columns and fold the tables
    console = Console() if sys.stdout.isatty() else Console(width=_LOG_WIDTH)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args, console)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/]: {exc}", highlight=False)
        return 2
    except ArbSphereError as exc:
        console.print(f"[red]error[/]: {exc}", highlight=False)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
