"""Typed, read-only access to a result set: ``kpi.json`` stages, the manifest's provenance.

``ResultSetView.load(run_dir)`` reads ``kpi.json`` and ``manifest.json`` of a finished run (made
here or elsewhere) and answers what CI gates ask: a stage's percentiles with its clock-alignment
bound (:class:`StageKpi`), any other KPI by dotted path (``loss.dropped``), the manifest's
SHA-256, git revision and timestamp source per link, and the capabilities the probed devices
showed (:data:`CAPABILITIES`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbsphere.errors import ConfigError, ResultSetError
from arbsphere.kpi.resultset import sha256_file

#: the percentile keys of a stage in ``kpi.json``
PERCENTILES = ("p50", "p90", "p99", "p999", "p9999", "max")

#: capability name -> what it means (judged from the manifest's ``devices`` probe findings)
CAPABILITIES = {
    "hardware_rx_timestamps": "every UDP device's interface gives hardware receive stamps",
    "serial_low_latency": "every serial device runs with ASYNC_LOW_LATENCY in effect",
}


@dataclass(frozen=True)
class StageKpi:
    """One latency stage of ``kpi.json``: percentiles in ``unit`` and the ±clk bound."""

    name: str
    unit: str
    count: int
    percentiles: Mapping[str, float | None]
    uncertainty_us: float
    synchronised: bool

    def value_us(self, percentile: str) -> float | None:
        """``percentile`` (``p50`` ... ``max``) in µs, or None when the stage has no samples."""
        if percentile not in self.percentiles:
            raise ConfigError(
                f"stage {self.name!r} has no percentile {percentile!r} "
                f"(known: {', '.join(self.percentiles)})",
                key="percentile",
            )
        v = self.percentiles[percentile]
        return None if v is None else v * _US_PER[self.unit]


_US_PER = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def is_latency_section(section: object) -> bool:
    """True for a ``kpi.json`` section shaped like a latency stage (unit + percentiles)."""
    return (
        isinstance(section, Mapping)
        and section.get("unit") in _US_PER
        and "p50" in section
        and "uncertainty_us" in section
    )


@dataclass(frozen=True)
class ResultSetView:
    """A result set's ``kpi.json`` and ``manifest.json``, read once."""

    run_dir: Path
    kpi: Mapping[str, Any]
    manifest: Mapping[str, Any]

    @classmethod
    def load(cls, run_dir: Path) -> ResultSetView:
        """Read ``run_dir``; :class:`ResultSetError` naming the file when one is missing."""
        files = {}
        for name in ("kpi.json", "manifest.json"):
            path = run_dir / name
            try:
                files[name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ResultSetError(f"{path}: cannot read the result set: {exc}") from exc
        return cls(run_dir, files["kpi.json"], files["manifest.json"])

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    @property
    def incomplete_reason(self) -> str:
        return str(self.manifest.get("incomplete_reason") or "")

    @property
    def manifest_sha256(self) -> str:
        return sha256_file(self.run_dir / "manifest.json")

    @property
    def git_revision(self) -> str | None:
        """The commit the run was made from (``+dirty`` appended), None outside a checkout."""
        git = self.manifest.get("git")
        if not isinstance(git, Mapping) or not git.get("commit"):
            return None
        return str(git["commit"]) + ("+dirty" if git.get("dirty") else "")

    @property
    def timestamp_sources(self) -> dict[str, str]:
        """Per link: ``"rx=<source> tx=<source>"`` from the manifest's ``timestamps``."""
        stamps = self.manifest.get("timestamps") or {}
        return {
            link: f"rx={s.get('rx', '?')} tx={s.get('tx', '?')}"
            for link, s in sorted(stamps.items())
        }

    def section(self, path: str) -> Any:
        """A ``kpi.json`` section: a stage name (``stages.<name>`` first, then the top level,
        e.g. ``tick_to_trade``) or a dotted path (``loss``, ``hedge.rounds_per_tick``)."""
        stages = self.kpi.get("stages") or {}
        if path in stages:
            return stages[path]
        node: Any = self.kpi
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                known = sorted(set(stages) | set(self.kpi))
                raise ConfigError(
                    f"kpi.json has no {path!r} (stages and sections: {', '.join(known)})",
                    key="stage",
                )
            node = node[part]
        return node

    def stage(self, name: str) -> StageKpi:
        """The latency stage ``name`` (e.g. ``tick_to_trade``, ``solve``)."""
        s = self.section(name)
        if not is_latency_section(s):
            raise ConfigError(f"kpi.json {name!r} is not a latency stage", key="stage")
        return StageKpi(
            name=name,
            unit=str(s["unit"]),
            count=int(s.get("count", 0)),
            percentiles={p: s.get(p) for p in PERCENTILES if p in s},
            uncertainty_us=float(s.get("uncertainty_us") or 0.0),
            synchronised=bool(s.get("synchronised", True)),
        )

    def capability(self, name: str) -> tuple[bool, str]:
        """Whether the probed devices have capability ``name`` (:data:`CAPABILITIES`), and
        why not (the devices lacking it) when they do not."""
        if name not in CAPABILITIES:
            raise ConfigError(
                f"unknown capability {name!r} (known: {', '.join(CAPABILITIES)})",
                key="arb_requires",
            )
        devices: Mapping[str, Any] = self.manifest.get("devices") or {}
        if name == "hardware_rx_timestamps":
            judged = {
                d: bool(f["timestamping"].get("hardware_rx"))
                for d, f in devices.items()
                if isinstance(f.get("timestamping"), Mapping)
            }
            kind = "UDP device with timestamping findings"
        else:
            judged = {
                d: _low_latency_in_effect(f)
                for d, f in devices.items()
                if f.get("link") == "serial"
            }
            kind = "serial device"
        lacking = sorted(d for d, ok in judged.items() if not ok)
        if not judged:
            return False, f"{name}: the result set has no {kind}"
        if lacking:
            return False, f"{name}: lacking on {', '.join(lacking)} ({CAPABILITIES[name]})"
        return True, ""


def _low_latency_in_effect(finding: Mapping[str, Any]) -> bool:
    settings = finding.get("settings") or {}
    return bool((settings.get("in_effect") or {}).get("low_latency"))
