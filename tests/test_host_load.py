"""The host-load monitor against processes of known CPU use, and /proc parsing on fixed files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbsphere.rig.host_load import _TICKS_PER_S, LoadMonitor, sample_host, sample_process

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

BURN = """
import sys, time
sys.stdout.write("go\\n"); sys.stdout.flush()
sys.stdin.readline()  # start burning when told
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
sys.stdout.write("done\\n"); sys.stdout.flush()
sys.stdin.readline()  # hold (idle) until told to exit
"""


def _tell(p: subprocess.Popen[str]) -> None:
    assert p.stdin is not None
    p.stdin.write("\n")
    p.stdin.flush()


def _child(cpu_s: float) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", BURN, str(cpu_s)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline() == "go\n"
    return p


def test_a_burner_is_charged_its_cpu_time_and_a_sleeper_none() -> None:
    burner = _child(0.6)
    sleeper = _child(0.0)
    clock = time.monotonic_ns
    mon = LoadMonitor({"burner": burner.pid, "sleeper": sleeper.pid}, clock)
    try:
        mon.start()
        for p in (burner, sleeper):
            _tell(p)
        for p in (burner, sleeper):  # each has used its CPU when it says "done"
            assert p.stdout is not None and p.stdout.readline() == "done\n"
        mon.sample()
    finally:
        for p in (burner, sleeper):
            assert p.stdin is not None
            p.stdin.write("\n")
            p.stdin.close()
            p.wait(10)
    out = mon.summary(ticks_in_window=1000)
    span = out["roles"]["burner"]["span_s"]
    burned = out["roles"]["burner"]["cpu_pct"] / 100 * span
    # the whole burn fell inside the window; clock ticks are 10 ms (and the child's exit path)
    assert 0.57 <= burned <= 0.65, out
    assert out["roles"]["sleeper"]["cpu_pct"] <= 100 * 0.02 / span, out
    assert out["roles"]["burner"]["cpu_us_per_tick"] == pytest.approx(burned * 1e6 / 1000, rel=0.05)
    # the burner's 0.6 s over the window's span and the host's CPUs
    cpus = out["cpus"]
    assert out["rig_busy_pct"] == pytest.approx(100 * burned / (span * cpus), abs=100 * 0.03 / span)
    if out["host_busy_pct"] is not None:  # /proc/stat: some VMs under-account it (a note says)
        assert out["rig_busy_pct"] - 2 <= out["host_busy_pct"] <= 100
    else:
        assert "not usable" in out["host_note"]
    assert out["cpus"] >= 1


def test_a_process_that_exits_keeps_its_last_sample_and_an_unknown_pid_is_skipped() -> None:
    p = _child(0.0)
    mon = LoadMonitor({"short": p.pid, "never": 2**22 + 12345}, time.monotonic_ns)
    mon.start()
    time.sleep(0.05)
    mon.sample()
    _tell(p)  # burns nothing, says "done" and waits to be told to exit
    assert p.stdout is not None and p.stdout.readline() == "done\n"
    assert p.stdin is not None
    p.stdin.write("\n")
    p.stdin.close()
    p.wait(10)
    mon.sample()  # gone (reaped): not counted further
    out = mon.summary()
    assert set(out["roles"]) == {"short"}
    assert "cpu_us_per_tick" not in out["roles"]["short"]


def test_proc_files_are_parsed_as_the_kernel_writes_them(tmp_path: Path) -> None:
    pid = tmp_path / "4242"
    (pid / "task" / "4242").mkdir(parents=True)
    (pid / "task" / "4243").mkdir()
    # a command name with spaces and a ")" in it: fields are counted after the last ")"
    (pid / "stat").write_text(
        "4242 (python x) y) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 40 0 0 20 0 3 0 100 "
        "1000 50 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0\n"
    )
    (pid / "task" / "4242" / "status").write_text(
        "Name:\tpython\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t3\n"
    )
    (pid / "task" / "4243" / "status").write_text(
        "Name:\tZMQbg/IO/0\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t1\n"
    )
    s = sample_process(4242, tmp_path)
    assert s is not None and (s.cpu_ticks, s.voluntary, s.involuntary) == (290, 17, 4)
    (tmp_path / "stat").write_text(
        "cpu  100 5 50 800 20 3 2 7 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n"
    )
    # busy = user + nice + system + irq + softirq + steal; idle and iowait are not
    assert sample_host(tmp_path) == (167, 987, 7)
    zombie = tmp_path / "77"
    (zombie / "task").mkdir(parents=True)
    (zombie / "stat").write_text("77 (gone) Z 1 77 77 0 -1 0 0 0 0 0 5 1 0 0 20 0 1 0\n")
    assert sample_process(77, tmp_path) is None
    assert sample_process(78, tmp_path) is None


def test_the_window_splits_host_load_into_rig_steal_and_other(tmp_path: Path) -> None:
    """Two samples of a fake /proc 1 s apart: the rig's process used 0.6 s of CPU; the host's
    CPUs (200 ticks of capacity in the window) were busy 130 ticks, 20 of them stolen by the
    hypervisor: what remains beyond the rig went to processes that are not the rig's."""
    pid = tmp_path / "4242"
    (pid / "task" / "4242").mkdir(parents=True)
    status = "Name:\tpython\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t1\n"
    (pid / "task" / "4242" / "status").write_text(status)

    def write(cpu_ticks: int, user: int, idle: int, steal: int) -> None:
        fields = ["S"] + ["0"] * 10 + [str(cpu_ticks), "0"] + ["0"] * 20
        (pid / "stat").write_text("4242 (python) " + " ".join(fields) + "\n")
        (tmp_path / "stat").write_text(f"cpu  {user} 0 1000 {idle} 0 0 100 {steal} 0 0\n")

    now = [0]
    mon = LoadMonitor({"coordinator": 4242}, lambda: now[0], proc=tmp_path)
    mon.start()
    write(1000, 5000, 20000, 300)
    mon.sample()
    write(1000 + int(0.6 * _TICKS_PER_S), 5000 + 110, 20000 + 70, 300 + 20)
    now[0] = 1_000_000_000
    mon.sample()
    out = mon.summary()
    rig = 100 * 0.6 / (os.cpu_count() or 1)
    assert out["rig_busy_pct"] == pytest.approx(rig, abs=0.1)
    assert out["host_busy_pct"] == pytest.approx(65.0)
    assert out["steal_pct"] == pytest.approx(10.0)
    assert out["other_busy_pct"] == pytest.approx(max(0.0, 65.0 - rig - 10.0), abs=0.1)
