"""The run's health verdict: did the pipeline keep up with the offered load?

A result set is *complete* when every role ran to the end and its files were written (the
manifest's ``status``); that says nothing about whether the coordinator kept up. A run on a
host too slow for its rate still completes — with ticks queued for seconds in front of the
coordinator, refused as stale by the tag check's skew window, and counted as dropped. This
module turns the counters that show it into ``kpi.json``'s ``health`` section, which the
terminal (``arbsphere run``) and ``report.html`` state plainly:

``verdict``
    ``"healthy"``, ``"degraded"`` or ``"fell_behind"``: the worst severity among the findings
    that broke their limit (none broken: healthy).
``findings``
    every finding, each ``{name, value, limit, unit, ok, severity, text, detail}``; ``severity``
    is what breaking its limit means (``fell_behind`` / ``degraded``; ``info`` findings have no
    limit and never count against the run).
``reasons``
    the findings that broke their limit, in the findings' order (``[]`` when healthy), each
    ``{name, value, limit, unit, severity, text}``.
``summary``
    one plain line, e.g. ``FELL BEHIND — 34,495 messages refused as stale (skew_past), 34,404
    ticks dropped, queueing delay p50 1.99 s (bound 100 ms)``.

Rules (healthy = zero stale refusals, zero drops, queueing delay within the bound):

* ``stale_refusals`` (fell_behind when > 0): messages any role's tag check refused as older
  than the skew window (``skew_past``: origin stamp before now - ``max_past_ms``, 2 s by
  default). Every role stamps on the same rig clock, so such a message waited that long in a
  queue: the receiver was at least a skew window behind.
* ``queueing_delay`` (stage ``adapter_to_coordinator``: venue adapter decoded -> coordinator
  received, which is where ticks queue while a solve runs): fell_behind when its p50 exceeds
  the bound (most ticks waited longer: a standing backlog), degraded when its p99 does. The
  bound is :func:`queueing_bound_us`: ``max(50 ms, 10 x budget_us)``. A tick may wait behind
  the solve in progress, whose rounds the budget bounds at their *nominal* cost (``budget_us``
  = max rounds x ``ns_per_round``); a live round costs up to ~10x its nominal cost on a loaded
  2-vCPU host (README: ~1 ms against 0.1 ms), hence 10 budgets; 50 ms is the floor for small
  budgets (central mode), far above a healthy run's p99 of a few ms and far below the 2 s skew
  window. Ticks refused as stale never reach the coordinator, so they are not in the stage:
  its percentiles understate a run that fell behind (the stale refusals say the rest).
* degraded when > 0: ``dropped`` (``loss.dropped``: ticks the devices sent that the
  coordinator never took in, stale refusals included), ``link_errors`` (sequence gaps, CRC and
  decode errors), ``adapter_dropped`` (ticks a venue adapter dropped as out of sequence),
  ``coordinator_discarded`` (stale nonces, messages of the other coordination mode),
  ``refused`` (tag refusals for other reasons than staleness), ``aborted_solves`` (a venue did
  not answer a round), ``aborted_signal_epochs`` (a venue's signal share never came) and
  ``unacked_orders`` (orders without an ack at stop).
* info, never a failure: ``superseded_ticks`` (share of the measured ticks whose quote a newer
  one replaced before a solve: batching, by design) and ``plan_replica`` (the broker adapter's
  plan replica: divergences found, repaired, snapshots the coordinator sent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the queueing bound's floor (µs) and its multiple of the campaign's per-tick budget
QUEUEING_FLOOR_US = 50_000.0
QUEUEING_BUDGETS = 10.0
#: the stage whose delay is the coordinator's queueing delay
QUEUEING_STAGE = "adapter_to_coordinator"
#: tag-check refusal reasons that mean "too old": the message waited in a queue
STALE_REASONS = ("skew_past",)
VERDICTS = ("healthy", "degraded", "fell_behind")
_RANK = {"info": 0, "degraded": 1, "fell_behind": 2}
_WORDS = {"healthy": "ok", "degraded": "DEGRADED", "fell_behind": "FELL BEHIND"}

RULES = (
    "healthy: no stale refusals, no drops, queueing delay p99 within the bound; fell_behind: "
    "any message refused as stale (older than the skew window) or queueing delay p50 above "
    "the bound; degraded: anything dropped, refused, aborted or unacked, or queueing delay p99 "
    "above the bound. Queueing bound = max(50 ms, 10 x the campaign's budget_us). "
    "superseded_ticks and plan_replica are informational."
)


def queueing_bound_us(budget_us: float | None) -> float:
    """The bound on the coordinator's queueing delay (µs): ``max(50 ms, 10 x budget_us)``."""
    if budget_us is None or budget_us <= 0:
        return QUEUEING_FLOOR_US
    return max(QUEUEING_FLOOR_US, QUEUEING_BUDGETS * float(budget_us))


def fmt_us(us: float) -> str:
    """A duration in µs for a person: 850 µs, 3.1 ms, 1.99 s."""
    if us < 1_000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        ms = us / 1e3
        return (_trim(f"{ms:.1f}") if ms < 100 else f"{ms:.0f}") + " ms"
    return _trim(f"{us / 1e6:.2f}") + " s"


def _trim(number: str) -> str:
    """Trailing zeros off a decimal: 50.0 -> 50, 1.50 -> 1.5."""
    return number.rstrip("0").rstrip(".") if "." in number else number


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _finding(
    name: str,
    value: Any,
    limit: Any,
    unit: str,
    ok: bool,
    severity: str,
    text: str,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "ok": ok,
        "severity": severity,
        "text": text,
        "detail": dict(detail or {}),
    }


def _count(name: str, n: int, text: str, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A counter whose limit is 0; breaking it degrades the run."""
    return _finding(name, n, 0, "count", n == 0, "degraded", text, detail)


def _parts(counts: Mapping[str, int]) -> str:
    """The non-zero counts in parentheses, " (a 2, b 1)"; "" when all are zero."""
    inner = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)
    return f" ({inner})" if inner else ""


def message_refusals(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Every role's tag-check refusals from its stats (``security.messages.<channel>.refused``):
    ``{reason: {role: n}}``, zero counts left out."""
    out: dict[str, dict[str, int]] = {}
    for role, s in sorted(stats.items()):
        sec = s.get("security") if isinstance(s, Mapping) else None
        channels = sec.get("messages") if isinstance(sec, Mapping) else None
        if not isinstance(channels, Mapping):
            continue
        for channel in channels.values():
            refused = channel.get("refused") if isinstance(channel, Mapping) else None
            for reason, n in (refused or {}).items():
                if _int(n):
                    by_role = out.setdefault(str(reason), {})
                    by_role[role] = by_role.get(role, 0) + _int(n)
    return out


def _queueing(stage: Mapping[str, Any] | None, bound_us: float) -> dict[str, Any]:
    stage = stage or {}
    p50, p99, mx = stage.get("p50"), stage.get("p99"), stage.get("max")
    detail = {"stage": QUEUEING_STAGE, "p50": p50, "p99": p99, "max": mx,
              "count": stage.get("count", 0)}  # fmt: skip
    if p50 is None or p99 is None:
        return _finding("queueing_delay", None, bound_us, "us", True, "degraded",
                        "queueing delay: no samples", detail)  # fmt: skip
    if p50 > bound_us:
        return _finding("queueing_delay", p50, bound_us, "us", False, "fell_behind",
                        f"queueing delay p50 {fmt_us(p50)} (bound {fmt_us(bound_us)})",
                        {**detail, "statistic": "p50"})  # fmt: skip
    ok = p99 <= bound_us
    text = (
        f"queueing p99 {fmt_us(p99)} <= {fmt_us(bound_us)}" if ok
        else f"queueing delay p99 {fmt_us(p99)} (bound {fmt_us(bound_us)})"
    )  # fmt: skip
    return _finding("queueing_delay", p99, bound_us, "us", ok, "degraded", text,
                    {**detail, "statistic": "p99"})  # fmt: skip


def health_kpi(
    kpi: Mapping[str, Any],
    stats: Mapping[str, Mapping[str, Any]],
    *,
    budget_us: float | None,
    max_past_ms: float | None = None,
) -> dict[str, Any]:
    """``kpi.json``'s ``health`` from the run's other KPIs and every role's stats (see the
    module docstring for the rules). ``budget_us``: the campaign's per-tick coordination budget
    (sets the queueing bound); ``max_past_ms``: the skew window (named in the text)."""
    bound_us = queueing_bound_us(budget_us)
    loss = kpi.get("loss") or {}
    refusals = message_refusals(stats)
    dropped = _int(loss.get("dropped"))
    findings = [
        _stale_refusals(refusals, max_past_ms),
        _count("dropped", dropped, f"{dropped:,} ticks dropped" if dropped else "0 dropped",
               {"source": "loss.dropped: ticks sent by the devices that the coordinator never "
                "took in (stale refusals included)"}),
        _queueing((kpi.get("stages") or {}).get(QUEUEING_STAGE), bound_us),
        *_error_counts(kpi, stats, refusals),
        *_batching_and_replica(kpi, stats),
    ]  # fmt: skip
    return verdict_of(findings, bound_us)


def _stale_refusals(
    refusals: Mapping[str, Mapping[str, int]], max_past_ms: float | None
) -> dict[str, Any]:
    """Messages refused as stale, by reason and by role."""
    stale_roles: dict[str, int] = {}
    stale_reasons: dict[str, int] = {}
    for reason in STALE_REASONS:
        for role, n in refusals.get(reason, {}).items():
            stale_roles[role] = stale_roles.get(role, 0) + n
            stale_reasons[reason] = stale_reasons.get(reason, 0) + n
    stale = sum(stale_reasons.values())
    window = f"older than the {max_past_ms:,g} ms skew window" if max_past_ms else "skew window"
    reasons_text = ", ".join(stale_reasons) or "skew_past"
    return _finding(
        "stale_refusals", stale, 0, "messages", stale == 0, "fell_behind",
        f"{stale:,} messages refused as stale ({reasons_text})" if stale else "0 stale",
        {"by_reason": stale_reasons, "by_role": stale_roles, "means": window},
    )  # fmt: skip


def _error_counts(
    kpi: Mapping[str, Any],
    stats: Mapping[str, Mapping[str, Any]],
    refusals: Mapping[str, Mapping[str, int]],
) -> list[dict[str, Any]]:
    """The counts that must be zero for a clean run: link errors, adapter drops, coordinator
    discards, other refusals, aborted solves and signal epochs, orders unacked at stop."""
    loss = kpi.get("loss") or {}
    counts = (stats.get("coordinator") or {}).get("counts") or {}
    findings: list[dict[str, Any]] = []
    link = {k: _int(loss.get(k)) for k in ("gaps", "crc_errors", "decode_errors")}
    n = sum(link.values())
    findings.append(_count("link_errors", n, f"{n:,} link errors" + _parts(link), link))
    adapters = {
        role: _int((s.get("adapter") or {}).get("stale_dropped"))
        for role, s in sorted(stats.items())
        if isinstance(s, Mapping) and s.get("role") == "venue_adapter"
    }
    n = sum(adapters.values())
    findings.append(_count("adapter_dropped", n,
                           f"{n:,} ticks dropped by venue adapters (out of sequence)",
                           {k: v for k, v in adapters.items() if v}))  # fmt: skip
    discarded = {k: _int(counts.get(k)) for k in ("stale_messages", "unknown_messages")}
    n = sum(discarded.values())
    findings.append(_count("coordinator_discarded", n,
                           f"{n:,} messages discarded by the coordinator (stale nonce, wrong "
                           "mode)", discarded))  # fmt: skip
    other = {r: sum(by.values()) for r, by in refusals.items() if r not in STALE_REASONS}
    n = sum(other.values())
    findings.append(_count("refused", n, f"{n:,} messages refused" + _parts(other),
                           {"by_reason": other,
                            "by_role": {r: refusals[r] for r in other}}))  # fmt: skip
    n = _int((kpi.get("hedge") or {}).get("aborted_solves"))
    findings.append(_count("aborted_solves", n, f"{n:,} solves aborted"))
    agg = kpi.get("signals_aggregate")
    n = _int(agg.get("epochs_aborted")) if isinstance(agg, Mapping) else 0
    findings.append(_count("aborted_signal_epochs", n, f"{n:,} signal epochs aborted"))
    n = _int(loss.get("unacked_orders"))
    findings.append(_count("unacked_orders", n, f"{n:,} orders unacked at stop"))
    return findings


def _batching_and_replica(
    kpi: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Informative findings: ticks superseded before a solve, and the plan replica's
    divergences and repairs."""
    hedge = kpi.get("hedge") or {}
    counts = (stats.get("coordinator") or {}).get("counts") or {}
    ticks_in = _int((kpi.get("throughput") or {}).get("ticks_in"))
    superseded = _int(hedge.get("superseded_ticks"))
    share = round(superseded / ticks_in, 4) if ticks_in else None
    batching = _finding(
        "superseded_ticks", share, None, "share of ticks_in", True, "info",
        f"{superseded:,} of {ticks_in:,} ticks superseded before a solve (batching)",
        {"superseded_ticks": superseded, "ticks_in": ticks_in,
         "ticks_solved": _int(hedge.get("ticks_solved"))},
    )  # fmt: skip
    replicas = hedge.get("replicas") or {}
    replica: Mapping[str, Any] = (
        next(iter(replicas.values()), {}) if isinstance(replicas, Mapping) else {}
    )
    divergences = _int(replica.get("divergences"))
    plan_replica = _finding(
        "plan_replica", divergences, None, "divergences", True, "info",
        f"plan replica: {divergences:,} divergences, {_int(replica.get('repaired')):,} repaired, "
        f"{_int(counts.get('snapshots_sent')):,} snapshots sent",
        {"divergences": divergences, "repaired": _int(replica.get("repaired")),
         "snapshots_sent": _int(counts.get("snapshots_sent")),
         "consistent_at_stop": replica.get("consistent_at_stop")},
    )  # fmt: skip
    return [batching, plan_replica]


def verdict_of(findings: list[dict[str, Any]], bound_us: float) -> dict[str, Any]:
    """The ``health`` record from its findings: verdict, reasons (the broken ones), summary."""
    broken = [f for f in findings if not f["ok"] and f["severity"] != "info"]
    worst = max((_RANK[f["severity"]] for f in broken), default=0)
    verdict = VERDICTS[worst]
    if broken:
        summary = f"{_WORDS[verdict]} — " + ", ".join(f["text"] for f in broken)
    else:
        by_name = {f["name"]: f for f in findings}
        parts = [by_name[k]["text"] for k in ("stale_refusals", "dropped", "queueing_delay")
                 if k in by_name]  # fmt: skip
        summary = f"ok ({', '.join(parts)})"
    return {
        "verdict": verdict,
        "summary": summary,
        "reasons": [
            {k: f[k] for k in ("name", "value", "limit", "unit", "severity", "text")}
            for f in broken
        ],
        "findings": findings,
        "queueing_bound_us": bound_us,
        "rules": RULES,
    }


def health_of_result_set(run_dir: Path) -> dict[str, Any]:
    """Recompute the health of an existing result set from its ``kpi.json``, the roles' stats
    in ``proc/`` and the campaign in ``manifest.json`` (written files are left as they are)."""
    from arbsphere.kpi.analysis import load_stats

    kpi = json.loads((run_dir / "kpi.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    config = manifest.get("config") or {}
    return health_kpi(
        kpi,
        load_stats(run_dir / "proc"),
        budget_us=(config.get("coordinator") or {}).get("budget_us"),
        max_past_ms=(config.get("security") or {}).get("max_past_ms"),
    )
