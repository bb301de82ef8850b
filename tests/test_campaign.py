"""End to end: short loopback campaigns through real processes, sockets, pty and kernels."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from arbsphere.clock import RealtimeClock
from arbsphere.errors import ConfigError, SecurityError
from arbsphere.kpi.analysis import ORDER_STAGES, stage_samples
from arbsphere.kpi.analysis import STAGES as STAGE_COLUMNS
from arbsphere.kpi.resultset import sha256_file
from arbsphere.kpi.verify import verify_result_set
from arbsphere.rig.campaign_run import CampaignResult, execute_campaign
from arbsphere.rig.cli import main
from arbsphere.rig.config import load_campaign
from arbsphere.security.identity import did_key_from_public, ed25519_public_raw

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ROOT / "campaigns" / "loopback.toml"
LOOPBACK_CENTRAL = ROOT / "campaigns" / "loopback-central.toml"
LOOPBACK_8X16 = ROOT / "campaigns" / "loopback-8x16.toml"
STAGES = (
    "feed_wire", "adapter_decode", "adapter_to_coordinator", "solve", "delta_merge",
    "coordinator_to_broker", "broker_encode", "order_wire", "ack_wire", "rig_tick_to_order",
)  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    campaign = dataclasses.replace(
        load_campaign(LOOPBACK), duration_s=3.0, rate_hz=1000.0, warmup_s=3.0
    )
    return execute_campaign(
        campaign, RealtimeClock(), results_dir=tmp_path_factory.mktemp("results")
    )


@pytest.fixture(scope="module")
def central_run(tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    """The same short run with central coordination (what journal replay covers)."""
    campaign = dataclasses.replace(
        load_campaign(LOOPBACK_CENTRAL), duration_s=3.0, rate_hz=1000.0, warmup_s=3.0
    )
    return execute_campaign(
        campaign, RealtimeClock(), results_dir=tmp_path_factory.mktemp("results")
    )


def _drops_explained(kpi: dict[str, Any], ticks: pd.DataFrame) -> None:
    """Nothing is lost on loopback but what a host too slow for the rate loses: ticks queued
    past the skew window (2 s) in front of the coordinator, refused as stale, and the backlog
    still queued when the run stops (each venue's last ticks). Either way counted
    (``loss.dropped``: the ticks the coordinator never took in) and in the health verdict;
    how many depends on the host's speed, so that is not asserted, only that nothing else is
    lost."""
    shed = ticks["shed"].astype("int64") > 0  # superseded by its venue adapter, not lost
    missing = ticks["coord_rx_ns"].isna() & ~shed
    assert kpi["loss"]["dropped"] == int(missing.sum())
    last_in = ticks[ticks["coord_rx_ns"].notna()].groupby("venue")["seq"].max()
    tail = ticks["seq"] > ticks["venue"].map(last_in).fillna(-1)
    health = kpi["health"]
    found = {f["name"]: f for f in health["findings"]}
    stale = found["stale_refusals"]["detail"]["by_role"].get("coordinator", 0)
    assert int((missing & ~tail).sum()) <= stale, health["summary"]
    assert found["dropped"]["value"] == kpi["loss"]["dropped"]
    assert kpi["loss"]["dropped"] == 0 or health["verdict"] != "healthy"


def test_short_loopback_campaign_produces_result_set(short_run: CampaignResult) -> None:
    assert short_run.complete, short_run.reason
    run_dir = short_run.run_dir
    for name in ("manifest.json", "kpi.json", "latency.hlog", "trace.parquet", "report.html"):
        assert (run_dir / name).is_file(), name
    kpi = json.loads((run_dir / "kpi.json").read_text())
    ticks = pd.read_parquet(run_dir / "trace.parquet")
    columns = {name: (end, start) for name, end, start in STAGE_COLUMNS}
    # Every stage saw traffic.
    assert kpi["tick_to_trade"]["count"] > 0
    for stage in STAGES:
        s = kpi["stages"][stage]
        assert s["unit"] == "us"
        assert s["count"] > 0, stage
        if s["uncertainty_us"] == 0:
            assert s["negative"] == 0, stage  # rig-side stamps only: never negative
        else:  # converted device stamps: a short wire can come out below 0 within the bound —
            # how many do depends on the host's load (1.8 % of 2946 on a busy one), how far not
            smp = stage_samples(ticks, *columns[stage], stage in ORDER_STAGES)
            kept, below = smp.locked, smp.values < 0
            assert int((below & kept).sum()) == s["negative"], stage
            assert (smp.values + smp.uncertainty_ns >= 0)[kept].all(), stage
        assert s["p50"] <= s["p99"] <= s["max"], stage
    assert kpi["delta_merge"]["count"] == kpi["stages"]["delta_merge"]["count"]
    # how loaded the host was in the measured window: every role sampled, the busy ones busy
    load = kpi["host_load"]
    assert set(load["roles"]) == {
        "orchestrator", "coordinator", "venue_a", "venue_b", "broker", "venue_a-device",
        "venue_b-device", "broker-device",
    }  # fmt: skip
    for role in ("coordinator", "venue_a", "venue_b"):  # > 0: a faster host needs less of a CPU
        assert load["roles"][role]["cpu_pct"] > 0 and load["roles"][role]["cpu_us_per_tick"] > 0
    assert 2.5 <= load["span_s"] <= 3 + 1.5 and 0 < load["rig_busy_pct"] <= 100
    assert "Host load in the measured window" in (run_dir / "report.html").read_text()
    # the devices judged on the run's own traffic (exact counts only: the timing checks'
    # verdicts depend on the host); the active-only checks listed as not run
    conf = kpi["conformance"]["devices"]
    assert set(conf) == {"venue_a-device", "venue_b-device", "broker-device"}
    exact = {
        "venue_a-device": ("framing", "tick_sequence", "datagram_sequence", "sync_answers"),
        "venue_b-device": ("framing", "tick_sequence", "sync_answers"),
        "broker-device": ("framing", "orders_answered", "answered_once", "fill_size"),
    }
    for device, names in exact.items():
        got = {c["name"]: c["verdict"] for c in conf[device]["checks"]}
        assert all(got[n] == "pass" for n in names), (device, got)
    assert "malformed_survives" in conf["broker-device"]["not_run"]
    assert "Device conformance" in (run_dir / "report.html").read_text()
    # 2 venues x 1000/s x (3 s warm-up + 3 s measured), all received by the venue adapters;
    # the warm-up's ticks are counted apart and kept out of the KPIs.
    assert kpi["throughput"]["ticks_sent"] == 12_000
    assert kpi["throughput"]["ticks_in"] == 6000
    assert kpi["throughput"]["warmup_ticks"] == 6000
    health = kpi["health"]
    found = {f["name"]: f for f in health["findings"]}
    assert {k: v for k, v in kpi["loss"].items() if k != "dropped"} == {
        "gaps": 0, "crc_errors": 0, "decode_errors": 0, "unacked_orders": 0,
    }  # fmt: skip
    _drops_explained(kpi, ticks)
    hedge = kpi["hedge"]
    # Federated: a solve takes rounds over ZeroMQ, so ticks queue and a batch's older quotes are
    # superseded by newer ones (counted). How many a solve takes in depends on the host's speed
    # (a busy host batched more: 421 and 385 solved against the > 500 once asserted), so no
    # count is; every measured tick is accounted for instead: solved or superseded (never both)
    # once it reached the coordinator, neither when it did not (dropped, above).
    assert hedge["coordination"] == "federated"
    measured = ticks[ticks["interval"] >= 0]
    solved = measured["solved"].fillna(0).astype("int64") > 0
    superseded = measured["superseded"].fillna(0).astype("int64") > 0
    # a venue adapter that fell behind forwards only the newest tick of an asset of what its
    # link delivered together: the others are superseded there ("shed"), never sent
    shed = measured["shed"].astype("int64") > 0
    reached = measured["coord_rx_ns"].notna() | shed
    assert not (solved & superseded).any() and ((solved | superseded) == reached).all()
    assert not (shed & measured["coord_rx_ns"].notna()).any()
    assert hedge["ticks_solved"] == int(solved.sum()) > 0 and hedge["solves"] > 0
    assert hedge["superseded_ticks"] == int(superseded.sum())
    assert hedge["ticks_solved"] + hedge["superseded_ticks"] + int((~reached).sum()) == 6000
    assert hedge["aborted_solves"] == 0
    # the campaign's budget: 10 ms at a nominal 0.1 ms per round
    assert 1 <= hedge["rounds_per_tick"]["p50"] <= hedge["rounds_per_tick"]["max"] <= 100
    assert hedge["time_to_tolerance_us"]["count"] > 0
    # every solve within 1e-6 of the centralized optimum (a warm solve that moved restarts ρ)
    assert hedge["objective_gap_vs_centralized"]["max"] <= 1e-6
    assert hedge["deltas"] > 0
    assert hedge["max_abs_net_delta"] == 0
    assert hedge["final_realized_net_delta"] == [0]
    # the broker fills some orders partly, rejects some: every shortfall is written off
    comp = hedge["compensation"]
    assert comp["write_offs"] == comp["shortfalls"]
    assert hedge["realized_net_delta"]["final_abs_lots"] == 0
    assert not hedge["realized_net_delta"]["open_at_stop"]
    assert hedge["replicas"]["broker"]["consistent_at_stop"]
    report = (run_dir / "report.html").read_text()
    conv = report.index("Convergence against the centralized baseline")
    assert report[conv:].index("<img") < report[conv:].index("<h2", 5)  # a plot, not a note
    assert kpi["throughput"]["orders_out"] == kpi["throughput"]["acks_in"]
    # Every device clock was aligned over its own link and locked during the warm-up: the
    # cross-device stages carry a clock bound, the rig-side ones none.
    # The serial pty's stamps are user-space, taken when the adapter reads; the federated
    # rounds keep the venue adapters busier, and its fit residual sits near the 20 us lock
    # limit (10-21 us over our runs): it may end "locking" — with its larger bound reported.
    # With central coordination (test_central_run_locks_every_kernel_stamped_clock) likewise.
    for dev in ("venue_a-device", "venue_b-device", "broker-device"):
        c = kpi["clock"]["devices"][dev]
        serial = dev == "venue_b-device"
        assert c["synchronised"] and c["state"] in (("locked", "locking") if serial
                                                    else ("locked",)), (dev, c)  # fmt: skip
        assert c["admitted"] > 50 and c["steps"] == 0 and c["uncertainty_us"] > 0, (dev, c)
        assert abs(c["offset_us"]) < 200 and abs(c["drift_ppm"]) < 20  # one host clock
    for stage in ("feed_wire", "order_wire", "ack_wire"):
        s = kpi["stages"][stage]
        assert s["synchronised"] and 0 < s["uncertainty_us"] < 500, (stage, s)
    assert kpi["tick_to_trade"]["uncertainty_us"] > 0
    assert kpi["stages"]["solve"]["uncertainty_us"] == 0.0
    # the venues' private-derived signals are summed per release epoch, masked
    agg = kpi["signals_aggregate"]
    # An epoch a venue's share missed by 3 release intervals of quote time is aborted; on a
    # loaded host the serial venue's adapter can lag that far (2 aborted in a run that lost
    # nothing): not asserted 0, but every abort counted, ledgered and in the health verdict.
    assert agg["epochs_complete"] > 0, agg
    aborted = kpi["governance"]["kinds"].get("AGGREGATION_ABORTED", 0)
    assert agg["epochs_aborted"] == aborted == found["aborted_signal_epochs"]["value"]


def test_central_run_locks_every_kernel_stamped_clock(central_run: CampaignResult) -> None:
    """The UDP devices (kernel software stamps) lock. The serial pty's stamps are user-space:
    its fit residual is 10-24 us against the 20 us lock limit on a loaded 2-vCPU host, so it
    may stay "locking" — synchronised, with its (larger) bound reported."""
    assert central_run.complete, central_run.reason
    for dev, c in central_run.kpi["clock"]["devices"].items():
        serial = dev == "venue_b-device"
        assert c["synchronised"] and c["state"] in (("locked", "locking") if serial
                                                    else ("locked",)), (dev, c)  # fmt: skip
        assert c["admitted"] > 50 and c["steps"] == 0 and c["uncertainty_us"] > 0, (dev, c)


def test_venues_share_a_cross_venue_correlation_estimate(
    short_run: CampaignResult, central_run: CampaignResult
) -> None:
    """Federated: each venue's SharedSignals carry its correlation with the consensus price
    (both venues quote one common price path: clearly positive — 0.44-0.76 over our runs, the
    consensus lags by the solves' warm-started rounds; ~0.04 standard error at this EWMA
    half-life, so 0.2 is far from chance); central: not estimated."""
    for venue, sig in short_run.kpi["signals"].items():
        assert sig is not None and sig["samples"][0] >= 30, (venue, sig)
        assert 0.2 < sig["correlation"][0] <= 1.0, (venue, sig)
    assert all(sig is None for sig in central_run.kpi["signals"].values())


def test_manifest_hashes_and_timestamp_sources(short_run: CampaignResult) -> None:
    manifest = json.loads((short_run.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["timestamp_source"]["venue_a"] in ("kernel-software", "user-space")
    assert manifest["timestamp_source"]["venue_b"] == "user-space"
    if sys.platform == "linux":
        assert manifest["timestamp_source"]["venue_a"] == "kernel-software"
    for rel, digest in manifest["files"].items():
        assert sha256_file(short_run.run_dir / rel) == digest, rel
    assert verify_result_set(short_run.run_dir).unlisted == ()  # the roles' files too
    assert manifest["config"]["name"] == "loopback"
    assert manifest["versions"]["numba"]
    serial = manifest["devices"]["venue_b"]["settings"]  # what the serial link set on its pty
    assert serial["requested"]["low_latency"] and "low_latency" in serial["refused"]
    assert "settings" not in manifest["devices"]["venue_a"]  # a UDP link sets no port settings


def test_manifest_names_each_links_rx_and_tx_stamps(short_run: CampaignResult) -> None:
    """Loopback has software stamps only: "auto" falls back and says why; every SYNC and ORDER
    sent on UDP carries the kernel's transmit stamp; serial stamps in user space."""
    stamps = json.loads((short_run.run_dir / "manifest.json").read_text())["timestamps"]
    a, b, broker = stamps["venue_a"], stamps["venue_b"], stamps["broker"]
    assert (a["rx"], a["tx"], a["sync_t1"]) == ("kernel-software",) * 3
    assert a["requested"] == "auto" and a["reason"].startswith("software: lo: ")
    assert (b["rx"], b["tx"], b["sync_t1"]) == ("user-space",) * 3
    assert (broker["rx"], broker["tx"], broker["sync_t1"]) == ("kernel-software",) * 3
    assert all(s["rx_uncertainty_ns"] == s["tx_uncertainty_ns"] == 0 for s in stamps.values())
    broker_stats = json.loads((short_run.run_dir / "proc" / "broker.stats.json").read_text())
    adapter = broker_stats["adapter"]
    assert adapter["order_tx_kernel"] > 0 and adapter["order_tx_missing"] == 0
    assert broker_stats["sync"]["sync_tx_kernel"] > 0


def test_hlog_readable_by_reference_reader(short_run: CampaignResult) -> None:
    kpi = short_run.kpi
    reader = HistogramLogReader(
        str(short_run.run_dir / "latency.hlog"), HdrHistogram(1, 3_600_000_000_000, 3)
    )
    totals: dict[str, int] = {}
    while True:
        hist = reader.get_next_interval_histogram()
        if hist is None:
            break
        totals[hist.get_tag()] = totals.get(hist.get_tag(), 0) + hist.get_total_count()
    assert totals["tick_to_trade"] == kpi["tick_to_trade"]["count"]
    for stage in STAGES:
        assert totals[stage] == kpi["stages"][stage]["count"], stage


def test_trace_table_one_row_per_tick(short_run: CampaignResult) -> None:
    ticks = pd.read_parquet(short_run.run_dir / "trace.parquet")
    assert len(ticks) == 12_000  # warm-up rows included, marked interval -1
    assert (ticks["interval"] == -1).sum() == 6000
    assert not ticks.duplicated(["venue", "seq"]).any()
    ordered = ticks.dropna(subset=["order_tx_ns"])
    assert (ordered["order_tx_ns"] >= ordered["rx_ns"]).all()
    # a device stamp converted to rig time is right within its stated uncertainty
    slack = ordered["order_device_rx_unc_ns"]
    assert (ordered["order_device_rx_ns"] >= ordered["order_tx_ns"] - slack).all()


def test_emulator_death_gives_incomplete_result_set(tmp_path: Path) -> None:
    campaign = dataclasses.replace(
        load_campaign(LOOPBACK), duration_s=6.0, rate_hz=500.0, warmup_s=0.5
    )
    killed: list[int] = []

    def kill_feed() -> None:
        deadline = time.monotonic() + 60
        proc_dir = None
        while time.monotonic() < deadline and not killed:
            runs = list((tmp_path / "loopback").glob("*/proc/venue_a-device.config.json"))
            if runs:
                proc_dir = runs[0].parent
                start_at = json.loads(runs[0].read_text())["start_at_ns"]
                # kill it 1.5 s into its schedule (after the clock-sync lock lead)
                time.sleep(max(0.0, (start_at - time.time_ns()) / 1e9) + 1.5)
                out = subprocess.run(
                    ["pgrep", "-f", str(proc_dir / "venue_a-device.config")],
                    capture_output=True,
                    text=True,
                )
                for pid in out.stdout.split():
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_feed)
    killer.start()
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    killer.join()
    assert killed, "the feed device process was never found"
    assert not result.complete
    assert "venue_a-device" in result.reason and "killed by signal 9" in result.reason
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert "venue_a-device" in manifest["incomplete_reason"]
    kpi = json.loads((result.run_dir / "kpi.json").read_text())
    assert kpi["throughput"]["ticks_in"] > 0  # what was accepted before the death is kept
    assert (result.run_dir / "report.html").read_text().count("incomplete") >= 1


def test_cli_config_error_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(LOOPBACK.read_text().replace("rate_hz = 2000", 'rate_hz = "fast"'))
    proc = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "run", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert f"{bad}: key 'campaign.rate_hz'" in proc.stdout.replace("\n", "")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_rate_sweep_result_set(tmp_path: Path) -> None:
    text = LOOPBACK.read_text().replace("rate_hz = 2000", "rate_hz = [300, 900]")
    text = text.replace("duration_s = 20.0", "duration_s = 1.5")
    text = text.replace("warmup_s = 5.0", "warmup_s = 1.0")
    text = text.replace('results_dir = "results"', f'results_dir = "{tmp_path}"')
    camp = tmp_path / "sweep.toml"
    camp.write_text(text)
    from arbsphere.rig.cli import main

    assert main(["run", str(camp)]) == 0
    (run_dir,) = (tmp_path / "loopback").iterdir()
    kpi = json.loads((run_dir / "kpi.json").read_text())
    rates = [e["rate_hz"] for e in kpi["sweep"]]
    assert rates == [300.0, 900.0]
    for e in kpi["sweep"]:
        sub = run_dir / e["run"]
        assert e["complete"] and (sub / "latency.hlog").exists()
        assert (sub / "manifest.json").exists()
        # each rate ran at its own rate: 2 venues x rate x 1.5 s ticks
        assert e["kpi"]["throughput"]["ticks_in"] == round(2 * e["rate_hz"] * 1.5)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "rate-sweep" and manifest["status"] == "complete"
    assert "rate-300hz/kpi.json" in manifest["files"]
    assert "rate-900hz/manifest.json" in manifest["files"]
    assert verify_result_set(run_dir).unlisted == ()  # every file listed, every hash matches
    assert "Latency against offered rate" in (run_dir / "report.html").read_text()


def test_rate_sweep_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(LOOPBACK.read_text().replace("rate_hz = 2000", "rate_hz = [300, -1]"))
    with pytest.raises(ConfigError, match=r"campaign\.rate_hz\[1\]"):
        load_campaign(bad)
    bad.write_text(LOOPBACK.read_text().replace("rate_hz = 2000", "rate_hz = [300, 300]"))
    with pytest.raises(ConfigError, match="distinct"):
        load_campaign(bad)


def _rewrite_journal(run_dir: Path, copy: Path, change: Any) -> int:
    """Copy ``run_dir`` to ``copy`` with a journal whose CRCs, chain and manifest head are all
    valid but one record's payload is ``change(records)`` -> (index, new payload); returns the
    index."""
    import shutil

    from arbsphere.journal import JournalReader, JournalWriter, JournalWriterConfig

    shutil.copytree(run_dir, copy)
    records = list(JournalReader(copy / "journal").records())
    victim, new_payload = change(records)
    shutil.rmtree(copy / "journal")
    writer = JournalWriter.open(copy / "journal", JournalWriterConfig())
    for i, r in enumerate(records):
        writer.append(r.type, r.ts_ns, new_payload if i == victim else bytes(r.payload))
    head = writer.close()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["journal"]["head"] = head.to_dict()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return int(victim)


def test_replay_verifies_a_federated_run_from_its_recorded_round_answers(
    short_run: CampaignResult, tmp_path: Path
) -> None:
    from arbsphere.contracts import default_registry
    from arbsphere.coordinator.journal_records import (
        REC_DELTA,
        REC_ROUND_INPUT,
        decode_frames,
        encode_frames,
    )
    from arbsphere.replay.check import verify_run
    from arbsphere.rig.cli import main

    result, _ = verify_run(short_run.run_dir)
    assert result.identical, result.divergence
    assert result.deltas_replayed > 0 and result.round_records > 100
    assert main(["replay", str(short_run.run_dir), "--verify"]) == 0

    # One venue's masked share in a round that led to a PlanDelta, its x word moved by 3 lots
    # (3·2^40 in the shares' fixed point, modulo 2^64): the sum, hence the exchange step after
    # it (or the check of the reveal against it) differs, so the replay must diverge at or
    # after that answer, never before.
    from arbsphere.privacy.secure_rounds import KIND_SHARE, X_FRAC_BITS

    reg = default_registry()

    def alter(records: list[Any]) -> tuple[int, bytes]:
        deltas = [i for i, r in enumerate(records) if r.type == REC_DELTA]
        target = deltas[len(deltas) // 2]

        def share(i: int) -> bool:
            if records[i].type != REC_ROUND_INPUT:
                return False
            return reg.decode_values(decode_frames(records[i].payload)[1])[1][10] == KIND_SHARE

        victim = max(i for i in range(target) if share(i))
        ident, data = decode_frames(records[victim].payload)
        schema, values = reg.decode_values(data)
        changed = list(values)
        changed[14] = (changed[14] + (3 << X_FRAC_BITS)) % (1 << 64)  # asset 0's x word
        n_items = values[13]
        return victim, encode_frames([ident, reg.packer(schema, n_items).pack(*changed)])

    copy = tmp_path / "fed"
    victim = _rewrite_journal(short_run.run_dir, copy, alter)
    altered, _ = verify_run(copy)
    assert altered.divergence is not None
    assert altered.divergence.record_index >= victim
    assert main(["replay", str(copy), "--verify"]) == 1


def test_live_replay_of_a_federated_run_is_refused_naming_why(
    short_run: CampaignResult,
) -> None:
    from rich.console import Console

    from arbsphere.errors import JournalError
    from arbsphere.rig.replay_run import run_replay

    with pytest.raises(JournalError, match=r"private problems.*--verify"):
        run_replay(short_run.run_dir, "max", Console(file=io.StringIO()))


def test_replay_verify_identical_then_altered_input_named(
    central_run: CampaignResult, tmp_path: Path
) -> None:
    from arbsphere.contracts import default_registry
    from arbsphere.coordinator.journal_records import (
        REC_BATCH,
        REC_DELTA,
        REC_INPUT,
        decode_frames,
        encode_frames,
    )
    from arbsphere.plan.digest import plan_hash
    from arbsphere.replay.check import verify_run
    from arbsphere.rig.cli import main

    result, _ = verify_run(central_run.run_dir)
    assert result.identical, result.divergence
    assert result.deltas_replayed > 0 and result.batches > 100
    assert main(["replay", str(central_run.run_dir), "--verify"]) == 0

    # A copy whose journal is valid (CRCs, chain) but one triggering input was altered: the
    # replay must diverge and name the record. The alteration must change the decision for
    # certain, whatever the run's prices were: take a TRADE delta (from the middle on) whose
    # batch holds the last problem before it, from a venue the delta leaves holding lots, and
    # set that problem's limit to 0 lots — the solve must now keep the venue flat, so the plan
    # (and its hash in the delta) differs.
    reg = default_registry()
    problem_id = reg.schema("LocalArbProblem").id
    campaign = load_campaign(LOOPBACK_CENTRAL)

    def alter(records: list[Any]) -> tuple[int, bytes]:
        def messages(i: int) -> list[bytes]:
            """An input's messages: one frame holds the problem and then the signals."""
            return reg.messages_of(decode_frames(records[i].payload))

        def problem(i: int) -> tuple[Any, list[Any]] | None:
            if records[i].type != REC_INPUT:
                return None
            schema, values = reg.decode_values(messages(i)[0])
            return (schema, list(values)) if schema.id == problem_id else None

        n_env = len(reg.envelope.value_fields)
        plan = np.zeros((len(campaign.venues), 1), np.int64)  # the run's venues x 1 asset
        last_problem = -1
        batch_records = [-1]  # a batch's inputs come before its BATCH record, its delta after
        candidates: list[tuple[int, int]] = []  # (delta index, victim index)
        for i, r in enumerate(records):
            if r.type == REC_INPUT and problem(i) is not None:
                last_problem = i
            elif r.type == REC_BATCH:
                batch_records.append(i)
            elif r.type == REC_DELTA:
                msg = reg.decode(bytes(r.payload))
                for leg in msg.items:
                    plan[leg["venue"], leg["asset"]] += int(leg["side"]) * int(leg["size_lots"])
                assert plan_hash(plan) == msg.header["plan_hash"][0]  # our plan is the sender's
                in_batch = len(batch_records) > 1 and batch_records[-2] < last_problem
                got = problem(last_problem) if in_batch else None
                if msg.header["kind"][0] == 1 and got is not None:
                    schema, values = got
                    venue, n_assets = values[n_env], values[n_env + 1]
                    asset = values[n_env + len(schema.header.value_fields)]
                    if n_assets == 1 and plan[venue, asset] != 0:
                        candidates.append((i, last_problem))
        deltas = sum(r.type == REC_DELTA for r in records)
        assert candidates, "no TRADE delta left a quoting venue holding lots"
        later = [c for c in candidates if c[0] >= deltas // 2] or candidates
        victim = later[0][1]
        got = problem(victim)
        assert got is not None
        schema, values = got
        limit_index = n_env + len(schema.header.value_fields) + 4  # asset, c, gamma, phi, limit
        values[limit_index] = 0
        rest = b"".join(messages(victim)[1:])
        return victim, encode_frames([reg.packer(schema, 1).pack(*values) + rest])

    copy = tmp_path / "run"
    victim = _rewrite_journal(central_run.run_dir, copy, alter)
    altered, _ = verify_run(copy)
    assert altered.divergence is not None
    assert altered.divergence.record_index > victim
    assert main(["replay", str(copy), "--verify"]) == 1

    # A flipped byte in the journal file is reported as corruption, located.
    import shutil

    seg = sorted((central_run.run_dir / "journal").glob("*.seg"))[0]
    flipped = tmp_path / "flipped"
    shutil.copytree(central_run.run_dir, flipped)
    data = bytearray((flipped / "journal" / seg.name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (flipped / "journal" / seg.name).write_bytes(bytes(data))
    assert main(["replay", str(flipped), "--verify"]) == 1


def test_replay_drives_the_live_pipeline_from_the_journal(
    central_run: CampaignResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import shutil

    from rich.console import Console

    from arbsphere.rig.replay_run import run_replay

    run = tmp_path / "recorded"
    shutil.copytree(central_run.run_dir, run)
    camp = run / "campaign.toml"  # the replay's result set goes under tmp_path
    camp.write_text(
        camp.read_text().replace('results_dir = "results"', f'results_dir = "{tmp_path}"')
    )
    out = io.StringIO()
    assert run_replay(run, "max", Console(file=out, width=160)) == 0, out.getvalue()
    (replay_dir,) = (tmp_path / "loopback-central-replay").iterdir()
    manifest = json.loads((replay_dir / "manifest.json").read_text())
    assert manifest["replayed_from"]["run_dir"] == str(run)
    assert manifest["replayed_from"]["speed"] == "max"
    recorded = central_run.kpi
    kpi = json.loads((replay_dir / "kpi.json").read_text())
    # every recorded venue input of the measured window went through the live coordinator
    # (ticks a venue adapter superseded itself — `shed` — never reached it, nor its journal)
    ticks = pd.read_parquet(central_run.run_dir / "trace.parquet")
    shed = int(((ticks["interval"] >= 0) & (ticks["shed"] > 0)).sum())
    assert kpi["throughput"]["ticks_in"] == recorded["throughput"]["ticks_in"] - shed
    assert kpi["hedge"]["max_abs_net_delta"] == 0 and kpi["hedge"]["deltas"] > 0
    if not kpi["tick_to_trade"]["count"]:  # seen once in a fresh-clone CI run: say why
        t = pd.read_parquet(replay_dir / "trace.parquet")
        traded = t[t["order_device_rx_ns"].fillna(0) > 0]
        pytest.fail(
            f"no trade counted: {len(traded)} traded rows, "
            f"{int((traded['interval'] >= 0).sum())} in the measured window, "
            f"{int(traded['order_device_rx_locked'].astype(bool).sum())} with the broker clock "
            f"locked; deltas {kpi['hedge']['deltas']}, tick_to_trade {kpi['tick_to_trade']}, "
            f"broker clock {kpi['clock']['devices'].get('broker-device')}"
        )
    assert kpi["clock"]["devices"]["venue_a-device"]["state"] == "rig-timebase"


def test_coordinator_sigkill_mid_run_leaves_a_recoverable_replayable_journal(
    tmp_path: Path,
) -> None:
    """SIGKILL the recording coordinator mid-traffic (no clean close, no STATE record): the
    journal recovers to its last whole record, the chain verifies, and the recovered prefix
    replays identically (every PlanDelta recorded before the kill is reproduced)."""
    from arbsphere.journal import recover, verify
    from arbsphere.replay.engine import journal_records, replay_records

    campaign = dataclasses.replace(
        load_campaign(LOOPBACK_CENTRAL), duration_s=6.0, rate_hz=1000.0, warmup_s=0.5
    )
    killed: list[int] = []

    def kill_coordinator() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            feeds = list((tmp_path / "loopback-central").glob("*/proc/venue_a-device.config.json"))
            if feeds:
                start_at = json.loads(feeds[0].read_text())["start_at_ns"]
                time.sleep(max(0.0, (start_at - time.time_ns()) / 1e9) + 2.3)
                proc_dir = feeds[0].parent
                out = subprocess.run(
                    ["pgrep", "-f", str(proc_dir / "coordinator.config")],
                    capture_output=True, text=True,
                )  # fmt: skip
                for pid in out.stdout.split():
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_coordinator)
    killer.start()
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    killer.join()
    assert killed and not result.complete and "coordinator" in result.reason
    journal = result.run_dir / "journal"
    report = recover(journal)  # a torn tail (if the kill cut a write) is truncated
    assert report.head is not None and report.head.record_count > 1000
    assert verify(journal).ok
    replayed = replay_records(journal_records(journal))
    assert replayed.divergence is None, replayed.divergence
    assert replayed.deltas_replayed == replayed.deltas_recorded > 0
    assert not replayed.state_checked  # killed: no STATE record, and the replay says so
    assert replayed.notes


def test_partial_fills_rejects_and_a_corrupted_replica_stay_neutral_and_get_repaired(
    tmp_path: Path,
) -> None:
    """Many shortfalls (IOC partial fills and rejects, some acks late) and a replica corrupted
    every 5th trade: each shortfall is written off and compensated, the realized net delta
    returns to zero, every divergence is detected and repaired from a snapshot."""
    base = load_campaign(LOOPBACK)
    broker = dataclasses.replace(
        base.broker,
        fills={"reject": 0.15, "partial": 0.25, "late": 0.1, "late_ms": 20.0, "seed": 5},
        replica_fault_every=5,
    )
    campaign = dataclasses.replace(
        base, duration_s=4.0, rate_hz=1000.0, warmup_s=2.0, broker=broker
    )
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    assert result.complete, result.reason
    hedge = result.kpi["hedge"]
    comp = hedge["compensation"]
    assert comp["shortfalls"] > 0 and comp["write_offs"] == comp["shortfalls"]
    assert comp["compensating_deltas"] > 0
    assert hedge["max_abs_net_delta"] == 0  # every TRADE delta leaves the plan neutral
    realized = hedge["realized_net_delta"]
    assert realized["max_abs_lots"] > 0 and realized["episodes"] > 0  # imbalances happened ...
    assert realized["final_abs_lots"] == 0 and not realized["open_at_stop"]  # ... and closed
    assert hedge["final_realized_net_delta"] == [0]
    replica = hedge["replicas"]["broker"]
    assert replica["injected_faults"] > 0 and replica["divergences"] > 0
    assert replica["repaired"] == replica["divergences"] and replica["consistent_at_stop"]
    assert result.kpi["throughput"]["orders_out"] == result.kpi["throughput"]["acks_in"]


def test_a_serial_broker_link_carries_orders_acks_and_clock_sync(tmp_path: Path) -> None:
    """[broker] link = "serial": the broker adapter writes ORDER frames into a pty, the serial
    broker emulator answers every one (mixed fills) and the clock-sync exchange runs on the same
    frames; nothing is lost or corrupted on the way."""
    base = load_campaign(LOOPBACK)
    campaign = dataclasses.replace(
        base, duration_s=2.0, rate_hz=500.0, warmup_s=2.0,
        broker=dataclasses.replace(base.broker, link="serial", flow_control="rtscts", stopbits=2),
    )  # fmt: skip
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    assert result.complete, result.reason
    throughput = result.kpi["throughput"]
    assert throughput["orders_out"] == throughput["acks_in"] > 0
    assert result.kpi["loss"]["unacked_orders"] == 0
    proc = result.run_dir / "proc"
    device = json.loads((proc / "broker-device.stats.json").read_text())
    adapter = json.loads((proc / "broker.stats.json").read_text())
    assert device["device"] == "broker_serial" and device["exit_code"] == 0
    assert device["orders_received"] == device["acks_sent"] == throughput["orders_out"]
    assert device["malformed_orders"] == 0 and device["rig_frames"]["crc_errors"] == 0
    assert device["sync_exchanges"] > 0
    assert adapter["link"]["malformed"] == 0 and adapter["link"]["messages"] > 0
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["timestamp_source"]["broker"] == "user-space"
    assert manifest["config"]["broker"]["link"] == "serial"
    assert result.kpi["clock"]["devices"]["broker-device"]["exchanges"] > 0
    # the campaign's serial settings reached the port; the pty refused low latency, said why
    settings = manifest["devices"]["broker"]["settings"]
    assert settings["port"].startswith("/dev/pts/") and settings["is_pty"]
    assert settings["requested"]["flow_control"] == settings["in_effect"]["flow_control"]
    assert settings["in_effect"]["flow_control"] == "rtscts"
    assert settings["in_effect"]["stopbits"] == 2
    assert "ENOTTY" in settings["refused"]["low_latency"]


def test_a_venue_outage_freezes_it_and_the_hedge_stays_neutral(tmp_path: Path) -> None:
    """venue_b stops quoting for 1 s mid-run: after stale_after_ms the coordinator holds it at
    its lots (no order goes to it) while the other venue hedges around it; it rejoins when it
    quotes again; the sequence has no gap and nothing is lost."""
    base = load_campaign(LOOPBACK)
    venues = tuple(
        dataclasses.replace(v, outage_s=(2.5, 3.5)) if v.name == "venue_b" else v
        for v in base.venues
    )
    campaign = dataclasses.replace(
        base, duration_s=3.0, rate_hz=1000.0, warmup_s=2.0, venues=venues,
        coordinator=dataclasses.replace(base.coordinator, stale_after_ms=50.0),
    )  # fmt: skip
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    assert result.complete, result.reason
    kpi = result.kpi
    out = kpi["hedge"]["venue_outages"]
    assert out["freezes"] == len(out["episodes"]) and out["frozen_solves"] > 0
    # On a loaded host a venue can also go 50 ms without a quote reaching the coordinator, or
    # let a round time out, and is held out for that too: more episodes, each counted — how
    # many depends on the host's speed. The outage's is venue_b's stale_quotes episode begun
    # while it was silent. When the freeze and the thaw are decided depends on when solves run
    # (fewer and later on a slower host), so they are held to what the coordinator had seen,
    # not to a window around the 1 s outage: episode times are quote stamps (the tick's rig
    # receive time, rx_ns); frozen once venue_b's last quote before the outage was
    # stale_after_ms (50) old and before its first quote after it came in, thawed no earlier
    # than that quote.
    ticks = pd.read_parquet(result.run_dir / "trace.parquet")
    b = ticks[(ticks["venue"] == 1) & ticks["coord_rx_ns"].notna()].sort_values("seq")
    rx = b["rx_ns"].astype("int64").to_numpy()
    gap = int(np.argmax(np.diff(b["intended_ns"].astype("int64").to_numpy())))
    assert b["intended_ns"].iloc[gap + 1] - b["intended_ns"].iloc[gap] > 0.9e9  # the outage
    back_in = int(b["coord_rx_ns"].iloc[gap + 1])
    ((_venue, frozen_at, back_at, before, last, why),) = [
        e for e in out["episodes"] if e[0] == 1 and rx[gap] < e[1] <= back_in
    ]
    assert why == "stale_quotes" and back_at is not None
    assert rx[gap] + 50_000_000 < frozen_at
    assert rx[gap + 1] <= back_at
    orders = np.load(result.run_dir / "proc" / "broker.orders.npy")
    decided_frozen = (orders["delta_id"] > before) & (orders["delta_id"] <= last)
    assert not (decided_frozen & (orders["venue"] == 1)).any()  # nothing ordered at venue_b
    assert kpi["hedge"]["max_abs_net_delta"] == 0 and kpi["hedge"]["final_realized_net_delta"] == [
        0
    ]
    assert kpi["loss"]["gaps"] == 0
    _drops_explained(kpi, ticks)  # the outage's ticks were never sent: not dropped
    device = json.loads((result.run_dir / "proc" / "venue_b-device.stats.json").read_text())
    assert device["outage_ticks"] == 1000  # 1 s at 1000 ticks/s never sent


def test_eight_venues_sixteen_assets_federated_campaign(tmp_path: Path) -> None:
    """campaigns/loopback-8x16.toml (8 venues x 16 assets, federated, secure aggregation) for a
    few seconds: every venue quotes every asset (one asset per tick, in round-robin), every
    venue and every asset is solved, the hedge stays neutral and `arbsphere verify` accepts the
    result set. Counts are asserted > 0 and consistent with each other, never against a rate a
    slow host could miss; so that a slow host keeps up at all, the run is at 50 ticks/s per
    venue (its file: 500), a solve takes at most 20 rounds and a wake-up drains the queue
    (8 venues' rounds on 2 loaded vCPUs: ~10 ms a round here)."""
    from arbsphere.rig.cli import main

    base = load_campaign(LOOPBACK_8X16)
    assert (len(base.venues), base.n_assets, base.rate_hz) == (8, 16, 500.0)
    coordinator = dataclasses.replace(base.coordinator, budget_us=2000.0, max_batch=65_536)
    campaign = dataclasses.replace(
        base, duration_s=3.0, rate_hz=50.0, warmup_s=3.0, coordinator=coordinator
    )
    result = execute_campaign(campaign, RealtimeClock(), results_dir=tmp_path)
    assert result.complete, result.reason
    kpi, run_dir = result.kpi, result.run_dir
    names = [v.name for v in campaign.venues]
    # the feed devices: every one sent its whole schedule, each asset every 16th tick
    for name in names:
        dev = json.loads((run_dir / "proc" / f"{name}-device.stats.json").read_text())
        per_asset = dev["ticks_per_asset"]
        assert dev["ticks_sent"] == campaign.n_ticks == sum(per_asset.values()), name
        assert sorted(map(int, per_asset)) == list(range(16)), name
        assert max(per_asset.values()) - min(per_asset.values()) <= 1, (name, per_asset)
    # the measured window: every venue and every asset quoted, reached a solve
    cov = kpi["coverage"]
    assert (cov["n_venues"], cov["n_assets"]) == (8, 16)
    assert list(cov["venues"]) == names and list(cov["assets"]) == [str(a) for a in range(16)]
    for name, v in cov["venues"].items():
        assert v["ticks_in"] > 0 and v["ticks_solved"] > 0 and v["assets_quoted"] == 16, name
    for asset, a in cov["assets"].items():
        assert a["ticks_in"] > 0 and a["ticks_solved"] > 0 and a["venues_quoted"] == 8, asset
    ticks_in = kpi["throughput"]["ticks_in"]
    assert sum(v["ticks_in"] for v in cov["venues"].values()) == ticks_in
    assert sum(a["ticks_in"] for a in cov["assets"].values()) == ticks_in
    solved = kpi["hedge"]["ticks_solved"]
    assert sum(a["ticks_solved"] for a in cov["assets"].values()) == solved
    assert kpi["throughput"]["ticks_sent"] == 8 * campaign.n_ticks
    assert ticks_in + kpi["throughput"]["warmup_ticks"] == 8 * campaign.n_ticks
    assert kpi["loss"] == {
        "gaps": 0, "crc_errors": 0, "decode_errors": 0, "dropped": 0, "unacked_orders": 0,
    }  # fmt: skip
    # one row per tick in the trace, every (venue, asset) cell present
    ticks = pd.read_parquet(run_dir / "trace.parquet")
    assert len(ticks) == 8 * campaign.n_ticks and not ticks.duplicated(["venue", "seq"]).any()
    assert len(ticks.groupby(["venue", "asset"])) == 8 * 16
    assert (ticks["asset"] == ticks["seq"] % 16).all()  # round-robin, one sequence per venue
    # the hedge: solved, traded, exactly neutral in every asset throughout
    hedge = kpi["hedge"]
    assert hedge["coordination"] == "federated"
    assert hedge["solves"] > 0 and solved > 0 and hedge["deltas"] > 0
    assert solved + hedge["superseded_ticks"] <= ticks_in
    assert hedge["rounds_per_tick"]["p50"] >= 1
    assert hedge["aborted_solves"] == 0
    assert hedge["max_abs_net_delta"] == 0
    assert hedge["final_realized_net_delta"] == [0] * 16
    assert hedge["realized_net_delta"]["final_abs_lots"] == 0
    comp = hedge["compensation"]
    assert comp["write_offs"] == comp["shortfalls"]
    assert hedge["replicas"]["broker"]["consistent_at_stop"]
    assert kpi["throughput"]["orders_out"] == kpi["throughput"]["acks_in"] > 0
    assert kpi["tick_to_trade"]["count"] > 0
    orders = np.load(run_dir / "proc" / "broker.orders.npy")
    assert orders["venue"].max() < 8 and orders["asset"].max() < 16
    # the governance ledger verified, and the result set verifies as a whole
    assert kpi["governance"]["verified"]
    assert main(["verify", str(run_dir)]) == 0


def _sections(html: str) -> list[str]:
    return re.findall(r"<h2[^>]*>(.*?)</h2>", html)


def test_published_result_set_signed_prom_and_report_regenerated(
    short_run: CampaignResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """manifest.sig verifies with public material only (and refuses a tampered manifest and
    another authority); kpi.prom parses to kpi.json's values; report.html regenerates from the
    set with the same sections, and verify then says so rather than failing."""
    run_dir = tmp_path / "published"
    shutil.copytree(short_run.run_dir, run_dir)  # the module's run stays untouched
    manifest = json.loads((run_dir / "manifest.json").read_text())
    authority = manifest["security"]["authority_did"]
    report = verify_result_set(run_dir, authority_did=authority)
    assert report.signature is not None and report.signature.authority_did == authority
    assert not report.report_regenerated and report.unlisted == ()
    other = did_key_from_public(ed25519_public_raw(Ed25519PrivateKey.generate()))
    with pytest.raises(SecurityError, match=r"manifest\.sig: signed by .* expected"):
        verify_result_set(run_dir, authority_did=other)

    # kpi.prom: listed in the manifest, every headline value equal to kpi.json's
    assert "kpi.prom" in manifest["files"]
    kpi = json.loads((run_dir / "kpi.json").read_text())
    families = text_string_to_metric_families((run_dir / "kpi.prom").read_text())
    got = {(s.name, s.labels["stage"], s.labels.get("quantile")): s.value
           for f in families for s in f.samples if "stage" in s.labels}  # fmt: skip
    for stage, values in [("tick_to_trade", kpi["tick_to_trade"]), *kpi["stages"].items()]:
        assert got["arbsphere_latency_samples", stage, None] == values["count"]
        for key, q in (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"), ("p999", "0.999")):
            if values[key] is not None:
                assert got["arbsphere_latency_seconds", stage, q] == pytest.approx(
                    values[key] / 1e6, rel=1e-12
                )

    # report.html: deleted, regenerated into the run dir, same sections
    before = _sections((run_dir / "report.html").read_text())
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    after = _sections((run_dir / "report.html").read_text())
    assert after == before and "Latency" in " ".join(after)
    regenerated = verify_result_set(run_dir, authority_did=authority)
    if sha256_file(run_dir / "report.html") != manifest["files"]["report.html"]:
        assert regenerated.report_regenerated
    signed = (short_run.run_dir / "manifest.json").read_bytes()
    assert (run_dir / "manifest.json").read_bytes() == signed  # regenerating signs nothing

    # a file hash swapped in the manifest: refused by the signature
    manifest["files"]["kpi.prom"] = "0" * 64
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(SecurityError, match=r"manifest\.sig: does not verify"):
        verify_result_set(run_dir)
