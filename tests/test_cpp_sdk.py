"""The C++ SDK's CMake project: configure, build (warnings are errors, sanitizers on) and run
its ctest suite against the project's vectors; and the plan vectors it reads are current.

Skips, saying why, when cmake or a C++ compiler is missing (``tools/system_deps.sh``, run by
``make test``, installs both on Debian when it runs as root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from arbsphere.plan.vectors import VECTORS_PATH, render_plan_vectors

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk" / "cpp"
BUILD = ROOT / "build" / "sdk-cpp"


def _tools() -> None:
    missing = [tool for tool in ("cmake", "ctest") if shutil.which(tool) is None]
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (c++/g++)")
    if missing:
        pytest.skip(f"C++ SDK tests need {', '.join(missing)} (Debian: cmake g++)")


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"


def test_plan_vectors_are_current() -> None:
    assert VECTORS_PATH.read_text() == render_plan_vectors(), (
        "regenerate: python -m arbsphere.plan.vectors"
    )


def test_cmake_build_and_ctest() -> None:
    _tools()
    _run(["cmake", "-S", str(SDK), "-B", str(BUILD), "-DARBSPHERE_SANITIZE=ON"])
    _run(["cmake", "--build", str(BUILD), "--parallel", "2"])
    _run(["ctest", "--test-dir", str(BUILD), "--output-on-failure"])
