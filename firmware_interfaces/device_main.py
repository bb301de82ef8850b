"""Process plumbing of a device process: config, signals, stats file, exit codes.

The emulators and SDK devices (:mod:`arbsphere.sdk`) run through it. A device process is
``python -m <device module> CONFIG.json``. :func:`run_device` loads the
JSON config into a :class:`ConfigReader` (typed getters whose errors name the file and the
dotted key), installs SIGTERM/SIGINT handlers that set a stop flag and wake any blocking wait
(:class:`Waker`, a ``signal.set_wakeup_fd`` pipe), runs the device, and always writes the stats
JSON (``stats_path`` from the config) atomically at exit. Exit codes: 0 normal stop, 2 bad
config (message names file and key), 3 device or link failure.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbsphere.clock import Clock, ClockStep, DeviceClock
from arbsphere.errors import ArbSphereError, ConfigError
from arbsphere.runtime import StopFlag, cpu_usage, quiesce_gc, write_json_atomic

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_FAILURE = 3

_MISSING: Any = object()


class ConfigReader:
    """Typed, validated access to one JSON object of a device config.

    Every error is a :class:`ConfigError` naming the file and the dotted key (``clock.drift_ppm``).
    """

    def __init__(self, data: Mapping[str, Any], file: str, prefix: str = "") -> None:
        self.data = data
        self.file = file
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The dotted key of ``name`` in this table (``clock.drift_ppm``)."""
        return f"{self.prefix}{name}"

    def error(self, name: str, message: str) -> ConfigError:
        """A :class:`ConfigError` about key ``name`` (raise it), naming the file and key."""
        return ConfigError(message, file=self.file, key=self.key(name))

    def has(self, name: str) -> bool:
        """Whether key ``name`` is present."""
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "missing required key")
        return default

    def get_int(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        min_value: int | None = None,
        max_value: int | None = None,
    ) -> int:
        """Integer key ``name`` (``default`` when absent; required without one), within
        ``min_value`` / ``max_value`` when given."""
        value = self._get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(name, f"must be an integer, got {value!r}")
        if min_value is not None and value < min_value:
            raise self.error(name, f"must be >= {min_value}, got {value}")
        if max_value is not None and value > max_value:
            raise self.error(name, f"must be <= {max_value}, got {value}")
        return value

    def get_float(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> float:
        """Number key ``name`` (an int or float, not NaN), within the bounds when given."""
        value = self._get(name, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(name, f"must be a number, got {value!r}")
        if value != value:  # NaN
            raise self.error(name, "must be a number, got NaN")
        if min_value is not None and value < min_value:
            raise self.error(name, f"must be >= {min_value}, got {value}")
        if max_value is not None and value > max_value:
            raise self.error(name, f"must be <= {max_value}, got {value}")
        return float(value)

    def get_str(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        max_len: int | None = None,
        choices: Sequence[str] | None = None,
    ) -> str:
        """Non-empty string key ``name``, at most ``max_len`` characters, one of ``choices``
        when given."""
        value = self._get(name, default)
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        if max_len is not None and len(value) > max_len:
            raise self.error(name, f"{value!r} is longer than {max_len} characters")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def get_table(self, name: str, *, required: bool = False) -> ConfigReader:
        """The object at key ``name`` as a reader whose errors name ``name.key`` (empty when
        absent and not ``required``)."""
        value = self._get(name, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.error(name, f"must be an object, got {type(value).__name__}")
        return ConfigReader(value, self.file, prefix=f"{self.key(name)}.")

    def get_list(self, name: str, default: Any = _MISSING) -> list[Any]:
        """The list at key ``name``."""
        value = self._get(name, default)
        if not isinstance(value, list):
            raise self.error(name, f"must be a list, got {type(value).__name__}")
        return value

    def only(self, allowed: Iterable[str]) -> None:
        """Reject keys not in ``allowed`` (a typo must not silently fall back to a default)."""
        known = set(allowed)
        for name in self.data:
            if name not in known:
                raise self.error(name, f"unknown key (allowed: {', '.join(sorted(known))})")

    def exactly_one(self, *names: str) -> str:
        """The one of ``names`` present; an error naming them if none or several are."""
        present = [n for n in names if n in self.data]
        if len(present) != 1:
            what = "none" if not present else " and ".join(self.key(n) for n in present)
            raise ConfigError(
                f"exactly one of {', '.join(self.key(n) for n in names)} is required, got {what}",
                file=self.file,
                key=self.key(names[0] if not present else present[-1]),
            )
        return present[0]


def load_config(path: str | Path) -> ConfigReader:
    """Read a device config file (a JSON object)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("device config not found", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read device config: {exc}", file=str(p)) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError("device config must be a JSON object", file=str(p))
    return ConfigReader(data, str(p))


CLOCK_KEYS = ("offset_ns", "drift_ppm", "steps")


def device_clock(cfg: ConfigReader, base: Clock, epoch_ns: int) -> DeviceClock:
    """The device oscillator from a ``clock`` table: ``{offset_ns, drift_ppm, steps}``.

    ``steps`` is a list of ``[at_ns, delta_ns]`` pairs (base-clock time of a step, its size).
    """
    cfg.only(CLOCK_KEYS)
    steps: list[ClockStep] = []
    for i, item in enumerate(cfg.get_list("steps", [])):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            raise cfg.error(f"steps[{i}]", f"must be [at_ns, delta_ns] integers, got {item!r}")
        steps.append(ClockStep(at_ns=item[0], delta_ns=item[1]))
    return DeviceClock(
        base=base,
        offset_ns=cfg.get_int("offset_ns", 0),
        drift_ppm=cfg.get_float("drift_ppm", 0.0, min_value=-1000.0, max_value=1000.0),
        epoch_ns=epoch_ns,
        steps=steps,
    )


def clock_truth(dev: DeviceClock) -> dict[str, Any]:
    """The emulated oscillator's settings, for the stats (ground truth of clock-sync runs)."""
    return {"offset_ns": dev.offset_ns, "drift_ppm": dev.drift_ppm, "epoch_ns": dev.epoch_ns,
            "steps": [[s.at_ns, s.delta_ns] for s in dev.steps]}  # fmt: skip


class Waker:
    """Blocking waits that a SIGTERM/SIGINT cuts short (``signal.set_wakeup_fd`` pipe).

    Install the Python signal handlers (:class:`~arbsphere.runtime.StopFlag`) first: the
    interpreter writes to the wakeup fd only for signals with a Python handler.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._previous = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def fileno(self) -> int:
        """Readable once a signal arrived (until :meth:`drain`)."""
        return self._r

    def sleep(self, seconds: float) -> None:
        """Block up to ``seconds`` (never spin); returns early when a signal arrives."""
        if seconds > 0 and select.select([self._r], [], [], seconds)[0]:
            self.drain()

    def drain(self) -> None:
        try:
            while os.read(self._r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self._r)
        os.close(self._w)


@dataclass
class DeviceContext:
    """What :func:`run_device` hands the device: stop flag, waker, and the live stats dict."""

    stop: StopFlag
    waker: Waker
    config_path: str
    stats: dict[str, Any] = field(default_factory=dict)


DeviceMain = Callable[[ConfigReader, DeviceContext], None]


def run_device(
    main: DeviceMain, name: str, argv: Sequence[str] | None = None, *, stats_default: str = ""
) -> int:
    """Run device ``name``: config, signals, ``main``, stats file; return the exit code.

    ``main`` must validate its whole config before it starts sending (a :class:`ConfigError`
    means exit 2) and keep its counters in ``ctx.stats``; they are written whatever happens,
    to the config's ``stats_path`` (``stats_default`` where it has none; "": required).
    """
    args = list(sys.argv if argv is None else argv)
    if len(args) != 2:
        print(f"usage: {name} CONFIG.json", file=sys.stderr)
        return EXIT_CONFIG
    stop = StopFlag().install()
    waker = Waker()
    ctx = DeviceContext(stop=stop, waker=waker, config_path=args[1])
    try:
        cfg = load_config(args[1])
        stats_path = Path(cfg.get_str("stats_path", stats_default or _MISSING))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    ctx.stats.update({"device": name, "config": args[1]})
    code = EXIT_FAILURE  # stays so if main raises something unexpected (traceback follows)
    try:
        quiesce_gc()  # the device's own start-up is done; no GC pause on its send schedule
        main(cfg, ctx)
        code = EXIT_OK
    except ConfigError as exc:
        code = EXIT_CONFIG
        ctx.stats["error"] = str(exc)
        print(f"error: {exc}", file=sys.stderr)
    except (ArbSphereError, OSError) as exc:
        code = EXIT_FAILURE
        ctx.stats["error"] = f"{type(exc).__name__}: {exc}"
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        ctx.stats["exit_code"] = code
        ctx.stats["stop_signal"] = stop.signal
        try:
            ctx.stats["cpu"] = cpu_usage()
            write_json_atomic(stats_path, ctx.stats)
        except OSError as exc:
            print(f"error: cannot write stats {stats_path}: {exc}", file=sys.stderr)
            code = code or EXIT_FAILURE
        waker.close()
    return code
