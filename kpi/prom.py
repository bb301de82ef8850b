"""``kpi.prom``: the run's headline latencies as OpenMetrics text, for Prometheus-style tooling.

Per stage (and ``tick_to_trade``), from ``kpi.json``: the percentiles p50, p90, p99, p99.9 and
the max, the sample count and the clock-uncertainty bound, in seconds (the Prometheus base
unit; ``kpi.json`` holds microseconds). Every sample is labelled with the campaign, the run id
and the host name (the manifest's ``host.hostname``); ``arbsphere_run_info`` carries the rest
of the run's identity (status, git commit, a digest of the manifest's host fingerprint). A
percentile ``kpi.json`` has no value for (a stage with no samples) and an unsynchronised
stage's uncertainty are left out rather than written as NaN.

The text is produced by ``prometheus_client``'s OpenMetrics exposition, so it parses with its
parsers (``prometheus_client.openmetrics.parser``) and with Prometheus itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest

__all__ = ["PROM_FILE", "QUANTILES", "openmetrics_text"]

PROM_FILE = "kpi.prom"
#: kpi.json percentile key -> OpenMetrics quantile label
QUANTILES = {"p50": "0.5", "p90": "0.9", "p99": "0.99", "p999": "0.999"}
_LABELS = ("campaign", "run_id", "host")


def openmetrics_text(kpi: Mapping[str, Any], manifest: Mapping[str, Any]) -> bytes:
    """The OpenMetrics text of ``kpi`` (a ``kpi.json``) for the run ``manifest`` describes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_KpiCollector(kpi, manifest))
    return generate_latest(registry)


def _stages(kpi: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``tick_to_trade`` then every stage of ``kpi.json``, in pipeline order."""
    out: dict[str, Mapping[str, Any]] = {}
    if isinstance(kpi.get("tick_to_trade"), Mapping):
        out["tick_to_trade"] = kpi["tick_to_trade"]
    for name, stage in (kpi.get("stages") or {}).items():
        if isinstance(stage, Mapping):
            out[name] = stage
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _KpiCollector:
    """A one-shot prometheus_client collector over one ``kpi.json``."""

    def __init__(self, kpi: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        self.kpi = kpi
        self.manifest = manifest
        host = manifest.get("host") or {}
        self.run = [
            str(manifest.get("campaign", "")),
            str(manifest.get("run_id", "")),
            str(host.get("hostname", "") if isinstance(host, Mapping) else ""),
        ]

    def collect(self) -> Iterator[Metric]:
        run, labels = self.run, [*_LABELS, "stage"]
        latency = GaugeMetricFamily(
            "arbsphere_latency", "stage latency at a percentile", labels=[*labels, "quantile"],
            unit="seconds",
        )  # fmt: skip
        peak = GaugeMetricFamily(
            "arbsphere_latency_max", "largest stage latency", labels=labels, unit="seconds"
        )
        samples = GaugeMetricFamily(
            "arbsphere_latency_samples", "latency samples recorded in the measured window",
            labels=labels,
        )  # fmt: skip
        bound = GaugeMetricFamily(
            "arbsphere_latency_uncertainty",
            "clock-uncertainty bound of every percentile of the stage", labels=labels,
            unit="seconds",
        )  # fmt: skip
        for name, stage in _stages(self.kpi).items():
            for key, quantile in QUANTILES.items():
                if (value := _number(stage.get(key))) is not None:
                    latency.add_metric([*run, name, quantile], value / 1e6)
            if (value := _number(stage.get("max"))) is not None:
                peak.add_metric([*run, name], value / 1e6)
            if (value := _number(stage.get("count"))) is not None:
                samples.add_metric([*run, name], value)
            if (value := _number(stage.get("uncertainty_us"))) is not None:
                bound.add_metric([*run, name], value / 1e6)
        yield from (latency, peak, samples, bound)
        yield self._info()

    def _info(self) -> InfoMetricFamily:
        git = self.manifest.get("git") or {}
        host = json.dumps(self.manifest.get("host"), sort_keys=True).encode()
        info = InfoMetricFamily("arbsphere_run", "the run these values come from", labels=_LABELS)
        info.add_metric(self.run, {
            "status": str(self.manifest.get("status", "")),
            "git_commit": str(git.get("commit") if isinstance(git, Mapping) else ""),
            "host_fingerprint": hashlib.sha256(host).hexdigest()[:16],
        })  # fmt: skip
        return info
