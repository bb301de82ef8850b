"""Plumbing shared by every role process: stop signals, role config files, atomic JSON output.

A role (venue adapter, coordinator, broker adapter) is started by the orchestrator as
``python -m <module> CONFIG.json``. It writes ``<name>.ready`` once its sockets are bound and its
kernels are warm, runs until SIGTERM/SIGINT, then writes its trace table and ``<name>.stats.json``
and exits 0. Files are written atomically (temp file + rename) so a reader never sees half a file.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from arbsphere.errors import ArbSphereError, ConfigError


class StopFlag:
    """Set by SIGTERM/SIGINT; role loops check it between blocking calls with timeouts."""

    def __init__(self) -> None:
        self.is_set = False
        self.signal: int | None = None

    def install(self) -> StopFlag:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.is_set = True
        self.signal = signum


def write_json_atomic(path: Path, data: Any, *, sort_keys: bool = True) -> None:
    """Write JSON via a temp file + rename. ``sort_keys=False`` keeps the (deterministic)
    insertion order, e.g. stages in pipeline order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=sort_keys, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def cpu_usage() -> dict[str, float]:
    """CPU seconds this process has used (user, system), for the role's stats."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": round(ru.ru_utime, 3), "system_s": round(ru.ru_stime, 3)}


def load_role_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("role config not found", file=str(p)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError("role config must be a JSON object", file=str(p))
    return data


def require(cfg: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    """Fetch a required key of a role config with a type check; errors name file and key."""
    if key not in cfg:
        raise ConfigError("missing required key", file=source, key=key)
    value = cfg[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(
            f"wrong type {type(value).__name__} (value {value!r})", file=source, key=key
        )
    return value


def run_role(main: Callable[[dict[str, Any], Path, StopFlag], int]) -> None:
    """Process entry for a role: parse argv, load the config, run, map errors to exit codes.

    Exit codes: 0 normal stop, 2 configuration error, 3 any other rig error (message on stderr).
    """
    if len(sys.argv) != 2:
        print(f"usage: python -m {main.__module__} CONFIG.json", file=sys.stderr)
        sys.exit(2)
    path = Path(sys.argv[1])
    stop = StopFlag().install()
    try:
        cfg = load_role_config(path)
        code = main(cfg, path, stop)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ArbSphereError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.exit(code)


def quiesce_gc() -> None:
    """Move everything allocated during start-up (imports, JIT, warm-up) out of the cyclic
    collector's reach and make collections rare, so no multi-millisecond GC pause lands on the
    message path. Hot loops allocate no reference cycles (trace rows go into NumPy arrays), so
    memory stays bounded; call once, right before a role reports ready."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
