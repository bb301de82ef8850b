"""Writing a run's result set: ``results/<campaign>/<run-id>/``.

Files: ``manifest.json`` (resolved config, versions, host, timestamp sources, clock models,
status and file hashes), ``kpi.json``, ``latency.hlog``, ``trace.parquet``, ``report.html`` and
``proc/`` (each role's config, stats, stderr and raw trace tables, kept for diagnosis). The
manifest is written last and hashes every other file, so a result set can be verified.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

import arbsphere

RESULT_SET_FORMAT = "arbsphere-resultset/1"


def new_run_dir(results_dir: Path, campaign: str, now_ns: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ns / 1e9))
    base = results_dir / campaign
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {
        "arbsphere": arbsphere.__version__,
        "python": platform.python_version(),
        "libzmq": zmq.zmq_version(),
    }
    for dist in ("numpy", "numba", "pyzmq", "pandas", "pyarrow", "hdrhistogram", "pyserial"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_revision(repo: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                check=True,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def host_fingerprint() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python_executable": sys.executable,
    }


def file_hashes(run_dir: Path) -> dict[str, str]:
    hashes = {}
    for p in sorted(run_dir.rglob("*")):
        rel = str(p.relative_to(run_dir))
        if p.is_file() and rel != "manifest.json":  # a sweep's per-rate manifests are kept
            hashes[rel] = sha256_file(p)
    return hashes
