"""From role trace tables to the run's trace table, stage latencies, HDR interval log and KPIs.

Each role saved what it saw (``proc/*.npy``); this module joins them on message keys —
(venue, device sequence) for ticks, delta id for plan deltas, order id for orders and acks —
into one row per tick (``trace.parquet``), computes every stage's latency as a difference of
trace points on the rig timebase, records the latencies in batches into HDR counts per
interval (``latency.hlog``, one tag per stage) and summarises them for ``kpi.json``.

Trace points and stages: device tx -> [feed_wire] -> rig rx -> [adapter_decode] ->
adapter decoded -> [adapter_to_coordinator] -> coordinator rx -> [solve] -> solve done ->
[delta_merge] -> merge done -> [coordinator_to_broker] -> broker adapter rx -> [broker_encode]
-> order tx -> [order_wire] -> broker device rx. ``tick_to_trade`` runs from the tick's
*intended* send time (open-loop schedule: no coordinated omission) to the first order's arrival
at the broker device; ``rig_tick_to_order`` from rig rx to order tx (the rig's own share).

Device timestamps are converted to rig time by each device's clock model
(:mod:`.clock_alignment`), which also gives each conversion an uncertainty and says whether the
device was locked then. A stage latency's uncertainty is the sum of its two end points'
(rig-side stamps: 0, except a link's hardware stamps, converted from the NIC's clock with the
uncertainty its role reports: :data:`RIG_STAMP_UNC`); a sample with an end point on a device
that was not locked is kept out of the percentiles and counted; a device with no clock model at
all (sync disabled or never answered) leaves its stages marked ``synchronised: false``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arbsphere.clocksync.alignment import ClockTrack
from arbsphere.kpi.federated_baseline import federated_solves
from arbsphere.kpi.hdr import HdrRecorder, HdrSpec
from arbsphere.kpi.hlog import IntervalLogWriter
from arbsphere.kpi.summary import latency_summary

#: (stage, end column, start column) in pipeline order; columns are rig-time ns.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("feed_wire", "rx_ns", "send_ns"),
    ("adapter_decode", "decoded_ns", "rx_ns"),
    ("adapter_to_coordinator", "coord_rx_ns", "decoded_ns"),
    ("solve", "solve_done_ns", "coord_rx_ns"),
    ("delta_merge", "merge_done_ns", "solve_done_ns"),
    ("coordinator_to_broker", "broker_rx_ns", "merge_done_ns"),
    ("broker_encode", "order_tx_ns", "broker_rx_ns"),
    ("order_wire", "order_device_rx_ns", "order_tx_ns"),
    ("ack_wire", "ack_rx_ns", "ack_device_tx_ns"),
    ("rig_tick_to_order", "order_tx_ns", "rx_ns"),
)
HEADLINE = ("tick_to_trade", "order_device_rx_ns", "intended_ns")
#: Stages that only exist for ticks that caused a PlanDelta.
ORDER_STAGES = {
    "delta_merge",
    "coordinator_to_broker",
    "broker_encode",
    "order_wire",
    "ack_wire",
    "rig_tick_to_order",
    "tick_to_trade",
}


#: Device-clock columns -> prefix of their companions ``<p>_unc_ns``, ``<p>_locked``,
#: ``<p>_sync`` (conversion uncertainty in ns, device locked then, device has a clock model).
DEVICE_COLUMNS = {
    "intended_ns": "intended",
    "send_ns": "send",
    "order_device_rx_ns": "order_device_rx",
    "ack_device_tx_ns": "ack_device_tx",
}


#: Rig-side stamp columns taken by a device link -> the column of their conversion uncertainty
#: (ns): a link's hardware stamps are converted from the NIC's clock (its role's stats
#: ``timestamps``: ``rx_uncertainty_ns`` / ``tx_uncertainty_ns``); the column is there only when
#: some link's is not 0 (stamps on the rig's own clock).
RIG_STAMP_UNC = {
    "rx_ns": "rx_unc_ns",
    "order_tx_ns": "order_tx_unc_ns",
    "ack_rx_ns": "ack_rx_unc_ns",
}


def link_stamp_uncertainty(
    ticks: pd.DataFrame, stats: Mapping[str, Mapping[str, Any]], broker_name: str
) -> None:
    """Add the :data:`RIG_STAMP_UNC` columns from the roles' stats: each venue link's receive
    stamps (by ``venue``), the broker link's transmit and receive stamps."""

    def unc(name: str, key: str) -> float:
        found = stats.get(name, {}).get("timestamps")
        return float(found.get(key) or 0) if isinstance(found, Mapping) else 0.0

    by_venue = {
        int(s["venue_id"]): unc(name, "rx_uncertainty_ns")
        for name, s in stats.items()
        if isinstance(s, Mapping) and s.get("role") == "venue_adapter" and "venue_id" in s
    }
    if "venue" in ticks and any(by_venue.values()):
        ticks["rx_unc_ns"] = ticks["venue"].map(by_venue).astype("float64").fillna(0.0)
    for col, key in (("order_tx_ns", "tx_uncertainty_ns"), ("ack_rx_ns", "rx_uncertainty_ns")):
        value = unc(broker_name, key)
        if value and col in ticks:
            ticks[RIG_STAMP_UNC[col]] = value


@dataclass
class StageClock:
    """Clock quality of one stage's samples."""

    uncertainty_ns: float  # max over the samples in the percentiles (0: rig-side only)
    synchronised: bool  # False: an end point is on a device with no clock model
    excluded_unlocked: int  # samples kept out because a device was not locked
    unlocked_intervals: list[int] = field(default_factory=list)


@dataclass
class Analysis:
    ticks: pd.DataFrame
    recorders: dict[str, HdrRecorder]
    interval_recorders: list[tuple[int, dict[str, HdrRecorder]]]
    negative: dict[str, int]
    stats: dict[str, dict[str, Any]]
    kpi: dict[str, Any] = field(default_factory=dict)
    stage_clock: dict[str, StageClock] = field(default_factory=dict)
    clocks: dict[str, ClockTrack] = field(default_factory=dict)
    #: federated runs: one row per solve (rig.federated_baseline); None for central runs
    solves: pd.DataFrame | None = None


def _load(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.exists() else None


def _frame(arr: np.ndarray) -> pd.DataFrame:
    """A trace table as a DataFrame with nullable ``Int64`` integer columns.

    Left joins leave missing values; with plain int64 pandas would turn those columns into
    float64, which at ~1.7e18 ns resolves only 256 ns. Nullable integers keep every stamp exact.
    """
    df = pd.DataFrame(arr)
    for name in df.columns:
        if df[name].dtype.kind in "iu":
            df[name] = df[name].astype("Int64")
    return df


def load_stats(proc_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(proc_dir.glob("*.stats.json")):
        try:
            out[p.name.removesuffix(".stats.json")] = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            out[p.name.removesuffix(".stats.json")] = {"error": f"unreadable stats: {exc}"}
    return out


def to_rig(
    df: pd.DataFrame,
    device_col: str,
    out_col: str,
    track: ClockTrack | None,
    hint_col: str | None,
) -> None:
    """Replace device-clock column ``device_col`` by rig-time ``out_col`` and its companions
    (see :data:`DEVICE_COLUMNS`); rows without the value stay missing."""
    prefix = DEVICE_COLUMNS[out_col]
    raw = df.pop(device_col)
    have = raw.notna() & (raw.fillna(0) != 0)
    rig = pd.Series(pd.NA, index=df.index, dtype="Int64")
    unc = pd.Series(np.nan, index=df.index, dtype="float64")
    locked = pd.Series(False, index=df.index)
    sync = pd.Series(False, index=df.index)
    if have.any():
        dev = raw[have].astype("int64").to_numpy()
        hint = None
        if hint_col is not None and hint_col in df:
            h = df.loc[have, hint_col]
            if h.notna().all():
                hint = h.astype("int64").to_numpy()
        if track is None:
            rig[have] = dev
            unc[have] = np.inf
            locked[have] = True  # nothing to lock: the stage is marked unsynchronised instead
        else:
            conv = track.convert(dev, hint)
            rig[have] = conv.rig_ns
            unc[have] = conv.uncertainty_ns
            sync[have] = conv.synchronised
            # a device without any model is "unsynchronised", not "unlocked"
            locked[have] = conv.locked if track.synchronised else True
    df[out_col] = rig
    df[f"{prefix}_unc_ns"] = unc
    df[f"{prefix}_locked"] = locked
    df[f"{prefix}_sync"] = sync


def join_traces(
    proc_dir: Path,
    venue_names: list[str],
    broker_name: str,
    clocks: Mapping[str, ClockTrack] | None = None,
    solves: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per tick received by a venue adapter, with every downstream trace point; device
    timestamps converted to rig time with ``clocks`` (keyed by adapter name: the device behind
    it). Adapters without a track keep device time, marked unsynchronised. ``solves``
    (federated runs) supplies the objective gap of each solve's trigger tick."""
    clocks = clocks or {}
    frames = []
    for name in venue_names:
        arr = _load(proc_dir / f"{name}.trace.npy")
        if arr is not None and len(arr):
            f = _frame(arr)
            to_rig(f, "intended_dev_ns", "intended_ns", clocks.get(name), "rx_ns")
            to_rig(f, "send_dev_ns", "send_ns", clocks.get(name), "rx_ns")
            frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["venue", "seq"])
    ticks = pd.concat(frames, ignore_index=True)

    coord = _load(proc_dir / "coordinator.trace.npy")
    if coord is not None and len(coord):
        c = _frame(coord).rename(columns={"rx_ns": "coord_rx_ns", "asset": "coord_asset"})
        if solves is not None and len(solves):
            rows = solves["row"].to_numpy()
            ok = (rows >= 0) & (rows < len(c))
            c.loc[rows[ok], "objective_gap"] = solves["objective_gap"].to_numpy()[ok]
        ticks = ticks.merge(c.drop(columns=["coord_asset"]), on=["venue", "seq"], how="left")
    if "shed" in ticks:  # superseded by the venue adapter (never reached the coordinator)
        shed = ticks["shed"].fillna(0).astype("int64") > 0
        if "superseded" not in ticks:
            ticks["superseded"] = 0
        ticks.loc[shed, "superseded"] = 1
    orders = _load(proc_dir / f"{broker_name}.orders.npy")
    acks = _load(proc_dir / f"{broker_name}.acks.npy")
    if orders is not None and len(orders) and "delta_id" in ticks:
        o = _frame(orders)
        first = o[o["leg"] == 0][["delta_id", "order_id", "rx_ns", "tx_ns"]].rename(
            columns={"rx_ns": "broker_rx_ns", "tx_ns": "order_tx_ns"}
        )
        legs = o.groupby("delta_id").size().rename("orders").reset_index()
        first = first.merge(legs, on="delta_id", how="left")
        if acks is not None and len(acks):
            a = _frame(acks).drop_duplicates("order_id")
            a = a.rename(columns={"rx_ns": "ack_rx_ns", "status": "ack_status"})
            broker = clocks.get(broker_name)
            to_rig(a, "device_rx_dev_ns", "order_device_rx_ns", broker, "ack_rx_ns")
            to_rig(a, "device_tx_dev_ns", "ack_device_tx_ns", broker, "ack_rx_ns")
            keep = ["order_id", "ack_rx_ns", "ack_status"]
            for col, prefix in DEVICE_COLUMNS.items():
                if col in a:
                    keep += [col, f"{prefix}_unc_ns", f"{prefix}_locked", f"{prefix}_sync"]
            first = first.merge(a[keep], on="order_id", how="left")
        # delta_id 0 marks a tick that changed nothing; PlanDelta ids start at 1, so no match.
        ticks = ticks.merge(first, on="delta_id", how="left")
    return ticks.sort_values(["intended_ns", "venue"], kind="mergesort").reset_index(drop=True)


@dataclass
class StageSamples:
    """One stage's latencies over the run (ns), with what clock alignment says of each."""

    values: np.ndarray  # int64
    interval: np.ndarray  # int64
    uncertainty_ns: np.ndarray  # float64
    locked: np.ndarray  # bool: every device end point was locked (or has no model at all)
    synchronised: bool


def _companion(ticks: pd.DataFrame, col: str, what: str, rows: pd.Index) -> np.ndarray | None:
    prefix = DEVICE_COLUMNS.get(col)
    if prefix is None or f"{prefix}_{what}" not in ticks:
        return None
    return ticks.loc[rows, f"{prefix}_{what}"].to_numpy()


def stage_samples(ticks: pd.DataFrame, end: str, start: str, only_orders: bool) -> StageSamples:
    empty = StageSamples(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), True
    )
    if end not in ticks or start not in ticks:
        return empty
    sel = ticks[[end, start]].dropna()
    if "interval" in ticks:
        sel = sel[(ticks.loc[sel.index, "interval"].astype("int64") >= 0).to_numpy()]
    if only_orders and "delta_id" in ticks:
        ids = ticks.loc[sel.index, "delta_id"]
        sel = sel[(ids.fillna(0).astype("int64") > 0).to_numpy()]
    sel = sel[(sel[end] > 0) & (sel[start] > 0)]
    rows = sel.index
    values = (sel[end].astype("int64") - sel[start].astype("int64")).to_numpy(np.int64)
    interval = (
        ticks.loc[rows, "interval"].astype("int64").to_numpy()
        if "interval" in ticks
        else np.zeros(len(rows), np.int64)
    )
    unc = np.zeros(len(rows))
    locked = np.ones(len(rows), bool)
    synchronised = True
    for col in (end, start):
        u = _companion(ticks, col, "unc_ns", rows)
        if u is None:
            rig_unc = RIG_STAMP_UNC.get(col)
            if rig_unc is not None and rig_unc in ticks:  # a link's converted hardware stamp
                unc = unc + ticks.loc[rows, rig_unc].to_numpy(np.float64)
            continue  # a rig-side stamp: exact on the rig timebase
        sync = _companion(ticks, col, "sync", rows)
        lk = _companion(ticks, col, "locked", rows)
        assert sync is not None and lk is not None
        if len(rows) and not sync.astype(bool).any():
            synchronised = False  # this device has no clock model: no bound to add
        else:
            unc = unc + np.where(sync.astype(bool), u.astype(np.float64), 0.0)
        locked &= lk.astype(bool)
    return StageSamples(values, interval, unc, locked, synchronised)


def analyse(
    proc_dir: Path,
    venue_names: list[str],
    broker_name: str,
    start_at_ns: int,
    interval_s: float,
    spec: HdrSpec | None = None,
    clocks: Mapping[str, ClockTrack] | None = None,
    warmup_ticks: int = 0,
) -> Analysis:
    """``clocks``: per adapter name, the clock track of the device behind it;
    ``warmup_ticks``: each venue's first ticks (by sequence) that were the warm-up."""
    spec = spec or HdrSpec()
    solves = federated_solves(proc_dir, venue_names)
    ticks = join_traces(proc_dir, venue_names, broker_name, clocks, solves)
    stats = load_stats(proc_dir)
    link_stamp_uncertainty(ticks, stats, broker_name)
    recorders: dict[str, HdrRecorder] = {}
    negative: dict[str, int] = {}
    stage_clock: dict[str, StageClock] = {}
    interval_ns = int(interval_s * 1e9)
    if len(ticks) and "intended_ns" in ticks:
        # the warm-up's ticks (by their schedule sequence, not by a converted time) get
        # interval -1: kept in the trace, kept out of every stage and KPI
        rel = ticks["intended_ns"].astype("int64") - start_at_ns
        iv = (rel // interval_ns).clip(lower=0)
        warm = ticks["seq"].astype("int64") < warmup_ticks
        ticks["interval"] = iv.where(~warm, -1).astype("int64")
    else:
        ticks["interval"] = pd.Series(dtype="int64")
    n_intervals = int(ticks["interval"].max()) + 1 if len(ticks) else 0
    per_interval: list[tuple[int, dict[str, HdrRecorder]]] = [(i, {}) for i in range(n_intervals)]
    all_stages = [*STAGES, HEADLINE]
    for stage, end, start in all_stages:
        samples = stage_samples(ticks, end, start, stage in ORDER_STAGES)
        keep = samples.locked
        vals = samples.values[keep]
        ivs = samples.interval[keep]
        negative[stage] = int((vals < 0).sum())
        kept_unc = samples.uncertainty_ns[keep]
        stage_clock[stage] = StageClock(
            uncertainty_ns=float(kept_unc.max()) if len(kept_unc) else 0.0,
            synchronised=samples.synchronised,
            excluded_unlocked=int((~keep).sum()),
            unlocked_intervals=sorted({int(i) for i in samples.interval[~keep]}),
        )
        total = HdrRecorder(spec)
        total.record(vals)
        order = np.argsort(ivs, kind="stable")
        bounds = np.searchsorted(ivs[order], np.arange(n_intervals + 1))
        for i, recs in per_interval:
            rec = HdrRecorder(spec)
            rec.record(vals[order[bounds[i] : bounds[i + 1]]])
            recs[stage] = rec
        recorders[stage] = total
    return Analysis(
        ticks, recorders, per_interval, negative, stats, stage_clock=stage_clock,
        clocks=dict(clocks or {}), solves=solves,
    )  # fmt: skip


def write_hlog(
    analysis: Analysis, path: Path, start_at_ns: int, interval_s: float, comment: str
) -> None:
    with IntervalLogWriter(path, start_at_ns / 1e9, comment=comment) as writer:
        for i, recs in analysis.interval_recorders:
            for stage, rec in recs.items():
                if rec.total:
                    writer.write_interval(stage, i * interval_s, interval_s, rec)


def build_kpi(
    analysis: Analysis, *, duration_s: float, venue_names: list[str], broker_name: str,
    n_assets: int = 1,
) -> dict[str, Any]:  # fmt: skip
    stats = analysis.stats
    ticks = analysis.ticks
    coord = stats.get("coordinator", {})
    counts = coord.get("counts", {})
    stages = {s: _stage_summary(analysis, s) for s, _, _ in STAGES}
    gaps = crc = decode = 0
    ticks_sent = 0
    for name in venue_names:
        s = stats.get(name, {})
        link = s.get("link", {})
        crc += int(link.get("crc_errors", 0)) + int(link.get("cobs_errors", 0))
        gaps += int(link.get("gaps", 0)) + int(s.get("sequence", {}).get("gaps", 0))
        decode += int(s.get("adapter", {}).get("decode_errors", 0))
        ticks_sent += int(stats.get(f"{name}-device", {}).get("ticks_sent", 0))
    measured = ticks["interval"].astype("int64") >= 0 if "interval" in ticks else None
    ticks_in = int(measured.sum()) if measured is not None else len(ticks)
    warmup_ticks = len(ticks) - ticks_in
    measured_ticks = ticks[measured] if measured is not None else ticks
    problems = int(counts.get("problems", 0))
    # ticks the venue adapters superseded (a newer tick of the asset in the same link batch):
    # never sent to the coordinator, not lost
    shed = sum(int(stats.get(n, {}).get("adapter", {}).get("superseded", 0)) for n in venue_names)
    broker = stats.get(broker_name, {}).get("adapter", {})
    gap_values = ticks["objective_gap"].dropna() if "objective_gap" in ticks else pd.Series([])
    max_abs_net = coord.get("max_abs_net_delta_lots")
    kpi: dict[str, Any] = {
        "tick_to_trade": _stage_summary(analysis, "tick_to_trade"),
        "stages": stages,
        "delta_merge": stages["delta_merge"],
        "hedge": {
            "ticks_solved": _count_flag(measured_ticks, "solved"),
            "solves": int(counts.get("solves", 0)),
            "superseded_ticks": _count_flag(measured_ticks, "superseded"),
            "max_batch": int(coord.get("batches", {}).get("max_batch", 0)),
            "deltas": int(counts.get("deltas", 0)),
            "early_stops": int(counts.get("early_stops", 0)),
            "max_abs_net_delta": max_abs_net,
            "final_realized_net_delta": coord.get("final_realized_net_lots"),
            "objective_gap_vs_centralized": {
                **pcts(gap_values.to_numpy(dtype=float)),
                "count": len(gap_values),
                "unit": "relative",
            },
            **convergence_kpi(analysis, measured_ticks),
            **completeness_kpi(stats, broker_name),
        },
        "throughput": {
            "ticks_sent": ticks_sent,
            "ticks_in": ticks_in,
            "warmup_ticks": warmup_ticks,
            "ticks_per_s": round(ticks_in / duration_s, 3) if duration_s > 0 else None,
            "orders_out": int(broker.get("orders", 0)),
            "acks_in": int(broker.get("acks", 0)),
        },
        "loss": {
            "gaps": gaps,
            "crc_errors": crc,
            "decode_errors": decode + int(counts.get("decode_errors", 0)),
            "dropped": max(0, ticks_sent - problems - shed)
            if ticks_sent
            else max(0, ticks_in - problems - shed),
            "unacked_orders": int(broker.get("open_orders_at_stop", 0)),
        },
    }
    kpi["coverage"] = coverage_kpi(measured_ticks, venue_names, stats, n_assets)
    kpi["clock"] = clock_kpi(analysis)
    kpi["signals"] = {
        name: stats.get(name, {}).get("signals") for name in venue_names
    }  # cross-venue correlation estimate per venue and asset (None: central mode)
    kpi["privacy"] = {
        name: stats.get(name, {}).get("privacy") for name in venue_names
    }  # per venue {signal kind: budget state} (None: central mode or budgets off)
    kpi["signals_aggregate"] = signals_aggregate_kpi(coord.get("signals_aggregate"))
    return kpi


def coverage_kpi(
    measured: pd.DataFrame, venue_names: list[str], stats: dict[str, dict[str, Any]],
    n_assets: int,
) -> dict[str, Any]:  # fmt: skip
    """``kpi.json`` ``coverage``: per venue and per asset, the measured window's ticks in, ticks
    solved (the tick's quote was in the state a solve ran on) and PlanDeltas attributed to
    them (a batch's delta goes to its newest tick), and how many assets each venue quoted and
    venues each asset was quoted by. Assets 0..n_assets-1 are listed even when unquoted."""

    def column(name: str) -> np.ndarray:
        if name not in measured or not len(measured):
            return np.zeros(len(measured), np.int64)
        return measured[name].fillna(0).astype("int64").to_numpy()

    venue, asset = column("venue"), column("asset")
    solved, delta = column("solved") > 0, column("delta_id") > 0

    def counts(sel: np.ndarray) -> dict[str, int]:
        return {
            "ticks_in": int(sel.sum()),
            "ticks_solved": int((sel & solved).sum()),
            "deltas": int((sel & delta).sum()),
        }

    m = max(n_assets, int(asset.max()) + 1 if len(asset) else 0)
    venues: dict[str, dict[str, int]] = {}
    for i, name in enumerate(venue_names):
        sel = venue == int(stats.get(name, {}).get("venue_id", i))
        venues[name] = {**counts(sel), "assets_quoted": len(np.unique(asset[sel]))}
    assets = {
        str(a): {**counts(asset == a), "venues_quoted": len(np.unique(venue[asset == a]))}
        for a in range(m)
    }
    return {"n_venues": len(venue_names), "n_assets": m, "venues": venues, "assets": assets}


def signals_aggregate_kpi(agg: Any) -> dict[str, Any] | None:
    """``kpi.json`` ``signals_aggregate`` from the coordinator's stats (None: no signal shares —
    central mode or secure aggregation off)."""
    if not isinstance(agg, dict):
        return None
    return {
        "epochs_complete": int(agg.get("epochs_complete", 0)),
        "epochs_aborted": int(agg.get("epochs_aborted", 0)),
        "shares_refused": int(agg.get("shares_refused", 0)),
        "refused": agg.get("refused", {}),
        "pending_at_stop": int(agg.get("pending_at_stop", 0)),
        "release_interval_ms": agg.get("release_interval_ms"),
        "liquidity_sum": agg.get("liquidity_sum"),
        "correlation_mean": agg.get("correlation_mean"),
        "note": (
            "Per release epoch the coordinator learns only the sums of the venues' released "
            "(noisy) liquidity and correlation and how many venues contributed to each "
            "(pairwise-masked SignalShares); liquidity_sum is over complete epochs, "
            "correlation_mean = sum / contributors. With two venues the sum minus one venue's "
            "value is the other's (and a venue alone in the set sends its values unmasked): "
            "the privacy budget's noise is what protects them then."
        ),
    }


def pcts(values: np.ndarray, scale: float = 1.0) -> dict[str, float | None]:
    """{p50, p99, max} of ``values`` / scale, NaNs left out (None when nothing is left)."""
    values = values[~np.isnan(values)]
    if not len(values):
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50": float(p50) / scale,
        "p99": float(p99) / scale,
        "max": float(values.max()) / scale,
    }


def convergence_kpi(analysis: Analysis, measured_ticks: pd.DataFrame) -> dict[str, Any]:
    """Rounds (federated) or iterations (central) per solved tick, and for federated runs the
    final primal residual, time to tolerance and aborted solves."""
    coord = analysis.stats.get("coordinator", {})
    out: dict[str, Any] = {"coordination": coord.get("coordination", "central")}
    if "trigger" in measured_ticks and "iterations" in measured_ticks:
        trig = measured_ticks[measured_ticks["trigger"].fillna(0).astype(bool)]
        out["rounds_per_tick"] = pcts(trig["iterations"].dropna().to_numpy(dtype=float))
    solves = analysis.solves
    if solves is None:
        return out
    done = solves[~solves["aborted"]]
    conv = done[done["converged"]]
    out["final_primal_residual"] = pcts(done["primal_res"].dropna().to_numpy(dtype=float))
    out["time_to_tolerance_us"] = {
        **pcts(conv["elapsed_ns"].to_numpy(dtype=float), 1e3),
        "count": len(conv),
    }
    out["aborted_solves"] = int(solves["aborted"].sum())
    return out


REPLICA_KEYS = ("divergences", "repaired", "injected_faults", "snapshots", "checked")


def completeness_kpi(stats: dict[str, dict[str, Any]], broker_name: str) -> dict[str, Any]:
    """Hedge completeness: shortfalls written off and compensated, the realized net delta over
    time, and whether the broker adapter's plan replica agrees with the coordinator's plan."""
    coord = stats.get("coordinator", {})
    counts = coord.get("counts", {})
    replica = stats.get(broker_name, {}).get("replica")
    out: dict[str, Any] = {
        "compensation": {
            k: int(counts.get(k, 0)) for k in ("shortfalls", "write_offs", "compensating_deltas")
        },
        "realized_net_delta": coord.get("realized_net"),
        "venue_outages": {
            "freezes": int(counts.get("freezes", 0)),
            "unresponsive_venues": int(counts.get("unresponsive_venues", 0)),
            "frozen_solves": int(counts.get("frozen_solves", 0)),
            "neutralize_refused": int(counts.get("neutralize_refused", 0)),
            "episodes": coord.get("freezes", []),
        },
    }
    if replica is not None:
        final = coord.get("final_plan_hash")
        out["replicas"] = {
            broker_name: {
                **{k: replica.get(k) for k in REPLICA_KEYS},
                "consistent_at_stop": final is not None and replica.get("final_hash") == final,
            }
        }
    return out


def _stage_summary(analysis: Analysis, stage: str) -> dict[str, Any]:
    out = _summary(analysis.recorders[stage], analysis.negative[stage])
    sc = analysis.stage_clock.get(stage)
    if sc is not None:
        out["uncertainty_us"] = round(sc.uncertainty_ns / 1e3, 3) if sc.synchronised else None
        out["synchronised"] = sc.synchronised
        out["excluded_unlocked"] = sc.excluded_unlocked
    return out


def clock_kpi(analysis: Analysis) -> dict[str, Any]:
    """``kpi.json`` ``clock``: per device the final estimate, and what was kept out."""
    devices = {t.spec.device: t.summary() for t in analysis.clocks.values()}
    devices = dict(sorted(devices.items()))
    unlocked: set[int] = set()
    excluded = 0
    for sc in analysis.stage_clock.values():
        unlocked.update(sc.unlocked_intervals)
        excluded += sc.excluded_unlocked
    return {
        "devices": devices,
        "unlocked_intervals": sorted(unlocked),
        "excluded_samples": excluded,
        "note": "uncertainty_us of a stage bounds every percentile of it: the largest sum of "
        "its two end points' conversion uncertainties (half the round trip for unknown "
        "asymmetry + k x the fit's prediction error); samples with an end point on a device "
        "that was not locked are excluded and counted",
    }


def _count_flag(ticks: pd.DataFrame, column: str) -> int:
    """Ticks whose coordinator trace flag ``column`` is set (0 when there is no such column)."""
    if column not in ticks:
        return 0
    return int((ticks[column].fillna(0).astype("int64") > 0).sum())


def _summary(rec: HdrRecorder, negative: int) -> dict[str, Any]:
    out = latency_summary(rec, unit="us")
    out["negative"] = negative
    return out
