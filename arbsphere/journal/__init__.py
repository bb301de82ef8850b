"""The durable replay journal: append-only segment files with CRC-32C per record and a SHA-256
hash chain, batched writes with declared durability modes, verification and crash recovery.

- :mod:`.format` -- the byte layout (segment header, record), documented byte by byte.
- :mod:`.records` -- configuration, durability modes (what each promises), head, problems.
- :mod:`.writer` -- :class:`JournalWriter` (``append``, ``append_many``, ``durable_seq``).
- :mod:`.reader` -- :func:`verify`, :func:`recover`, :class:`JournalReader` (replay).
- :mod:`.kernels` -- the Numba batch kernels (CRC-32C, pack, scan, resync).

Typical use::

    config = JournalWriterConfig(durability="interval", interval_ns=5_000_000)
    journal = JournalWriter.open(path, config, clock)
    seq = journal.append(TYPE_TICK, rx_ns, payload)   # journal.durable_seq tells when it is safe
    head = journal.close()                            # goes into the run's manifest
    verify(path, expected_head=head).raise_for_problems()

Layer: a subsystem. It may import the wire formats (CRC-32C) and contracts below it; it must
not import security, clocksync, the roles, replay, kpi or rig.
"""

from __future__ import annotations

from .format import INDEX_DTYPE, segment_name
from .reader import JournalReader, Record, RecordBatch, recover, verify
from .records import Durability, JournalHead, JournalProblem, JournalWriterConfig, VerifyReport
from .writer import JournalWriter

__all__ = [
    "INDEX_DTYPE",
    "Durability",
    "JournalHead",
    "JournalProblem",
    "JournalReader",
    "JournalWriter",
    "JournalWriterConfig",
    "Record",
    "RecordBatch",
    "VerifyReport",
    "recover",
    "segment_name",
    "verify",
]
