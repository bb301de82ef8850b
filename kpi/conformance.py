"""``kpi.json`` ``conformance``: the devices of a campaign run judged on the run's own traffic.

The checks that a campaign's recorded traffic can decide are judged here with the same judges
and limits as ``arbsphere conformance`` (:mod:`arbsphere.conformance.judges`): per feed device
framing, message decoding, ``device_seq`` gaps and duplicates, the transport sequence (UDP),
clock-sync answers / monotonic stamps / turnaround / causality, open-loop lateness and the
arrival rate over the measured window; per broker device framing, every ORDER answered once
with a final status, fills within size, monotonic device stamps and clock sync. What only an
active session can provoke (malformed input, the start handshake) or what the run does not
record (heartbeat stamps, limit and fill prices) is listed under ``not_run`` with the reason.

Section layout: ``{source, devices: {<device>: {interface, backend, passed, counts, checks:
[Check JSON], not_run: {<check>: reason}}}, passed}``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.conformance import judges
from arbsphere.conformance.model import BROKER, FEED, Check, for_device, passed, verdict_counts
from arbsphere.firmware_interfaces import messages as dm

ACTIVE_ONLY = "not run in a campaign; run `arbsphere conformance`"
#: what a venue adapter's trace must hold for the rate checks (a journal player's may not)
TRACE_FIELDS = frozenset(("seq", "intended_dev_ns", "send_dev_ns", "rx_ns"))
FEED_NOT_RUN = {
    "handshake_armed": ACTIVE_ONLY, "malformed_survives": ACTIVE_ONLY,
    "malformed_no_answer": ACTIVE_ONLY,
    "heartbeat_interval": "the venue adapter counts heartbeats but keeps no stamps of them",
    "first_tick": "judged against an armed start: run `arbsphere conformance`",
}  # fmt: skip
BROKER_NOT_RUN = {
    "invalid_orders": ACTIVE_ONLY, "malformed_survives": ACTIVE_ONLY,
    "malformed_no_answer": ACTIVE_ONLY,
}  # fmt: skip


def _load(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.is_file() else None


def _sync(stats: Mapping[str, Any], trace: np.ndarray | None, interface: str) -> list[Check]:
    sent = int((stats.get("sync") or {}).get("syncs_sent", 0))
    rows = [] if trace is None else [
        (int(r["sync_seq"]), int(r["t1_ns"]), int(r["t2_ns"]), int(r["t3_ns"]), int(r["t4_ns"]))
        for r in trace
    ]  # fmt: skip
    if not sent:
        return []  # the campaign ran without clock sync
    return judges.sync_checks(interface, judges.sync_record_until_last_answer(sent, rows))


def feed_checks(
    proc_dir: Path, venue: str, stats: Mapping[str, Any], backend: str, rate_hz: float,
    warmup_ticks: int,
) -> list[Check]:  # fmt: skip
    """The passive checks of the feed device behind venue adapter ``venue``."""
    link = stats.get("link", {})
    adapter = stats.get("adapter", {})
    seq = stats.get("sequence", {})
    checks = [
        judges.framing(FEED, link),
        judges.message_decode(FEED, int(adapter.get("decode_errors", 0)),
                              {"other": int(adapter.get("other_messages", 0))}
                              if adapter.get("other_messages") else {}),
        *judges.tick_sequence_counts(int(seq.get("gaps", 0)), int(seq.get("missing", 0)),
                                     int(seq.get("duplicates", 0))),
        judges.datagram_sequence(FEED, backend, link),
        *_sync(stats, _load(proc_dir / f"{venue}.sync.npy"), FEED),
    ]  # fmt: skip
    trace = _load(proc_dir / f"{venue}.trace.npy")
    if trace is not None and len(trace) and set(trace.dtype.names or ()) >= TRACE_FIELDS:
        measured = trace[trace["seq"].astype(np.int64) >= warmup_ticks]
        measured = measured[np.argsort(measured["rx_ns"], kind="stable")]
        checks += judges.rate_adherence(measured["intended_dev_ns"], measured["send_dev_ns"],
                                        measured["rx_ns"], rate_hz)  # fmt: skip
    return checks


def broker_checks(proc_dir: Path, broker: str, stats: Mapping[str, Any]) -> list[Check]:
    """The passive checks of the broker device behind broker adapter ``broker``."""
    checks = [judges.framing(BROKER, stats.get("link", {}))]
    orders = _load(proc_dir / f"{broker}.orders.npy")
    acks = _load(proc_dir / f"{broker}.acks.npy")
    if orders is not None and acks is not None:
        sent = [judges.SentOrder(int(o["order_id"]), int(o["side"]), int(o["size_lots"]), 0,
                                 int(o["tx_ns"])) for o in orders]  # fmt: skip
        recs = np.zeros(len(acks), dm.ACK_DTYPE)
        for src, dst in (("order_id", "order_id"), ("status", "status"),
                         ("filled_lots", "filled_lots"), ("device_rx_dev_ns", "device_rx_ns"),
                         ("device_tx_dev_ns", "device_tx_ns")):  # fmt: skip
            recs[dst] = acks[src]
        order = np.argsort(acks["rx_ns"], kind="stable")
        checks += judges.ack_checks(sent, recs[order], acks["rx_ns"][order], prices=False)
    checks += _sync(stats, _load(proc_dir / f"{broker}.sync.npy"), BROKER)
    return checks


def conformance_kpi(
    proc_dir: Path,
    stats: Mapping[str, Mapping[str, Any]],
    venues: Sequence[tuple[str, str]],
    broker: tuple[str, str],
    *,
    rate_hz: float,
    warmup_ticks: int,
) -> dict[str, Any]:
    """The section (see the module docstring). ``venues``: (adapter name, link backend) of
    each venue; ``broker``: the same of the broker adapter. Devices are named
    ``<adapter>-device``."""
    devices: dict[str, Any] = {}
    for name, backend in venues:
        checks = feed_checks(proc_dir, name, stats.get(name, {}), backend, rate_hz, warmup_ticks)
        devices[f"{name}-device"] = _device(f"{name}-device", FEED, backend, checks, FEED_NOT_RUN)
    b_name, b_backend = broker
    checks = broker_checks(proc_dir, b_name, stats.get(b_name, {}))
    devices[f"{b_name}-device"] = _device(f"{b_name}-device", BROKER, b_backend, checks,
                                          BROKER_NOT_RUN)  # fmt: skip
    return {
        "source": "the run's own traffic (passive); active checks: arbsphere conformance",
        "passed": all(d["passed"] for d in devices.values()),
        "devices": devices,
    }


def _device(
    device: str, interface: str, backend: str, checks: list[Check], not_run: Mapping[str, str]
) -> dict[str, Any]:
    named = for_device(checks, device)
    return {"interface": interface, "backend": backend, "passed": passed(named),
            "counts": verdict_counts(named), "checks": [c.to_json() for c in named],
            "not_run": dict(not_run)}  # fmt: skip


_MARK = {"pass": "ok", "marginal": "marginal", "fail": "<strong>FAIL</strong>",
         "skipped": "skipped"}  # fmt: skip


def conformance_html(section: Mapping[str, Any]) -> str:
    """The report's "Device conformance" section: per device one row a check (value, unit,
    limits, verdict, detail) and the checks not run, with why."""
    e = html.escape
    parts = ["<h2>Device conformance</h2>",
             f'<p class="note">{e(str(section.get("source", "")))}</p>']  # fmt: skip
    devices = section.get("devices")
    if not isinstance(devices, Mapping):
        return "".join(parts)
    head = "".join(f"<th>{h}</th>" for h in ("check", "value", "unit", "limits", "", "detail"))
    for name, dev in devices.items():
        verdict = "passed" if dev.get("passed") else "FAILED"
        parts.append(f"<h3>{e(str(name))} ({e(str(dev.get('interface')))} device, "
                     f"{e(str(dev.get('backend')))} link): {verdict}</h3>")  # fmt: skip
        rows = [f"<table><tr>{head}</tr>"]
        for c in dev.get("checks", []):
            value = "-" if c.get("value") is None else f"{c['value']:g}"
            mark = _MARK.get(str(c.get("verdict")), e(str(c.get("verdict"))))
            mark += "" if c.get("required", True) else " (info)"
            rows.append(f"<tr><th>{e(str(c.get('name')))}</th><td class=\"num\">{e(value)}</td>"
                        f"<td>{e(str(c.get('unit')))}</td><td>{e(str(c.get('limits_text')))}</td>"
                        f"<td>{mark}</td><td>{e(str(c.get('detail')))}</td></tr>")  # fmt: skip
        for check, why in dict(dev.get("not_run", {})).items():
            rows.append(f"<tr><th>{e(check)}</th><td></td><td></td><td></td><td>not run</td>"
                        f"<td>{e(str(why))}</td></tr>")  # fmt: skip
        rows.append("</table>")
        parts += rows
    return "".join(parts)
