"""Interval log writer: fixed header vector, round trips through our reader, hdrh's tag-aware
``HistogramLogReader`` and (when node/npm are available) the reference JavaScript reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from arbsphere.errors import DecodeError
from arbsphere.kpi.hdr import HdrRecorder, HdrSpec
from arbsphere.kpi.hlog import IntervalLogWriter, merge_by_tag, read_interval_log
from arbsphere.kpi.summary import value_at_percentile

START = 1_700_000_000.0
JS_DIR = Path(__file__).parent / "js"
TAGS = ("tick_to_trade", "feed_wire", "adapter_decode")


def _counts(hist: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts).astype(np.int64)


def _write_campaign(path: Path) -> list[tuple[str, float, float, HdrRecorder]]:
    """Three tags x three 1-s intervals of seeded data, plus one empty interval."""
    rng = np.random.default_rng(2024)
    written: list[tuple[str, float, float, HdrRecorder]] = []
    with IntervalLogWriter(path, START, comment="ArbSphere test campaign") as log:
        for second in range(3):
            for k, tag in enumerate(TAGS):
                rec = HdrRecorder()
                rec.record(rng.lognormal(10.0 + k, 1.0, 2_000 + 100 * second).astype(np.int64))
                log.write_interval(tag, float(second), 1.0, rec)
                written.append((tag, float(second), 1.0, rec))
        empty = HdrRecorder()
        log.write_interval("delta_merge", 3.0, 0.5, empty)
        written.append(("delta_merge", 3.0, 0.5, empty))
    return written


def test_header_and_line_fixed_vector(tmp_path: Path) -> None:
    path = tmp_path / "latency.hlog"
    rec = HdrRecorder()
    # 123_456_789 ns sits in the bucket of width 2**16 starting at 1883 * 65536 = 123_404_288,
    # so the HDR max is 123_469_823 ns -> Interval_Max 123.470 (ms, Java default ratio 1e6).
    rec.record(np.array([1_000, 123_456_789], dtype=np.int64))
    with IntervalLogWriter(path, START, comment="rig v0.1") as log:
        log.write_interval("tick_to_trade", 0.0, 1.0, rec)
        log.write_interval("feed_wire", 1.25, 0.75, rec.to_hdrh())
    lines = path.read_text().splitlines()
    assert lines[:5] == [
        "#rig v0.1",
        "#[Histogram log format version 1.3]",
        "#[StartTime: 1700000000.000 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]",
        "#[BaseTime: 1700000000.000 (seconds since epoch)]",
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"',
    ]
    blob = rec.to_hdrh().encode().decode()
    assert lines[5] == f"Tag=tick_to_trade,0.000,1.000,123.470,{blob}"
    assert lines[6] == f"Tag=feed_wire,1.250,0.750,123.470,{blob}"
    assert blob.startswith("HISTF")  # V2 compressed histogram cookie, base64
    assert len(lines) == 7


def test_round_trip_our_reader(tmp_path: Path) -> None:
    path = tmp_path / "latency.hlog"
    written = _write_campaign(path)
    read = read_interval_log(path)
    assert len(read) == len(written)
    for (tag, start, length, rec), got in zip(written, read, strict=True):
        assert (got.tag, got.start_s, got.length_s) == (tag, start, length)
        assert got.histogram.get_total_count() == rec.total
        assert np.array_equal(_counts(got.histogram), rec.counts)
        if rec.total:
            for p in (50.0, 99.0, 99.99):
                assert got.histogram.get_value_at_percentile(p) == value_at_percentile(
                    rec.counts, rec.spec, p
                )
            assert got.histogram.get_max_value() == rec.to_hdrh().get_max_value()
    merged = merge_by_tag(read)
    assert set(merged) == {*TAGS, "delta_merge"}
    for tag in TAGS:
        expected = np.sum([r.counts for t, _, _, r in written if t == tag], axis=0)
        assert np.array_equal(_counts(merged[tag]), expected)
        assert merged[tag].get_total_count() == int(expected.sum())
    assert merged["delta_merge"].get_total_count() == 0


def test_round_trip_hdrh_tag_aware_reader(tmp_path: Path) -> None:
    path = tmp_path / "latency.hlog"
    written = _write_campaign(path)
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000_000, 3))
    try:
        for tag, start, length, rec in written:
            hist = reader.get_next_interval_histogram()
            assert hist is not None
            assert hist.get_tag() == tag
            assert hist.get_start_time_stamp() == pytest.approx((START + start) * 1000.0)
            assert hist.get_end_time_stamp() == pytest.approx((START + start + length) * 1000.0)
            assert hist.get_total_count() == rec.total
            assert np.array_equal(_counts(hist), rec.counts)
            if rec.total:
                assert hist.get_value_at_percentile(99.9) == value_at_percentile(
                    rec.counts, rec.spec, 99.9
                )
        assert reader.get_next_interval_histogram() is None
        assert reader.get_start_time_sec() == START
    finally:
        reader.close()


def _js_reader_ready() -> str | None:
    """None when the JS reference reader can run, else the reason to skip."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed: cannot run the hdr-histogram-js reference reader"
    if not (JS_DIR / "node_modules" / "hdr-histogram-js").is_dir():
        try:
            done = subprocess.run(
                ["npm", "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=180,
            )
        except subprocess.TimeoutExpired:
            return "npm ci --prefix tests/js timed out (no registry access?)"
        if done.returncode != 0:
            return f"npm ci --prefix tests/js failed (no registry access?): {done.stderr[-300:]}"
    return None


def test_reference_javascript_reader(tmp_path: Path) -> None:
    reason = _js_reader_ready()
    if reason is not None:
        pytest.skip(reason)
    path = tmp_path / "latency.hlog"
    written = _write_campaign(path)
    done = subprocess.run(
        ["node", str(JS_DIR / "read_hlog.js"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    intervals = json.loads(done.stdout)
    assert len(intervals) == len(written)
    for (tag, start, length, rec), got in zip(written, intervals, strict=True):
        assert got["tag"] == tag
        assert got["start_s"] == pytest.approx(start, abs=1e-6)
        assert got["length_s"] == pytest.approx(length, abs=1e-6)
        assert got["total"] == rec.total
        nonzero = np.flatnonzero(rec.counts)
        assert got["counts"] == [[int(i), int(rec.counts[i])] for i in nonzero]
        if rec.total:
            assert got["max"] == rec.to_hdrh().get_max_value()


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    log = IntervalLogWriter(tmp_path / "x.hlog", START)
    rec = HdrRecorder()
    for bad in ("a,b", "has space", "tab\tx", ""):
        with pytest.raises(ValueError, match="tag") as info:
            log.write_interval(bad, 0.0, 1.0, rec)
        assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match="start_offset_s"):
        log.write_interval("ok", -1.0, 1.0, rec)
    with pytest.raises(ValueError, match="length_s"):
        log.write_interval("ok", 0.0, float("nan"), rec)
    with pytest.raises(TypeError, match="ndarray"):
        log.write_interval("ok", 0.0, 1.0, rec.counts)
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.write_interval("ok", 0.0, 1.0, rec)
    with pytest.raises(ValueError, match="single line"):
        IntervalLogWriter(tmp_path / "y.hlog", START, comment="two\nlines")


def _corrupt(tmp_path: Path, line_index: int, replace: str) -> Path:
    path = tmp_path / "latency.hlog"
    rec = HdrRecorder()
    rec.record(np.arange(1, 100, dtype=np.int64))
    with IntervalLogWriter(path, START) as log:
        log.write_interval("a", 0.0, 1.0, rec)
        log.write_interval("b", 0.0, 1.0, rec)
    lines = path.read_text().splitlines(keepends=True)
    lines[line_index] = replace
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    ("replace", "problem"),
    [
        ("Tag=b,0.000,abc,0.000,HISTFAAAA\n", "bad_number"),
        ("Tag=b,0.000,1.000,0.000\n", "bad_interval"),
        ("Tag=,0.000,1.000,0.000,HISTFAAAA\n", "bad_tag"),
        ("Tag=b,0.000,1.000,0.000,HIST!!FAAAA\n", "bad_histogram"),
        ("Tag=b,0.000,1.000,0.000,SGVsbG8gd29ybGQh\n", "bad_histogram"),
        ("#[StartTime: soon]\n", "bad_header"),
    ],
)
def test_reader_names_problem_and_line(tmp_path: Path, replace: str, problem: str) -> None:
    path = _corrupt(tmp_path, 5, replace)  # line 6 is the second interval
    with pytest.raises(DecodeError) as info:
        read_interval_log(path)
    assert info.value.problem == problem
    assert "line 6" in info.value.detail
    header_len = len("".join(path.read_text().splitlines(keepends=True)[:5]))
    assert info.value.offset >= header_len


def test_reader_accepts_untagged_lines_and_deduces_base_time(tmp_path: Path) -> None:
    rec = HdrRecorder()
    rec.record(np.array([5, 6, 7], dtype=np.int64))
    blob = rec.to_hdrh().encode().decode()
    path = tmp_path / "plain.hlog"
    # No StartTime/BaseTime: like the reference readers, the first timestamp is the start.
    path.write_text(f"{START + 2:.3f},1.000,0.000,{blob}\n{START + 3:.3f},1.000,0.000,{blob}\n")
    read = read_interval_log(path)
    assert [(i.tag, i.start_s) for i in read] == [("", 0.0), ("", 1.0)]
    assert HdrSpec.of_histogram(read[0].histogram) == rec.spec
