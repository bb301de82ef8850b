"""The result-set writer: the manifest lists exactly the files written or adopted with their
SHA-256, ``verify`` passes on it and catches a file changed afterwards, an incomplete status
carries its reason, and nothing is written outside the directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arbsphere.errors import ResultSetError
from arbsphere.kpi.resultset import (
    RESULT_SET_FORMAT,
    ResultSetWriter,
    file_hashes,
    sha256_file,
)
from arbsphere.kpi.verify import verify_result_set

NOW_NS = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def _writer(tmp_path: Path, **kw: object) -> ResultSetWriter:
    return ResultSetWriter.new(tmp_path, "unit", NOW_NS, **kw)  # type: ignore[arg-type]


def test_manifest_lists_exactly_the_files_written(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    assert w.run_dir == tmp_path / "unit" / "20231114T221320Z"
    w.write_json("kpi.json", {"b": 1, "a": 2}, sort_keys=False)
    w.write_bytes("campaign.toml", b"[campaign]\n")
    w.write_with("trace/table.bin", lambda p: p.write_bytes(b"\x00\x01"))
    (w.run_dir / "proc").mkdir()
    (w.run_dir / "proc" / "venue.stats.json").write_text("{}")
    (w.run_dir / "proc" / "venue.trace.npy").write_bytes(b"npy")
    assert w.adopt("proc") == ["proc/venue.stats.json", "proc/venue.trace.npy"]
    (w.run_dir / "stray.txt").write_text("not the writer's")  # neither written nor adopted
    w.set_status(complete=True)
    w.add({"schedule": {"rate_hz": 100.0}})
    manifest = w.finish()

    on_disk = json.loads((w.run_dir / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert set(on_disk["files"]) == {
        "kpi.json", "campaign.toml", "trace/table.bin",
        "proc/venue.stats.json", "proc/venue.trace.npy",
    }  # fmt: skip
    for rel, digest in on_disk["files"].items():
        assert sha256_file(w.run_dir / rel) == digest, rel
    assert list(json.loads((w.run_dir / "kpi.json").read_text())) == ["b", "a"]
    assert on_disk["format"] == RESULT_SET_FORMAT and "kind" not in on_disk
    assert on_disk["campaign"] == "unit" and on_disk["run_id"] == w.run_dir.name
    assert on_disk["status"] == "complete" and on_disk["incomplete_reason"] is None
    assert on_disk["created_utc"] == "2023-11-14T22:13:20Z"
    assert on_disk["schedule"] == {"rate_hz": 100.0}
    assert on_disk["versions"]["arbsphere"] and "commit" in on_disk["git"]
    assert on_disk["host"]["cpus"] == os.cpu_count()
    report = verify_result_set(w.run_dir)
    assert report.files_checked == 5 and report.unlisted == ("stray.txt",)


def test_adopt_rest_takes_every_unrecorded_file(tmp_path: Path) -> None:
    w = _writer(tmp_path, kind="rate-sweep")
    w.write_json("kpi.json", {})
    (w.run_dir / "rate-1hz").mkdir()
    (w.run_dir / "rate-1hz" / "manifest.json").write_text("{}")  # a nested result set's
    (w.run_dir / "identities.json").write_text("{}")
    assert w.adopt_rest() == ["identities.json", "rate-1hz/manifest.json"]
    w.set_status(complete=True)
    manifest = w.finish()
    assert manifest["kind"] == "rate-sweep"
    assert manifest["files"] == file_hashes(w.run_dir)
    assert verify_result_set(w.run_dir).unlisted == ()


def test_a_file_changed_after_writing_fails_verify(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    w.write_json("kpi.json", {"p99": 1.0})
    (w.run_dir / "kpi.json").write_text('{"p99": 0.5}\n')  # changed before the manifest
    w.set_status(complete=True)
    w.finish()
    with pytest.raises(ResultSetError, match=r"kpi\.json: SHA-256 is .*, the manifest says"):
        verify_result_set(w.run_dir)


def test_an_incomplete_status_carries_its_reason(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ResultSetError, match="needs its reason"):
        w.set_status(complete=False)
    with pytest.raises(ResultSetError, match="needs its reason"):
        w.set_status(complete=False, reason="  ")
    w.set_status(complete=False, reason="venue_a-device stopped answering")
    manifest = w.finish()
    assert manifest["status"] == "incomplete"
    assert manifest["incomplete_reason"] == "venue_a-device stopped answering"
    assert json.loads((w.run_dir / "manifest.json").read_text())["status"] == "incomplete"


def test_no_manifest_without_a_status(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ResultSetError, match="set_status"):
        w.finish()
    assert not (w.run_dir / "manifest.json").exists()


@pytest.mark.parametrize("rel", ["../escape.json", "/tmp/escape.json", "a/../../escape.json", ""])
def test_writing_outside_the_directory_is_refused(tmp_path: Path, rel: str) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ResultSetError, match=r"unit/20231114T221320Z: .*inside the result set"):
        w.write_json(rel, {})
    assert not (tmp_path / "unit" / "escape.json").exists()
    assert not (tmp_path / "escape.json").exists()


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (w.run_dir / "link").symlink_to(outside)
    with pytest.raises(ResultSetError, match="outside the result set"):
        w.write_bytes("link/x.bin", b"x")
    assert not (outside / "x.bin").exists()


def test_the_manifest_is_the_writers_alone(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ResultSetError, match="written by finish"):
        w.write_json("manifest.json", {})
    with pytest.raises(ResultSetError, match="'status' is written by the result-set writer"):
        w.add({"status": "complete"})
    w.set_status(complete=True)
    w.finish()
    with pytest.raises(ResultSetError, match="finished"):
        w.write_json("late.json", {})
    with pytest.raises(ResultSetError, match="finished"):
        w.finish()


def test_an_existing_directory_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "kpi.json").write_text("{}")
    with pytest.raises(ResultSetError, match="already exists"):
        ResultSetWriter(tmp_path / "run", "unit", NOW_NS)
    assert (tmp_path / "run" / "kpi.json").read_text() == "{}"
    second = _writer(tmp_path)
    third = _writer(tmp_path)  # same second: the next free name
    assert third.run_dir.name == second.run_dir.name + "-2"


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ResultSetError, match=r"report\.html.*left no file"):
        w.write_with("report.html", lambda p: None)
