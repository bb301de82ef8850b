"""Writing result sets: ``results/<campaign>/<run-id>/`` and its ``manifest.json``.

:class:`ResultSetWriter` is the one writer of every result set — a campaign run, a rate sweep,
a simulation, a calibration. It owns the directory: it creates it, writes each artefact (or
adopts files a role or a nested result set wrote there), records every file's SHA-256, and
writes ``manifest.json`` last, atomically, with the fields every manifest has (``format``,
``kind`` when not a single run, ``campaign``, ``run_id``, ``status``, ``incomplete_reason``,
``created_utc``, ``versions``, ``git``, ``host``, ``files``) around the producer's own sections.
A result set without ``manifest.json`` was not finished; ``arbsphere verify`` checks one that was.

A campaign run's files: ``manifest.json`` (resolved config, versions, host, timestamp
sources, clock models, status and file hashes), ``manifest.sig`` (the run's authority's
signature over the manifest, see :mod:`arbsphere.kpi.manifest_sig`), ``kpi.json``, ``kpi.prom``,
``latency.hlog``, ``trace.parquet``, ``report.html`` and ``proc/`` (each role's config, stats,
stderr and raw trace tables, kept for diagnosis).
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zmq

import arbsphere
from arbsphere.errors import ResultSetError
from arbsphere.kpi.manifest_sig import MANIFEST_SIG, ManifestSigner, sign_manifest
from arbsphere.runtime import write_json_atomic

RESULT_SET_FORMAT = "arbsphere-resultset/1"
MANIFEST = "manifest.json"
#: the result set's HTML view: the one file verify lets differ from its hash (regenerated)
REPORT = "report.html"
#: written after the manifest, over it: neither is listed in the manifest's ``files``
UNLISTED = frozenset({MANIFEST, MANIFEST_SIG})
#: the checkout whose git revision a manifest records
REPO_ROOT = Path(__file__).resolve().parents[1]


def new_run_dir(results_dir: Path, campaign: str, now_ns: int) -> Path:
    """Create ``<results_dir>/<campaign>/<UTC stamp>[-n]/`` (the first free name) and return it."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ns / 1e9))
    base = results_dir / campaign
    base.mkdir(parents=True, exist_ok=True)
    run_dir = base / stamp
    n = 1
    while True:
        try:
            run_dir.mkdir()
        except FileExistsError:
            n += 1
            run_dir = base / f"{stamp}-{n}"
            continue
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
    """SHA-256 of every file under ``run_dir`` but its own ``manifest.json`` and ``manifest.sig``
    (the manifests of nested result sets, e.g. a sweep's per-rate runs, are files like any
    other)."""
    hashes = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir).as_posix()
        if p.is_file() and rel not in UNLISTED:
            hashes[rel] = sha256_file(p)
    return hashes


#: the manifest fields the writer fills; a producer's sections cannot replace them
COMMON_FIELDS = frozenset(
    {"format", "kind", "campaign", "run_id", "status", "incomplete_reason", "created_utc",
     "versions", "git", "host", "files"}
)  # fmt: skip


class ResultSetWriter:
    """One result-set directory, from its creation to its ``manifest.json``.

    Every file goes through the writer: :meth:`write_json`, :meth:`write_bytes` or
    :meth:`write_with` (a callable that writes the path it is given: a parquet table, an
    interval log, the report) write and hash an artefact; :meth:`adopt` hashes files someone
    else wrote there (the roles' ``proc/``, a nested result set). A file is hashed when it is
    recorded, so one changed afterwards no longer matches its manifest entry and ``verify``
    says so. :meth:`set_status`, :meth:`add` (the producer's own sections, in order) and
    :meth:`manifest` (the manifest as it will be written, e.g. for the report) come before
    :meth:`finish`, which writes ``manifest.json`` atomically and closes the writer.

    Paths are relative to the directory; one that leaves it (absolute, ``..``, a symlink out)
    or names ``manifest.json`` is refused with a :class:`ResultSetError`.
    """

    def __init__(
        self,
        run_dir: Path,
        campaign: str,
        created_ns: int,
        *,
        kind: str | None = None,
        repo: Path = REPO_ROOT,
    ) -> None:
        """Create ``run_dir`` (with its parents; it must not exist yet) for ``campaign``'s
        result set; ``kind`` (e.g. ``rate-sweep``) is left out of a single run's manifest."""
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            raise ResultSetError(
                f"{run_dir}: already exists; a result set is written into a new directory"
            ) from None
        except OSError as exc:
            raise ResultSetError(f"{run_dir}: cannot create the result set: {exc}") from exc
        self._init(run_dir, campaign, created_ns, kind, repo)

    @classmethod
    def new(
        cls,
        results_dir: Path,
        campaign: str,
        now_ns: int,
        *,
        kind: str | None = None,
        name: str | None = None,
        repo: Path = REPO_ROOT,
    ) -> ResultSetWriter:
        """A writer for a new ``<results_dir>/<name>/<UTC stamp>[-n]/`` (``name`` defaults to
        ``campaign``), created at ``now_ns``."""
        run_dir = new_run_dir(results_dir, name or campaign, now_ns)
        writer = cls.__new__(cls)
        writer._init(run_dir, campaign, now_ns, kind, repo)
        return writer

    def _init(
        self, run_dir: Path, campaign: str, created_ns: int, kind: str | None, repo: Path
    ) -> None:
        self.run_dir = run_dir
        self.campaign = campaign
        self.kind = kind
        self.created_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created_ns / 1e9))
        self._repo = repo
        self._root = run_dir.resolve()
        self._files: dict[str, str] = {}
        self._sections: dict[str, Any] = {}
        self._status: tuple[str, str | None] | None = None
        self._provenance: dict[str, Any] | None = None
        self._finished = False

    # -- artefacts ---------------------------------------------------------------------------

    def path(self, rel: str | Path) -> Path:
        """The absolute path of ``rel`` inside the result set (refused if it is not inside)."""
        text = Path(rel).as_posix()
        where = f"{self.run_dir}: {str(rel)!r}"
        if Path(rel).is_absolute() or ".." in Path(rel).parts or text in ("", "."):
            raise ResultSetError(f"{where}: not a path inside the result set")
        path = self.run_dir / rel
        resolved = path.resolve()
        if resolved == self._root or self._root not in resolved.parents:
            raise ResultSetError(f"{where}: resolves to {resolved}, outside the result set")
        if resolved == self._root / MANIFEST:
            raise ResultSetError(f"{where}: the manifest is written by finish(), last")
        return path

    def write_json(self, rel: str, data: Any, *, sort_keys: bool = True) -> Path:
        """Write ``data`` as JSON (atomically) to ``rel`` and record it."""
        path = self._writable(rel)
        write_json_atomic(path, data, sort_keys=sort_keys)
        return self._record(path)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write ``data`` to ``rel`` and record it."""
        path = self._writable(rel)
        path.write_bytes(data)
        return self._record(path)

    def write_with(self, rel: str, write: Callable[[Path], object]) -> Path:
        """Call ``write(path)`` to write the artefact ``rel`` (a table, an interval log, the
        report), then record it; a callable that wrote nothing there is an error."""
        path = self._writable(rel)
        write(path)
        if not path.is_file():
            raise ResultSetError(f"{path}: the writer of {rel!r} left no file there")
        return self._record(path)

    def adopt(self, rel: str) -> list[str]:
        """Record the file ``rel``, or every file under the directory ``rel``, that someone else
        wrote into the result set (a role's traces, a nested result set with its manifest).
        Returns the paths recorded, relative to the result set."""
        path = self.path(rel)
        self._check_open()
        if path.is_file():
            return [self._rel(self._record(path))]
        if not path.is_dir():
            raise ResultSetError(f"{path}: nothing there to adopt")
        return [self._rel(self._record(p)) for p in sorted(path.rglob("*")) if p.is_file()]

    def adopt_rest(self) -> list[str]:
        """Record every file in the result set not recorded yet (what the roles wrote there:
        ``proc/``, ``journal/``, ``ledger/``, ``identities.json``)."""
        self._check_open()
        rest = [
            p
            for p in sorted(self.run_dir.rglob("*"))
            if p.is_file() and (rel := self._rel(p)) not in UNLISTED and rel not in self._files
        ]
        return [self._rel(self._record(p)) for p in rest]

    @property
    def files(self) -> dict[str, str]:
        """Every file recorded so far and its SHA-256, by path in the result set."""
        return dict(self._files)

    # -- the manifest ------------------------------------------------------------------------

    def set_status(self, complete: bool, reason: str | None = None) -> None:
        """``complete``, or ``incomplete`` for ``reason`` (required: why it ended early)."""
        if complete:
            self._status = ("complete", None)
            return
        if not reason or not reason.strip():
            raise ResultSetError(
                f"{self.run_dir}: an incomplete result set needs its reason "
                f"(incomplete_reason {reason!r})"
            )
        self._status = ("incomplete", reason)

    def add(self, sections: Mapping[str, Any]) -> None:
        """Add the producer's own manifest sections (in order, after the common head)."""
        self._check_open()
        for key in sections:
            if key in COMMON_FIELDS:
                raise ResultSetError(
                    f"{self.run_dir}: manifest key {key!r} is written by the result-set writer"
                )
        self._sections.update(sections)

    def manifest(self) -> dict[str, Any]:
        """The manifest as :meth:`finish` writes it, without ``files``."""
        if self._status is None:
            raise ResultSetError(f"{self.run_dir}: set_status() before the manifest is written")
        if self._provenance is None:
            self._provenance = {
                "versions": versions(),
                "git": git_revision(self._repo),
                "host": host_fingerprint(),
            }
        status, reason = self._status
        head: dict[str, Any] = {"format": RESULT_SET_FORMAT}
        if self.kind is not None:
            head["kind"] = self.kind
        head.update(
            campaign=self.campaign,
            run_id=self.run_dir.name,
            status=status,
            incomplete_reason=reason,
            created_utc=self.created_utc,
        )
        return {**head, **self._sections, **self._provenance}

    def finish(self, signer: ManifestSigner | None = None) -> dict[str, Any]:
        """Write ``manifest.json`` (every recorded file with its SHA-256) atomically, last, and
        return it; the writer takes nothing more afterwards. With ``signer`` (the run's
        campaign authority) the manifest's bytes are signed into ``manifest.sig``."""
        self._check_open()
        manifest = self.manifest()
        manifest["files"] = dict(sorted(self._files.items()))
        write_json_atomic(self.run_dir / MANIFEST, manifest)
        self._finished = True
        if signer is not None:
            sign_manifest(self.run_dir, signer)
        return manifest

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._finished:
            raise ResultSetError(f"{self.run_dir}: the result set is finished (manifest written)")

    def _writable(self, rel: str) -> Path:
        path = self.path(rel)
        self._check_open()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.run_dir).as_posix()

    def _record(self, path: Path) -> Path:
        try:
            self._files[self._rel(path)] = sha256_file(path)
        except OSError as exc:
            raise ResultSetError(f"{path}: cannot read to hash: {exc}") from exc
        return path
