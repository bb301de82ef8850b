"""Self-contained ``report.html`` for one campaign run.

One HTML file with inline CSS and the latency percentile plot inlined as a base64 PNG
(matplotlib, Agg canvas, no pyplot state); no external URLs. Every text taken from the inputs
is escaped with :func:`html.escape`.

Inputs:

* ``manifest``: ``campaign`` (str, or dict with ``name``), ``run_id``, ``status``
  (``"complete"``/``"incomplete"``) and ``reason`` (why incomplete). Other scalar entries are
  listed in the "Run" table.
* ``kpi``: the ``kpi.json`` record. Every top-level entry shaped like a latency summary
  (``unit``, ``count``, ``p50``...; see :mod:`arbsphere.kpi.summary`) -- ``tick_to_trade``,
  ``delta_merge`` and each entry of ``stages`` -- goes in the headline latency table; every other
  entry (``hedge``, ``throughput``, ``loss``, and whatever later issues add) becomes its own
  section rendered generically as a key/value table (nested dicts flattened to dotted keys);
  ``governance`` gets its own section (transport, ledger, events, refusals, with
  ``manifest["security"]["aggregation"]["note"]``), see :func:`_governance_section`;
  ``conformance`` (the devices judged on the run's traffic) as one check table per device,
  see :func:`arbsphere.kpi.conformance.conformance_html`;
  ``health`` (the run's verdict: did the pipeline keep up, ``arbsphere.kpi.health``) goes near
  the top, under the status, as a verdict, its one-line summary and the findings table, see
  :func:`_health_section`.
* ``hlog_path``: the interval log; the plot shows one curve per tag (all intervals of the tag
  summed), x = percentile on the HdrHistogram ``1/(1-p)`` log axis, y = latency in µs (log).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .conformance import conformance_html
from .devices_html import devices_html
from .extra_plots import clock_png, convergence_png, figure_png, legend_outside, rate_png
from .hdr import HdrSpec
from .hlog import merge_by_tag, read_interval_log
from .summary import UNIT_NS, percentile_curve

__all__ = ["render_report"]

_LATENCY_COLUMNS = (
    ("count", "count"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("p9999", "p99.99"),
    ("max", "max"),
    ("uncertainty_us", "± (clock)"),
)
_SECTION_ORDER = ("hedge", "throughput", "loss", "conformance")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;
color:#1b1f24;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #d0d7de;padding:.25em .6em}
th{background:#f6f8fa;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600}
.complete{background:#dafbe1;color:#116329}.incomplete{background:#ffebe9;color:#82071e}
.unknown{background:#fff8c5;color:#4d2d00}.healthy{background:#dafbe1;color:#116329}
.degraded{background:#fff8c5;color:#4d2d00}.fell_behind{background:#ffebe9;color:#82071e}.note{color:#57606a}img{max-width:100%}
.wide{overflow-x:auto}.wide th,.wide td{padding:.25em .45em}small{color:#57606a;font-weight:normal}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object, float_format: str = ".6g") -> str:
    """Latency cells use ``.3f`` (µs to the ns); other floats keep 6 significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:d}"
    if isinstance(value, float):
        return format(value, float_format)
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v, float_format) for v in value)
    return str(value)


def _is_latency(record: object) -> bool:
    return isinstance(record, Mapping) and "count" in record and "p50" in record


def _flatten(record: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _kv_table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f'<tr><th>{_e(k)}</th><td class="num">{_e(_fmt(v))}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def _latency_rows(kpi: Mapping[str, object]) -> list[tuple[str, Mapping[str, object]]]:
    rows: list[tuple[str, Mapping[str, object]]] = []
    tick = kpi.get("tick_to_trade")
    if isinstance(tick, Mapping) and _is_latency(tick):
        rows.append(("tick_to_trade", tick))
    stages = kpi.get("stages")
    if isinstance(stages, Mapping):
        rows.extend((str(name), rec) for name, rec in stages.items() if _is_latency(rec))
    listed = dict(rows)
    for key, rec in kpi.items():
        if key in ("tick_to_trade", "stages") or not isinstance(rec, Mapping):
            continue
        if not _is_latency(rec):
            continue
        if key in listed:
            if listed[key] == rec:  # e.g. delta_merge: a stage and a headline key, one record
                continue
            rows.append((f"{key} (kpi.{key})", rec))  # same name, other figures: both, told apart
        else:
            rows.append((str(key), rec))
    return rows


def _latency_table(rows: list[tuple[str, Mapping[str, object]]]) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label in _LATENCY_COLUMNS)
    body = []
    for name, rec in rows:
        unit = rec.get("unit", "us")
        cells = "".join(
            f'<td class="num">{_e(_fmt(rec.get(key), ".3f"))}</td>' for key, _ in _LATENCY_COLUMNS
        )
        body.append(f"<tr><th>{_e(name)}</th><td>{_e(unit)}</td>{cells}</tr>")
    return f"<table><tr><th>stage</th><th>unit</th>{head}</tr>{''.join(body)}</table>"


def percentile_figure(hlog_path: Path) -> Figure | None:
    """Every tag's latency against percentile (log axes, the legend beside the plot); None
    when the log holds no samples."""
    merged = merge_by_tag(read_interval_log(hlog_path))
    fig = Figure(figsize=(10.5, 5), dpi=100)
    ax = fig.add_subplot()
    top = 1.0
    plotted = 0
    for tag in sorted(merged):
        hist = merged[tag]
        counts = np.ctypeslib.as_array(hist.counts).astype(np.int64)
        xs, values = percentile_curve(counts, HdrSpec.of_histogram(hist))
        if xs.size == 0:
            continue
        # a 0 ns bucket cannot sit on a log axis: drawn at 1 ns
        # tab10 has ten colours: past ten series, change the line style so none look alike
        style = ("-", "--", ":")[(plotted // 10) % 3]
        ax.plot(
            xs,
            np.maximum(values, 1) / UNIT_NS["us"],
            style,
            label=tag or "(untagged)",
            color=f"C{plotted % 10}",
            linewidth=2.2 if tag == "tick_to_trade" else 1.4,
        )
        top = max(top, float(xs[-1]))
        plotted += 1
    if plotted == 0:
        return None
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [10.0**k for k in range(int(np.floor(np.log10(top))) + 1)]
    labels = [
        "0%" if t == 1.0 else f"{100.0 * (1.0 - 1.0 / t):.{max(0, len(str(int(t))) - 3)}f}%"
        for t in ticks
    ]
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (µs)")
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    return fig


def _plot_png(hlog_path: Path) -> bytes | None:
    fig = percentile_figure(hlog_path)
    return None if fig is None else figure_png(fig)


def _img(png: bytes | None, alt: str, missing: str) -> str:
    if png is None:
        return f'<p class="note">{_e(missing)}</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _governance_section(gov: Mapping[str, object], manifest: Mapping[str, object]) -> str:
    """The "Governance" section: transport (warning when plaintext or tags off), ledger
    counts and root, events per kind (non-zero), refusals per category and reason, and the
    secure-aggregation disclosure of the manifest."""
    warn = '<p><span class="status incomplete">warning</span> '
    transport = str(gov.get("transport", "not recorded"))
    tags = gov.get("tags")
    parts = ["<h2>Governance</h2>"]
    if transport == "plaintext":
        parts.append(
            f"{warn}transport is <strong>plaintext</strong>: pipeline sockets were not "
            "encrypted (CurveZMQ turned off by an explicit flag)</p>"
        )
    if tags is False:
        parts.append(
            f"{warn}per-message tags were <strong>off</strong>: messages were not "
            "authenticated, replays and tampering not refused</p>"
        )
    root = gov.get("root")
    verified = gov.get("verified")
    rows: list[tuple[str, object]] = [
        ("transport", transport),
        ("message tags", "n/a" if tags is None else ("on" if tags else "off")),
        ("ledger events", gov.get("events")),
        ("checkpoints", gov.get("checkpoints")),
        ("verified", verified if isinstance(verified, bool) else "n/a"),
        ("verify ms", gov.get("verify_ms")),
        ("root", f"{root[:16]}…" if isinstance(root, str) and len(root) > 16 else root),
    ]
    parts.append(_kv_table(rows))
    kinds = gov.get("kinds")
    if isinstance(kinds, Mapping):
        counted = [(str(k), v) for k, v in kinds.items() if v]
        parts.append("<h3>Ledger events by kind</h3>")
        parts.append(_kv_table(counted) if counted else '<p class="note">none</p>')
    refusals = gov.get("refusals")
    body = []
    for category, reasons in refusals.items() if isinstance(refusals, Mapping) else []:
        items = reasons.items() if isinstance(reasons, Mapping) else []
        counted = [(str(r), n) for r, n in items if n]
        for reason, n in counted or [("none", "")]:
            body.append(
                f"<tr><th>{_e(category)}</th><td>{_e(reason)}</td>"
                f'<td class="num">{_e(_fmt(n))}</td></tr>'
            )
    parts.append("<h3>Refusals</h3>")
    parts.append(
        f"<table><tr><th>category</th><th>reason</th><th>count</th></tr>{''.join(body)}</table>"
        if body
        else '<p class="note">none</p>'
    )
    security = manifest.get("security")
    aggregation = security.get("aggregation") if isinstance(security, Mapping) else None
    note = aggregation.get("note") if isinstance(aggregation, Mapping) else None
    if note:
        parts.append(f"<p><strong>Secure aggregation:</strong> {_e(note)}</p>")
    return "\n".join(parts)


_PRIVACY_COLUMNS = (
    ("mechanism", "mechanism"), ("epsilon_spent", "ε spent"), ("epsilon_total", "ε total"),
    ("delta_spent", "δ spent"), ("releases", "releases"), ("refusals", "refusals"),
    ("withheld_ticks", "withheld ticks"), ("sensitivity", "sensitivity"),
    ("noise_scale", "noise scale"),
)  # fmt: skip


def _signals_aggregate(agg: object) -> str:
    """The securely aggregated signals: epochs summed / aborted, refusals, the sums' spread."""
    if not isinstance(agg, Mapping):
        return ""

    def spread(key: str) -> str:
        v = agg.get(key)
        if not isinstance(v, Mapping) or v.get("p50") is None:
            return "—"
        return f"{_fmt(v.get('p50'))} [{_fmt(v.get('min'))}, {_fmt(v.get('max'))}]"

    rows = "".join(
        f'<tr><th>{_e(label)}</th><td class="num">{_e(value)}</td></tr>'
        for label, value in (
            ("epochs summed", _fmt(agg.get("epochs_complete"))),
            ("epochs aborted", _fmt(agg.get("epochs_aborted"))),
            ("shares refused", _fmt(agg.get("shares_refused"))),
            ("Σ liquidity per epoch, p50 [min, max]", spread("liquidity_sum")),
            ("mean correlation per epoch, p50 [min, max]", spread("correlation_mean")),
        )
    )
    note = agg.get("note")
    return f"<h3>Securely aggregated signals</h3><table>{rows}</table>" + (
        f'<p class="note">{_e(note)}</p>' if note else ""
    )


def _privacy_section(privacy: Mapping[str, object], aggregate: object = None) -> str:
    """The "Privacy budgets" section: one row per venue and signal kind (None: the venue had
    no budgets — central coordination or budgets off), then the securely aggregated signals."""
    parts = ["<h2>Privacy budgets</h2>"]
    tail = _signals_aggregate(aggregate)
    head = "".join(f"<th>{_e(label)}</th>" for _, label in _PRIVACY_COLUMNS)
    body = []
    composition = None
    for venue, kinds in privacy.items():
        if not isinstance(kinds, Mapping):
            continue
        for kind, state in kinds.items():
            if not isinstance(state, Mapping):
                continue
            composition = state.get("composition", composition)
            cells = "".join(
                f'<td class="num">{_e(_fmt(state.get(key)))}</td>' for key, _ in _PRIVACY_COLUMNS
            )
            body.append(f"<tr><th>{_e(venue)}</th><td>{_e(kind)}</td>{cells}</tr>")
    if not body:
        parts.append('<p class="note">no privacy budgets (central coordination or off)</p>')
        return "\n".join([*parts, tail] if tail else parts)
    parts.append(f"<table><tr><th>venue</th><th>signal</th>{head}</tr>{''.join(body)}</table>")
    parts.append(
        f'<p class="note">composition: {_e(composition)}; an exhausted signal is withheld '
        "(liquidity_lots = -1, correlation = NaN)</p>"
    )
    if tail:
        parts.append(tail)
    return "\n".join(parts)


def _big(value: object) -> str:
    """Like :func:`_fmt`, but a float of 1000 or more with thousands separators and one decimal
    (a queueing delay of 1,987,051.5 µs, not 1.98705e+06)."""
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.1f}"
    return _fmt(value)


_HEALTH_WORDS = {"healthy": "healthy", "degraded": "degraded", "fell_behind": "fell behind"}


def _health_section(health: Mapping[str, object]) -> str:
    """The verdict (healthy / degraded / fell behind), its summary line and one row per finding:
    measured value, the limit, whether it held, what it means."""
    verdict = str(health.get("verdict", "unknown"))
    css = verdict if verdict in _HEALTH_WORDS else "unknown"
    summary = str(health.get("summary", ""))
    summary = summary.split(" — ", 1)[1] if " — " in summary else summary  # the badge says it
    parts = [
        "<h2>Health</h2>",
        f'<p>verdict: <span class="status {css}">{_e(_HEALTH_WORDS.get(verdict, verdict))}'
        f"</span> — {_e(summary)}</p>",
    ]
    findings = health.get("findings")
    if isinstance(findings, Sequence) and not isinstance(findings, str):
        head = ("finding", "value", "limit", "unit", "", "what", "detail")
        rows = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
        for f in findings:
            if not isinstance(f, Mapping):
                continue
            severity = str(f.get("severity", ""))
            if severity == "info":
                mark = "info"
            elif f.get("ok"):
                mark = "ok"
            else:
                mark = f"<strong>{_e(_HEALTH_WORDS.get(severity, severity))}</strong>"
            detail = f.get("detail")
            flat = _flatten(detail) if isinstance(detail, Mapping) else []
            rows.append(
                f"<tr><th>{_e(f.get('name'))}</th>"
                f'<td class="num">{_e(_big(f.get("value")))}</td>'
                f'<td class="num">{_e(_big(f.get("limit")))}</td><td>{_e(f.get("unit", ""))}</td>'
                f"<td>{mark}</td><td>{_e(f.get('text', ''))}</td>"
                f"<td>{_e('; '.join(f'{k} {_big(v)}' for k, v in flat))}</td></tr>"
            )
        rows.append("</table>")
        parts.extend(rows)
    if health.get("rules"):
        parts.append(f'<p class="note">{_e(health["rules"])}</p>')
    return "".join(parts)


def _host_load_section(load: Mapping[str, object]) -> str:
    """Per role CPU and context switches in the measured window, the host's busy share."""
    parts = ["<h2>Host load in the measured window</h2>"]
    roles = load.get("roles")
    if not isinstance(roles, Mapping) or not roles:
        parts.append(f'<p class="note">{_e(load.get("note", "not sampled"))}</p>')
        return "".join(parts)
    host = load.get("host_busy_pct")
    host_text = (
        f"host busy {_e(_fmt(host))} % (of which steal by the hypervisor "
        f"{_e(_fmt(load.get('steal_pct')))} %, processes not the rig's "
        f"{_e(_fmt(load.get('other_busy_pct')))} %), " if host is not None
        else f"host busy not known ({_e(load.get('host_note', ''))}), "
    )  # fmt: skip
    parts.append(
        f"<p>{host_text}the rig's roles {_e(_fmt(load.get('rig_busy_pct')))} % of "
        f"{_e(load.get('cpus'))} CPUs over {_e(_fmt(load.get('span_s')))} s. Involuntary "
        "context switches: the kernel took the CPU away (contention); a hop that wakes a "
        "process waits for a free CPU.</p>"
    )
    head = ("role", "CPU % of one CPU", "µs CPU per tick", "voluntary cs/s", "involuntary cs/s")
    rows = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for name, row in sorted(
        roles.items(),
        key=lambda kv: -float(kv[1].get("cpu_pct", 0.0)),  # busiest first
    ):
        cells = (row.get(k) for k in ("cpu_pct", "cpu_us_per_tick", "voluntary_cs_per_s",
                                       "involuntary_cs_per_s"))  # fmt: skip
        rows.append(
            f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in cells)
            + "</tr>"
        )  # fmt: skip
    rows.append("</table>")
    return "".join(parts + rows)


#: the clock table's columns: (kpi key, header); keys a device has beyond these get columns of
#: their own after them (nothing in kpi.json is left out of the report)
_CLOCK_COLUMNS = (
    ("state", "state"),
    ("synchronised", "sync"),
    ("offset_us", "offset µs"),
    ("drift_ppm", "drift ppm"),
    ("path_delay_us", "path delay µs"),
    ("min_rtt_us", "min RTT µs"),
    ("residual_us", "fit residual µs"),
    ("uncertainty_us", "± µs"),
    ("locked_fraction", "locked"),
    ("admitted", "admitted / exchanges"),
    ("rejected", "rejected"),
    ("steps", "steps"),
)
#: shown under the device's name rather than in columns of their own ("exchanges" goes with
#: "admitted": one cell "admitted / exchanges")
_CLOCK_IDENTITY = (("device_id", "id"), ("exchanged_by", "via"))
_CLOCK_MERGED = ("exchanges",)


def _rejected_cell(value: object) -> str:
    """A device's rejected exchanges: the total, then each non-zero reason."""
    if not isinstance(value, Mapping):
        return _fmt(value)
    counts = {str(k): v for k, v in value.items() if isinstance(v, int | float)}
    total = sum(counts.values())
    reasons = ", ".join(f"{k} {_fmt(v)}" for k, v in counts.items() if v)
    return f"{_fmt(total)} ({reasons})" if reasons else _fmt(total)


def _clock_cell(dev: Mapping[str, object], key: str) -> str:
    """One figure of a device's clock row ("admitted" carries the exchanges beside it)."""
    if key == "rejected":
        return _rejected_cell(dev.get(key))
    if key == "admitted":
        return f"{_fmt(dev.get(key))} / {_fmt(dev.get('exchanges'))}"
    return _fmt(dev.get(key))


def _clock_section(clock: Mapping[str, object]) -> str:
    """One row per device (state, offset, drift, path delay, uncertainty, exchanges, rejections)
    instead of ~20 flattened rows each; the section's other keys as a key/value table."""
    parts = ["<h2>Clock</h2>"]
    devices = clock.get("devices")
    if isinstance(devices, Mapping) and devices:
        has_admitted = any(isinstance(d, Mapping) and "admitted" in d for d in devices.values())
        merged = list(_CLOCK_MERGED) if has_admitted else []  # else "exchanges" gets a column
        known = [k for k, _ in (*_CLOCK_COLUMNS, *_CLOCK_IDENTITY)] + merged
        extra: list[str] = []
        for dev in devices.values():
            if isinstance(dev, Mapping):
                extra += [str(k) for k in dev if k not in known and str(k) not in extra]
        columns = [*_CLOCK_COLUMNS, *((k, k) for k in extra)]
        used = [
            (key, head)
            for key, head in columns
            if any(isinstance(d, Mapping) and key in d for d in devices.values())
        ]
        rows = ['<div class="wide"><table><tr><th>device</th>']
        rows += [f"<th>{_e(head)}</th>" for _, head in used]
        rows.append("</tr>")
        for name, dev in devices.items():
            dev = dev if isinstance(dev, Mapping) else {}
            cells = "".join(f'<td class="num">{_e(_clock_cell(dev, key))}</td>' for key, _ in used)
            ident = " · ".join(
                f"{label} {_e(_fmt(dev[key]))}" for key, label in _CLOCK_IDENTITY if key in dev
            )
            label = f"{_e(name)}<br><small>{ident}</small>" if ident else _e(name)
            rows.append(f'<tr><th style="white-space:nowrap">{label}</th>{cells}</tr>')
        rows.append("</table></div>")
        parts.append("".join(rows))
    rest = [(k, v) for k, v in _flatten(clock) if not k.startswith("devices.") and k != "devices"]
    if rest:
        parts.append(_kv_table(rest))
    return "".join(parts)


def render_report(
    kpi: dict[str, object],
    hlog_path: Path | None,
    manifest: dict[str, object],
    out_path: Path,
    *,
    clock_histories: Mapping[str, np.ndarray] | None = None,
    rate_points: Sequence[tuple[float, Mapping[str, object]]] | None = None,
    convergence: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write the self-contained HTML report of one run to ``out_path`` (atomically).

    ``clock_histories`` (device -> clock estimator history) adds the offset/drift plot;
    ``rate_points`` ((rate, tick_to_trade summary) per rate of a sweep) the latency-vs-rate
    plot; ``convergence`` (per solve and round: round, objective_gap, residuals) the gap and
    residuals against the round."""
    title, parts = _run_heading(manifest)
    health = kpi.get("health")
    if isinstance(health, Mapping):
        parts.append(_health_section(health))
    latency = _latency_rows(kpi)
    parts += _latency_sections(latency, hlog_path)
    parts += _plot_sections(rate_points, convergence, clock_histories)
    latency_keys = {"tick_to_trade", "stages", "health"} | {k for k, _ in latency}
    parts += _kpi_sections(kpi, manifest, latency_keys)
    devices = devices_html(manifest)
    if devices:
        parts.append(devices)
    parts += _run_section(manifest)
    _write_html(out_path, title, parts)


def _run_heading(manifest: Mapping[str, object]) -> tuple[str, list[str]]:
    """The document title and the report's heading: campaign, run, status and its reason."""
    campaign = manifest.get("campaign", "unnamed campaign")
    if isinstance(campaign, Mapping):
        campaign = campaign.get("name", "unnamed campaign")
    run_id = manifest.get("run_id", "unknown run")
    status = str(manifest.get("status", "unknown"))
    css_status = status if status in ("complete", "incomplete") else "unknown"
    reason = manifest.get("incomplete_reason")
    title = f"{campaign} — run {run_id} — {status}"
    parts = [
        f"<h1>{_e(campaign)} <small>run {_e(run_id)}</small></h1>",
        f'<p>status: <span class="status {css_status}">{_e(status)}</span>',
    ]
    if reason is not None:
        parts.append(f" — reason: <strong>{_e(reason)}</strong>")
    elif status == "incomplete":
        parts.append(" — reason: <strong>not recorded in the manifest</strong>")
    parts.append("</p>")
    return title, parts


def _latency_sections(
    latency: list[tuple[str, Mapping[str, object]]], hlog_path: Path | None
) -> list[str]:
    """The latency table and the percentile plot of the interval log's histograms."""
    parts = ["<h2>Latency</h2>"]
    if latency:
        parts.append(_latency_table(latency))
    else:
        parts.append('<p class="note">no latency summaries in kpi.json</p>')
    png = _plot_png(hlog_path) if hlog_path is not None else None
    parts.append("<h2>Latency percentile distribution</h2>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<img alt="latency by percentile, one curve per stage" '
            f'src="data:image/png;base64,{data}">'
        )
    else:
        parts.append('<p class="note">no interval log histograms to plot</p>')
    return parts


def _plot_sections(
    rate_points: Sequence[tuple[float, Mapping[str, object]]] | None,
    convergence: Mapping[str, np.ndarray] | None,
    clock_histories: Mapping[str, np.ndarray] | None,
) -> list[str]:
    """The optional plots: latency against rate, convergence, clock estimates."""
    parts: list[str] = []
    if rate_points:
        parts.append("<h2>Latency against offered rate</h2>")
        parts.append(
            _img(
                rate_png(rate_points),
                "tick_to_trade percentiles by rate",
                "no rate had tick_to_trade samples",
            )
        )
    if convergence is not None:
        parts.append("<h2>Convergence against the centralized baseline</h2>")
        parts.append(
            _img(
                convergence_png(convergence),
                "objective gap and residuals by round",
                "no per-round iterates were kept",
            )
        )
    if clock_histories is not None:
        parts.append("<h2>Clock alignment: offset and drift estimates</h2>")
        parts.append(
            _img(
                clock_png(clock_histories),
                "device clock offset and drift over the run",
                "no device clock estimate (clock sync disabled or never answered)",
            )
        )
    return parts


def _kpi_sections(
    kpi: Mapping[str, object], manifest: Mapping[str, object], latency_keys: set[str]
) -> list[str]:
    """One section per kpi.json key not shown with the latency: the known ones in
    ``_SECTION_ORDER``, then the rest alphabetically."""
    others = [k for k in _SECTION_ORDER if k in kpi]
    others += sorted(k for k in kpi if k not in latency_keys and k not in _SECTION_ORDER)
    parts: list[str] = []
    for key in others:
        value = kpi[key]
        if key == "signals_aggregate" and isinstance(kpi.get("privacy"), Mapping):
            continue  # shown in the privacy section
        parts += _kpi_section(key, value, kpi, manifest)
    return parts


def _kpi_section(
    key: str, value: object, kpi: Mapping[str, object], manifest: Mapping[str, object]
) -> list[str]:
    """The section of one kpi.json key: its own layout where it has one, else a heading and a
    key/value table."""
    if key == "governance" and isinstance(value, Mapping):
        return [_governance_section(value, manifest)]
    if key == "privacy" and isinstance(value, Mapping):
        return [_privacy_section(value, kpi.get("signals_aggregate"))]
    if key == "host_load" and isinstance(value, Mapping):
        return [_host_load_section(value)]
    if key == "clock" and isinstance(value, Mapping):
        return [_clock_section(value)]
    if key == "conformance" and isinstance(value, Mapping):
        return [conformance_html(value)]
    heading = f"<h2>{_e(key.replace('_', ' ').capitalize())}</h2>"
    if isinstance(value, Mapping):
        return [heading, _kv_table(_flatten(value))]
    return [heading, _kv_table([(key, value)])]


def _run_section(manifest: Mapping[str, object]) -> list[str]:
    """The manifest's plain fields not already in the heading."""
    run_rows = [
        (str(k), v)
        for k, v in manifest.items()
        if k not in ("campaign", "run_id", "status", "incomplete_reason")
        and (v is None or isinstance(v, str | int | float | bool))
    ]
    if not run_rows:
        return []
    return ["<h2>Run</h2>", _kv_table(run_rows)]


def _write_html(out_path: Path, title: str, parts: list[str]) -> None:
    """The document around ``parts``, written atomically."""
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
