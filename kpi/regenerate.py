"""``arbsphere report RUN_DIR``: regenerate a campaign run's ``report.html`` from its result set.

Everything :func:`render_report` draws is read back from the set: ``kpi.json``,
``latency.hlog``, the manifest (without its ``files``, as the run rendered it), each device's
clock offset history (``clock-<device>.history.npy``) and, for a federated run, the per-round
convergence gaps from ``proc/``. Every input must match its SHA-256 in ``manifest.json`` —
a report is only regenerated from the data the run recorded (and, when signed, its authority
signed). An input the set lacks (a trimmed published set without ``proc/``, say) is left out of
the page, and the notes returned say what was left out.

The manifest is never rewritten, so the regenerated page's hash differs from the manifest's
whenever rendering changed (another version of the rig, of matplotlib): ``arbsphere verify``
reports ``report.html`` as regenerated, not failed (see :mod:`arbsphere.kpi.verify`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.errors import ResultSetError
from arbsphere.kpi.federated_baseline import round_gaps
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import MANIFEST, REPORT, sha256_file

__all__ = ["REPORT", "RegeneratedReport", "regenerate_report"]

_HISTORY = re.compile(r"clock-(?P<device>.+)\.history\.npy")


@dataclass(frozen=True)
class RegeneratedReport:
    """Where the report went, and what the result set lacked for it."""

    path: Path
    notes: tuple[str, ...]


def regenerate_report(run_dir: Path, out_path: Path | None = None) -> RegeneratedReport:
    """Render ``run_dir``'s report again, to ``out_path`` (default: ``run_dir/report.html``).

    Raises :class:`ResultSetError` for a directory that is not a finished campaign run's result
    set, or whose inputs no longer match the manifest."""
    run_dir = Path(run_dir)
    manifest = _read_json(run_dir, MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ResultSetError(f"{run_dir / MANIFEST}: no 'files' (not a finished result set)")
    if manifest.get("kind") is not None:
        raise ResultSetError(
            f"{run_dir}: a {manifest['kind']} result set; arbsphere report regenerates a single "
            "campaign run's report"
        )
    notes: list[str] = []
    kpi = _read_json(run_dir, "kpi.json", files)
    hlog: Path | None = run_dir / "latency.hlog"
    if not _input(run_dir, "latency.hlog", files):
        notes.append("latency.hlog not in the result set: no percentile spectrum")
        hlog = None
    histories = {
        m["device"]: history
        for rel in sorted(files)
        if (m := _HISTORY.fullmatch(rel)) and _input(run_dir, rel, files)
        if len(history := np.load(run_dir / rel, allow_pickle=False))
    }
    convergence = _convergence(run_dir, manifest, files, notes)
    shown = {k: v for k, v in manifest.items() if k != "files"}  # as the run rendered it
    out = Path(out_path) if out_path is not None else run_dir / REPORT
    render_report(kpi, hlog, shown, out, clock_histories=histories, convergence=convergence)
    return RegeneratedReport(out, tuple(notes))


def _convergence(
    run_dir: Path, manifest: dict[str, Any], files: dict[str, Any], notes: list[str]
) -> dict[str, np.ndarray] | None:
    """A federated run's per-round gaps from ``proc/`` (None: central, or ``proc/`` absent)."""
    proc = [rel for rel in files if rel.startswith("proc/")]
    if not proc:
        notes.append("proc/ not in the result set: no per-round convergence plot")
        return None
    for rel in proc:
        _input(run_dir, rel, files)
    config = manifest.get("config") or {}
    venues = [str(v.get("name")) for v in config.get("venues", []) if isinstance(v, dict)]
    per_round = round_gaps(run_dir / "proc", venues)
    if per_round is None:
        return None
    return {c: per_round[c].to_numpy() for c in per_round.columns}


def _input(run_dir: Path, rel: str, files: dict[str, Any]) -> bool:
    """Whether ``rel`` is in the result set; refuses one that differs from the manifest."""
    path = run_dir / rel
    if rel not in files or not path.is_file():
        return False
    actual = sha256_file(path)
    if actual != files[rel]:
        raise ResultSetError(
            f"{rel}: SHA-256 is {actual[:16]}…, the manifest says {str(files[rel])[:16]}…; "
            "the report is regenerated only from the data the run recorded"
        )
    return True


def _read_json(run_dir: Path, rel: str, files: dict[str, Any] | None = None) -> dict[str, Any]:
    if files is not None and not _input(run_dir, rel, files):
        raise ResultSetError(f"{run_dir}: {rel} is not in the result set")
    try:
        data = json.loads((run_dir / rel).read_text("utf-8"))
    except FileNotFoundError:
        raise ResultSetError(f"{run_dir}: no {rel} (not a result set)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultSetError(f"{run_dir / rel}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultSetError(f"{run_dir / rel}: not a JSON object")
    return data
