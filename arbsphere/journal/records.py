"""Plain records of the journal: writer configuration, durability modes, head, problems, reports.

The durability modes are documented, with exactly what each promises, in :mod:`.writer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from arbsphere.errors import ConfigError, JournalCorruptError

from .format import GENESIS_DIGEST, RECORD_OVERHEAD, SEGMENT_HEADER_SIZE

__all__ = [
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "Durability",
    "JournalHead",
    "JournalProblem",
    "JournalWriterConfig",
    "VerifyReport",
]

MIN_SEGMENT_SIZE = 256
MAX_SEGMENT_SIZE = 1 << 30


class Durability(StrEnum):
    """How far ``append`` pushes records before ``durable_seq`` counts them (module doc)."""

    NONE = "none"
    INTERVAL = "interval"
    EVERY_RECORD = "every_record"


@dataclass(frozen=True)
class JournalWriterConfig:
    """Writer configuration. ``segment_size`` bounds a segment file in bytes (header included);
    ``batch_bytes`` is the preallocated write buffer; ``interval_records``/``interval_ns`` are
    the push triggers of the ``interval`` mode (required there, at least one) and optional
    write triggers in ``none``; ``interval_ns`` needs a clock passed to the writer."""

    segment_size: int = 64 << 20
    batch_bytes: int = 256 << 10
    durability: Durability | str = Durability.NONE
    interval_records: int | None = None
    interval_ns: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "durability", Durability(self.durability))
        except ValueError:
            raise ConfigError(
                f"unknown durability {self.durability!r} "
                f"(one of {', '.join(d.value for d in Durability)})",
                key="durability",
            ) from None
        for key in ("segment_size", "batch_bytes", "interval_records", "interval_ns"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise ConfigError(f"{key} must be an integer, got {value!r}", key=key)
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ConfigError(
                f"segment_size {self.segment_size} outside "
                f"[{MIN_SEGMENT_SIZE}, {MAX_SEGMENT_SIZE}]",
                key="segment_size",
            )
        if self.batch_bytes < RECORD_OVERHEAD:
            raise ConfigError(
                f"batch_bytes {self.batch_bytes} < {RECORD_OVERHEAD}", key="batch_bytes"
            )
        for key in ("interval_records", "interval_ns"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key} must be >= 1 or None, got {value}", key=key)
        if (
            self.durability is Durability.INTERVAL
            and self.interval_records is None
            and self.interval_ns is None
        ):
            raise ConfigError(
                "durability 'interval' needs interval_records or interval_ns", key="durability"
            )

    @property
    def max_payload(self) -> int:
        """The largest payload one record can carry in a segment of ``segment_size``."""
        return self.segment_size - SEGMENT_HEADER_SIZE - RECORD_OVERHEAD


@dataclass(frozen=True)
class JournalHead:
    """Chain digest after the last record, its sequence and the number of records: what a
    manifest stores and what ``verify`` recomputes."""

    digest: bytes = GENESIS_DIGEST
    last_seq: int = 0
    record_count: int = 0

    def to_dict(self) -> dict[str, str | int]:
        return {
            "sha256_chain": self.digest.hex(),
            "last_seq": self.last_seq,
            "record_count": self.record_count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str | int]) -> JournalHead:
        return cls(
            bytes.fromhex(str(data["sha256_chain"])),
            int(data["last_seq"]),
            int(data["record_count"]),
        )


@dataclass(frozen=True)
class JournalProblem:
    """One thing wrong with a journal, located: segment file, byte offset in it, and the
    sequence number that should have been there.

    ``tail`` is True for damage that runs to the end of the last segment with no valid record
    after it (what a crash during a write leaves, a *torn tail*); only those are truncated by
    recovery. ``records_affected``/``bytes_affected`` count what the damage covers (for a
    tail: what recovery removes).
    """

    kind: str
    segment: int
    path: Path
    offset: int
    seq: int
    records_affected: int
    bytes_affected: int
    tail: bool
    detail: str

    def __str__(self) -> str:
        where = "torn tail" if self.tail else "corruption"
        return (
            f"{where} ({self.kind}) in {self.path.name} at offset {self.offset}, seq {self.seq}: "
            f"{self.detail} [{self.records_affected} record(s), {self.bytes_affected} byte(s)]"
        )


@dataclass
class VerifyReport:
    """Outcome of :func:`verify` / :func:`recover`.

    ``head`` is the head of the valid prefix (the whole journal when ``ok``); ``problems`` the
    problems found; ``truncated`` the tail problem that recovery removed, if any.
    """

    directory: Path
    head: JournalHead
    segments: int = 0
    records: int = 0
    bytes: int = 0
    problems: list[JournalProblem] = field(default_factory=list)
    truncated: JournalProblem | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def tail_only(self) -> bool:
        """True when every problem is a torn tail (recovery can truncate it)."""
        return all(p.tail for p in self.problems)

    def raise_for_problems(self) -> None:
        """Raise :class:`JournalCorruptError` for the first problem, if any."""
        if self.problems:
            first = self.problems[0]
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise corrupt(f"{self.directory}: {first}{more}", first)


def corrupt(message: str, problem: JournalProblem) -> JournalCorruptError:
    """The error for ``problem``, located (segment, offset, seq, path) from it."""
    return JournalCorruptError(
        message,
        segment=problem.segment,
        offset=problem.offset,
        seq=problem.seq,
        problem=problem,
        path=str(problem.path),
    )
