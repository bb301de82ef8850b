"""``arbsphere report RUN_DIR``: a result set written by :class:`ResultSetWriter` (the report
fixture's kpi.json and latency.hlog, no campaign run) gets its report.html back after it was
deleted, with the same sections, without touching the manifest; an input changed since the
manifest is refused; what the set lacks is noted. A real run's report is regenerated in
``test_campaign``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_report import _fixture

from arbsphere.clocksync.model import HISTORY_DTYPE
from arbsphere.errors import ResultSetError
from arbsphere.kpi.regenerate import regenerate_report
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import ResultSetWriter
from arbsphere.kpi.verify import verify_result_set
from arbsphere.rig.cli import main


def _sections(path: Path) -> list[str]:
    return re.findall(r"<h2[^>]*>(.*?)</h2>", path.read_text())


def _result_set(tmp_path: Path) -> Path:
    kpi, hlog = _fixture(tmp_path)
    out = ResultSetWriter(tmp_path / "run", "loopback", 1_700_000_000_000_000_000)
    out.write_json("kpi.json", kpi, sort_keys=False)
    out.write_bytes("latency.hlog", hlog.read_bytes())
    history = np.zeros(20, dtype=HISTORY_DTYPE)
    history["time_ns"] = 1_700_000_000_000_000_000 + np.arange(20) * 100_000_000
    history["offset_ns"] = 120.0 + np.arange(20)
    out.write_with("clock-feed_a.history.npy", lambda p: np.save(p, history))
    out.set_status(True)
    out.write_with("report.html", lambda p: render_report(
        kpi, out.path("latency.hlog"), out.manifest(), p,
        clock_histories={"feed_a": history},
    ))  # fmt: skip
    out.finish()
    return out.run_dir


def test_deleted_report_regenerates_with_the_same_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _result_set(tmp_path)
    before = _sections(run_dir / "report.html")
    manifest = (run_dir / "manifest.json").read_bytes()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert "proc/ not in the result set" in capsys.readouterr().out
    assert _sections(run_dir / "report.html") == before and len(before) > 3
    assert (run_dir / "manifest.json").read_bytes() == manifest
    verify_result_set(run_dir)  # regenerated: verifies (noted when its bytes differ)


def test_edited_report_is_reported_as_regenerated_not_failed(tmp_path: Path) -> None:
    run_dir = _result_set(tmp_path)
    (run_dir / "report.html").write_text("<html>edited</html>")
    report = verify_result_set(run_dir)
    assert report.report_regenerated
    assert any("report.html differs" in line for line in report.lines())


def test_input_changed_since_the_manifest_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _result_set(tmp_path)
    with (run_dir / "latency.hlog").open("ab") as fh:
        fh.write(b"#tampered\n")
    with pytest.raises(ResultSetError, match=r"latency\.hlog: SHA-256 is .* the manifest says"):
        regenerate_report(run_dir, tmp_path / "elsewhere.html")
    assert main(["report", str(run_dir)]) == 1
    assert main(["report", str(tmp_path / "nothing")]) == 2
