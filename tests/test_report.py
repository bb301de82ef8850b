"""Self-contained HTML report rendered from a synthetic kpi record and a small interval log."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np

from arbsphere.kpi.hdr import HdrRecorder
from arbsphere.kpi.hlog import IntervalLogWriter
from arbsphere.kpi.report import render_report
from arbsphere.kpi.summary import latency_summary

STAGES = ("feed_wire", "adapter_decode", "coordinator_solve")


def _fixture(tmp_path: Path) -> tuple[dict[str, object], Path]:
    rng = np.random.default_rng(5)
    hlog = tmp_path / "latency.hlog"
    recorders = {name: HdrRecorder() for name in ("tick_to_trade", *STAGES)}
    with IntervalLogWriter(hlog, 1_700_000_000.0) as log:
        for second in range(2):
            for k, (name, total) in enumerate(recorders.items()):
                values = rng.lognormal(10.0 + 0.3 * k, 0.8, 3_000).astype(np.int64)
                rec = HdrRecorder()
                rec.record(values)
                total.record(values)
                log.write_interval(name, float(second), 1.0, rec)
    kpi: dict[str, object] = {
        "tick_to_trade": latency_summary(recorders["tick_to_trade"]),
        "stages": {name: latency_summary(recorders[name]) for name in STAGES},
        "delta_merge": latency_summary(HdrRecorder()),
        "hedge": {
            "ticks_solved": 6000,
            "max_abs_net_delta": 0,
            "objective_gap_vs_centralized": {"p50": 1.25e-05, "max": 0.0031},
        },
        "throughput": {"ticks_in": 6000, "ticks_per_s": 2999.5, "orders_out": 412},
        "loss": {"gaps": 2, "crc_errors": 1, "dropped": 0},
        "clock_sync": {"feed_a": {"offset_bound_ns": 850}},
    }
    return kpi, hlog


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    kpi, hlog = _fixture(tmp_path)
    manifest: dict[str, object] = {
        "campaign": "loopback-smoke",
        "run_id": "20240101T000000Z-1a2b",
        "status": "complete",
    }
    out = tmp_path / "report.html"
    render_report(kpi, hlog, manifest, out)
    doc = out.read_text(encoding="utf-8")

    assert doc.startswith("<!DOCTYPE html>")
    assert doc.count("<html") == 1 and doc.rstrip().endswith("</html>")
    assert "loopback-smoke" in doc and "20240101T000000Z-1a2b" in doc
    assert 'class="status complete"' in doc
    for name in ("tick_to_trade", *STAGES, "delta_merge"):
        assert f"<th>{name}</th>" in doc
    p99 = kpi["stages"]["adapter_decode"]["p99"]  # type: ignore[index]
    assert f'<td class="num">{p99:.3f}</td>' in doc
    assert "n/a" in doc  # delta_merge has no samples: null, not zero
    for key in ("ticks_per_s", "2999.5", "objective_gap_vs_centralized.max", "crc_errors"):
        assert key in doc
    assert '<td class="num">1.25e-05</td>' in doc  # small floats keep their digits
    assert "offset_bound_ns" in doc  # unknown sections rendered generically

    match = re.search(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', doc)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in doc and "https://" not in doc
    assert "<script" not in doc and "<link" not in doc


def test_incomplete_run_shows_reason_and_escapes_text(tmp_path: Path) -> None:
    kpi = {"tick_to_trade": latency_summary(HdrRecorder()), "loss": {"dropped": 3}}
    manifest: dict[str, object] = {
        "campaign": {"name": "lab <A&B>"},
        "run_id": "r1",
        "status": "incomplete",
        "incomplete_reason": "broker device stopped answering <timeout>",
        "host": "rig-01",
    }
    out = tmp_path / "report.html"
    render_report(kpi, None, manifest, out)
    doc = out.read_text(encoding="utf-8")
    assert 'class="status incomplete"' in doc
    assert "broker device stopped answering &lt;timeout&gt;" in doc
    assert "lab &lt;A&amp;B&gt;" in doc
    assert "<A&B>" not in doc
    assert "no interval log histograms to plot" in doc
    assert "rig-01" in doc
    assert "http://" not in doc and "https://" not in doc


def test_latency_legend_sits_beside_the_curves_not_on_them(tmp_path: Path) -> None:
    """A real run's report hid the low percentiles of its curves under the legend (placed in
    the upper left, where a log-latency plot's slowest stages start): the legend now sits to
    the right of the plotting area, inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from arbsphere.kpi.report import percentile_figure

    rng = np.random.default_rng(3)
    hlog = tmp_path / "latency.hlog"
    tags = [f"stage_{k:02d}" for k in range(11)] + ["tick_to_trade"]
    with IntervalLogWriter(hlog, 1_700_000_000.0) as log:
        for k, name in enumerate(tags):
            rec = HdrRecorder()
            rec.record(rng.lognormal(8.0 + 0.5 * k, 1.0, 2_000).astype(np.int64))
            log.write_interval(name, 0.0, 1.0, rec)
    fig = percentile_figure(hlog)
    assert fig is not None
    canvas = FigureCanvasAgg(fig)
    fig.tight_layout()
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == len(tags)
    axes_box = ax.get_window_extent(renderer)
    legend_box = legend.get_window_extent(renderer)
    assert legend_box.x0 >= axes_box.x1  # beside the plotting area, not over it
    assert legend_box.x1 <= fig.bbox.x1 + 0.5  # and not cut off at the figure's edge
    assert not axes_box.overlaps(legend_box)


def test_a_stage_that_is_also_a_headline_key_is_listed_once(tmp_path: Path) -> None:
    """kpi.json carries delta_merge twice (a stage, and the headline key the issue asks for):
    the latency table showed it twice. Same record: one row; different figures: both rows,
    told apart."""
    from arbsphere.kpi.report import _latency_rows

    kpi, _ = _fixture(tmp_path)
    stages = kpi["stages"]
    assert isinstance(stages, dict)
    stages["delta_merge"] = kpi["delta_merge"] = {"count": 40, "p50": 36.9, "unit": "us"}
    names = [name for name, _ in _latency_rows(kpi)]
    assert names.count("delta_merge") == 1 and len(names) == len(set(names))
    assert names == ["tick_to_trade", *STAGES, "delta_merge"]
    kpi["delta_merge"] = {"count": 41, "p50": 99.0, "unit": "us"}
    names = [name for name, _ in _latency_rows(kpi)]
    assert names[-2:] == ["delta_merge", "delta_merge (kpi.delta_merge)"]


def test_clock_section_is_one_row_per_device_and_keeps_every_figure(tmp_path: Path) -> None:
    """The clock KPIs were ~20 flattened rows per device ("devices.venue_a-device.offset_us"):
    now one row per device with a column per figure, rejections summed with their non-zero
    reasons, a key no column names still shown, and the section's other keys kept."""
    kpi, hlog = _fixture(tmp_path)
    dev = {
        "device_id": 10, "exchanged_by": "venue_a", "exchanges": 439, "admitted": 435,
        "rejected": {"duplicate": 0, "late": 3, "unmatched": 1}, "steps": 0,
        "synchronised": True, "offset_us": -2.539, "drift_ppm": 0.0234,
        "path_delay_us": 9.208, "min_rtt_us": 14.872, "residual_us": 0.591,
        "uncertainty_us": 9.52, "state": "locked", "locked_fraction": 0.7995,
    }  # fmt: skip
    kpi["clock"] = {
        "devices": {"venue_a-device": dev, "broker-device": {**dev, "temperature_c": 41.5}},
        "excluded_samples": 7,
        "note": "uncertainty bounds every percentile",
    }
    out = tmp_path / "report.html"
    render_report(kpi, hlog, {"campaign": "c", "run_id": "r", "status": "complete"}, out)
    doc = out.read_text(encoding="utf-8")
    section = doc[doc.index("<h2>Clock</h2>") :]
    section = section[: section.index("<h2>", 5)] if "<h2>" in section[5:] else section
    assert "devices.venue_a-device" not in section
    assert section.count(">venue_a-device<br><small>id 10 · via venue_a</small>") == 1
    assert section.count(">broker-device<br>") == 1
    assert ">435 / 439<" in section  # admitted / exchanges
    assert "<th>offset µs</th>" in section and "-2.539" in section and "0.7995" in section
    assert "4 (late 3, unmatched 1)" in section  # the total and each non-zero reason
    assert "<th>temperature_c</th>" in section and "41.5" in section  # no figure dropped
    assert "excluded_samples" in section and "uncertainty bounds every percentile" in section
    # a device table without "admitted": its exchanges get a column of their own
    del dev["admitted"]
    kpi["clock"] = {"devices": {"venue_a-device": dev}}
    render_report(kpi, hlog, {"campaign": "c", "run_id": "r", "status": "complete"}, out)
    section = out.read_text(encoding="utf-8").split("<h2>Clock</h2>")[1]
    assert "<th>exchanges</th>" in section and ">439<" in section
