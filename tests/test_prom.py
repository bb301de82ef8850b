"""``kpi.prom``: a fixed ``kpi.json`` as OpenMetrics text, read back with ``prometheus_client``'s
OpenMetrics parser; every value equals ``kpi.json``'s (in seconds), every sample carries the
campaign, run id and host. A real run's ``kpi.prom`` is checked in ``test_campaign``."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from arbsphere.kpi.prom import QUANTILES, openmetrics_text

KPI: dict[str, Any] = {
    "tick_to_trade": {"unit": "us", "count": 2999, "p50": 41.3, "p90": 55.1, "p99": 80.25,
                      "p999": 120.0, "p9999": 130.5, "max": 131.0, "uncertainty_us": 2.5},
    "stages": {
        "feed_wire": {"unit": "us", "count": 2999, "p50": 7.1, "p90": 9.0, "p99": 12.0,
                      "p999": 20.5, "p9999": 21.0, "max": 22.0, "uncertainty_us": 1.25},
        "solve": {"unit": "us", "count": 0, "p50": None, "p90": None, "p99": None,
                  "p999": None, "p9999": None, "max": None, "uncertainty_us": None},
    },
}  # fmt: skip
MANIFEST = {
    "campaign": "loopback",
    "run_id": "20260101T000000Z",
    "status": "complete",
    "git": {"commit": "ab" * 20, "dirty": False},
    "host": {"hostname": "rig-01", "machine": "x86_64"},
}
RUN = {"campaign": "loopback", "run_id": "20260101T000000Z", "host": "rig-01"}


def parse(text: bytes) -> dict[tuple[str, str, str], float]:
    """(sample name, stage, quantile) -> value; asserts every sample's run labels."""
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            assert {k: s.labels[k] for k in RUN} == RUN, s
            out[s.name, s.labels.get("stage", ""), s.labels.get("quantile", "")] = s.value
    return out


def test_values_equal_kpi_json() -> None:
    text = openmetrics_text(KPI, MANIFEST)
    assert text.endswith(b"# EOF\n")
    got = parse(text)
    for stage, values in [("tick_to_trade", KPI["tick_to_trade"]), *KPI["stages"].items()]:
        for key, q in QUANTILES.items():
            if values[key] is None:  # no samples: left out, not NaN
                assert ("arbsphere_latency_seconds", stage, q) not in got
                continue
            assert got["arbsphere_latency_seconds", stage, q] == pytest.approx(
                values[key] / 1e6, rel=1e-12
            )
        assert got["arbsphere_latency_samples", stage, ""] == values["count"]
        if values["max"] is not None:
            assert got["arbsphere_latency_max_seconds", stage, ""] == values["max"] / 1e6
            bound = got["arbsphere_latency_uncertainty_seconds", stage, ""]
            assert bound == values["uncertainty_us"] / 1e6
    assert got["arbsphere_latency_seconds", "tick_to_trade", "0.99"] == 80.25e-6
    assert got["arbsphere_run_info", "", ""] == 1.0


def test_run_info_names_status_and_commit() -> None:
    families = {
        f.name: f for f in text_string_to_metric_families(openmetrics_text(KPI, MANIFEST).decode())
    }
    (info,) = families["arbsphere_run"].samples
    assert info.labels["status"] == "complete" and info.labels["git_commit"] == "ab" * 20
    assert len(info.labels["host_fingerprint"]) == 16
