"""The one process runtime of every role: stop signals, the typed role config, the ready file,
the traces and stats written at the stop, exit codes, atomic JSON output.

A role (venue adapter, coordinator, broker adapter, journal player) is started by the
orchestrator as ``python -m <module> CONFIG.json`` and runs through :func:`run_role`: the file is
read into the role's config dataclass (:func:`read_role_config`, the one config reader), the
role builds its :class:`RoleProcess` from it (sockets bound, kernels warm), then
:func:`serve_role` writes ``<name>.ready.json``, serves until SIGTERM/SIGINT and — in
``finally``, also when serving failed — saves the traces, writes ``<name>.stats.json`` and
closes. Exit codes: 0 normal stop, 2 configuration error, 3 any other rig error (message on
stderr). Files are written atomically (temp file + rename) so a reader never sees half a file.

A role's configuration is a frozen dataclass: the orchestrator builds it from the campaign and
writes it as JSON (:func:`config_to_json`); the role reads it back into the same dataclass with
:func:`config_from_json`, the one place its keys and types are checked. A field whose type
depends on another field's value (a link backend's settings, by the link's name) says so with
:class:`ChosenBy`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import signal
import sys
import tempfile
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

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


C = TypeVar("C")


def config_to_json(config: Any) -> dict[str, Any]:
    """A role config dataclass as the JSON object :func:`config_from_json` reads back (paths
    as strings)."""
    return dataclasses.asdict(config, dict_factory=_json_native)


def _json_native(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in items}


@dataclass(frozen=True)
class ChosenBy:
    """Metadata of a field annotated ``Annotated[object, ChosenBy("backend", choose)]``: its
    type is ``choose(value of the field "backend")`` (declared before it), e.g. the settings
    dataclass a link backend names. A ConfigError of ``choose`` is reported at that field."""

    field: str
    choose: Callable[[Any], type]


def config_from_json(config_type: type[C], data: Any, source: str, key: str = "") -> C:
    """``data`` (parsed JSON) as the dataclass ``config_type``, checked against its fields'
    annotations: nested dataclasses, ``int``, ``float`` (an int is a float), ``str``, ``bool``,
    ``None``, ``Path`` (from a string), ``Literal`` values, unions (``X | None``), ``list``,
    ``tuple``, ``dict`` (string or int keys) and :class:`ChosenBy` fields. A field with a
    default may be absent; a missing key, an unknown one or a wrong type is a
    :class:`ConfigError` naming ``source`` and the dotted key. A check of the dataclass itself
    (``__post_init__``) raising ConfigError gets the same file and key prefix (a ValueError:
    the dataclass's key)."""
    if not isinstance(data, dict):
        raise ConfigError(f"must be an object, got {_kind(data)}", file=source, key=key or None)
    hints = typing.get_type_hints(config_type, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    prefix = f"{key}." if key else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError("unknown key", file=source, key=prefix + str(unknown[0]))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            tp = _chosen(hints[name], values, source, prefix)
            values[name] = _typed(tp, data[name], source, prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError("missing required key", file=source, key=prefix + name)
    try:
        return config_type(**values)
    except ConfigError as exc:
        if exc.file is not None:
            raise
        raise _at(exc, source, prefix, key) from exc
    except ValueError as exc:  # a dataclass's own check (e.g. AdmmSettings)
        raise ConfigError(str(exc), file=source, key=key or None) from exc


def _at(exc: ConfigError, source: str, prefix: str, key: str) -> ConfigError:
    """``exc`` (raised without a file) as raised in ``source`` under the key ``prefix``."""
    inner = f"{prefix}{exc.key}" if exc.key else (key or None)
    message = str(exc).removeprefix(f"key '{exc.key}': ") if exc.key else str(exc)
    return ConfigError(message, file=source, key=inner)


def _chosen(tp: Any, values: dict[str, Any], source: str, prefix: str) -> Any:
    """The annotation ``tp``, or for a :class:`ChosenBy` field the type its choice names."""
    if typing.get_origin(tp) is not typing.Annotated:
        return tp
    for meta in tp.__metadata__:
        if isinstance(meta, ChosenBy):
            try:
                return meta.choose(values.get(meta.field))
            except ConfigError as exc:
                raise _at(exc, source, prefix, "") from exc
    return tp


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _typed(tp: Any, value: Any, source: str, key: str) -> Any:
    """``value`` checked (and converted, for containers) against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Annotated:
        return _typed(args[0], value, source, key)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return _typed(option, value, source, key)
            except ConfigError:
                continue
        return _typed(options[-1], value, source, key)
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise ConfigError(f"must be one of {allowed} (value {value!r})", file=source, key=key)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return config_from_json(tp, value, source, key)
    if origin in (list, tuple, dict):
        return _container(origin, args, value, source, key)
    if tp is type(None):
        ok = value is None
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is int or tp is str:
        ok = isinstance(value, tp) and not isinstance(value, bool)
    elif tp is Path:
        if isinstance(value, str):
            return Path(value)
        ok = False
    else:
        raise TypeError(f"config field {key}: unsupported annotation {tp!r}")
    if not ok:
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(
            f"wrong type {_kind(value)} (value {value!r}), expected {name}", file=source, key=key
        )
    return value


def _container(origin: Any, args: tuple[Any, ...], value: Any, source: str, key: str) -> Any:
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"must be an object, got {_kind(value)}", file=source, key=key)
        key_type, item_type = args or (str, Any)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if key_type is int:
                try:
                    k = int(k)
                except ValueError:
                    raise ConfigError("not an integer key", file=source, key=f"{key}.{k}") from None
            out[k] = _typed(item_type, v, source, f"{key}.{k}")
        return out
    if not isinstance(value, list | tuple):
        raise ConfigError(f"must be an array, got {_kind(value)}", file=source, key=key)
    if origin is list:
        item = args[0] if args else Any
        return [_typed(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_typed(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if args and len(args) != len(value):
        raise ConfigError(f"must have {len(args)} items, has {len(value)}", file=source, key=key)
    items = args or (Any,) * len(value)
    pairs = enumerate(zip(items, value, strict=True))
    return tuple(_typed(t, v, source, f"{key}[{i}]") for i, (t, v) in pairs)


def read_role_config(config_type: type[C], path: Path) -> C:
    """The role config file ``path`` as the dataclass ``config_type`` (errors name the file
    and the key)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("role config not found", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=str(path)) from exc
    return config_from_json(config_type, data, str(path))


class RoleProcess(ABC):
    """A role process once set up (sockets bound or connected, kernels warm): what
    :func:`serve_role` runs. Writes ``<name>.ready.json`` and ``<name>.stats.json`` in
    ``out_dir``."""

    name: str
    out_dir: Path

    def ready_info(self) -> dict[str, Any]:
        """The ready file's content (bound addresses, what the orchestrator wires next)."""
        return {}

    @abstractmethod
    def serve(self, stop: StopFlag) -> None:
        """Work until ``stop`` (or until the role's work is done)."""

    @abstractmethod
    def save(self) -> None:
        """Write the traces (after serving, before the stats)."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """``<name>.stats.json``."""

    @abstractmethod
    def close(self) -> None:
        """Release sockets, links and threads (after the stats)."""


def serve_role(process: RoleProcess, stop: StopFlag) -> None:
    """Report ready, serve until ``stop``, then — also when serving failed — save the traces,
    write the stats and close."""
    quiesce_gc()
    write_json_atomic(process.out_dir / f"{process.name}.ready.json", process.ready_info())
    try:
        process.serve(stop)
    finally:
        try:
            process.save()
            write_json_atomic(process.out_dir / f"{process.name}.stats.json", process.stats())
        finally:
            process.close()


def run_role(config_type: type[C], start: Callable[[C, str], RoleProcess]) -> None:
    """Process entry of a role: ``argv`` is the config file, read into ``config_type``;
    ``start(config, file)`` sets the role up; then :func:`serve_role`. Exits 0 at a normal
    stop, 2 on a configuration error, 3 on any other rig error (message on stderr)."""
    if len(sys.argv) != 2:
        print(f"usage: python -m {start.__module__} CONFIG.json", file=sys.stderr)
        sys.exit(2)
    path = Path(sys.argv[1])
    stop = StopFlag().install()
    try:
        serve_role(start(read_role_config(config_type, path), str(path)), stop)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ArbSphereError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.exit(0)


def quiesce_gc() -> None:
    """Move everything allocated during start-up (imports, JIT, warm-up) out of the cyclic
    collector's reach and make collections rare, so no multi-millisecond GC pause lands on the
    message path. Hot loops allocate no reference cycles (trace rows go into NumPy arrays), so
    memory stays bounded; call once, right before a role reports ready."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
