"""The one exception tree of ArbSphere Rig.

Every error the rig raises on purpose derives from :class:`ArbSphereError`; errors from
libraries (``zmq.ZMQError``, ``serial.SerialException``, ``OSError``) are wrapped at the
boundary with ``raise ... from exc`` so the cause stays visible::

    ArbSphereError
    ├── ConfigError            campaign / registry file invalid (names file, key, value)
    │   ├── ContractVersionError   adapters declare incompatible schema versions
    │   └── ContractError          the registry's enums or field references are invalid, or code
    │                              names a field or code the registry does not declare
    ├── LayoutError            a binary layout declaration is invalid (names file and key)
    ├── DecodeError            bytes on a wire or in a file are malformed (names problem, offset)
    │   ├── FrameError         serial framing: COBS or CRC-32C failure
    │   └── DatagramError      UDP datagram header or message boundaries wrong
    ├── LinkError              a device link (serial port, UDP socket) failed
    ├── DeviceError            an emulated or real device stopped or misbehaved
    ├── PipelineError          a ZeroMQ hop or a role process failed
    ├── SolverError            a coordination kernel got inputs it cannot solve
    ├── ResultSetError         a result set is missing files or is inconsistent
    ├── JournalError           the replay journal cannot be opened or written (names the file)
    │   └── JournalCorruptError    a journal failed verification (segment, offset, seq)
    └── SecurityError          identities, credentials, tags, ledger, aggregation, budgets
        ├── CredentialError        a credential is unknown, expired, revoked, wrong-role or forged
        ├── MessageRefused         a message failed its tag, replay or skew check (never processed)
        ├── LedgerError            the governance ledger is malformed or fails verification
        │   └── ProofError             a Merkle inclusion or consistency proof does not verify
        ├── AggregationError       a secure-aggregation round cannot complete (dropout, headroom)
        └── BudgetExhausted        a privacy budget refuses a release
"""

from __future__ import annotations

from typing import Any


class ArbSphereError(Exception):
    """Base of every error the rig raises on purpose."""


class ConfigError(ArbSphereError):
    """A configuration file is invalid. The message names file, key and offending value."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ""
        if file is not None and key is not None:
            where = f"{file}: key '{key}': "
        elif file is not None:
            where = f"{file}: "
        elif key is not None:
            where = f"key '{key}': "
        super().__init__(f"{where}{message}")


class ContractVersionError(ConfigError):
    """Two parties of a contract graph declare schema versions that cannot talk."""


class ContractError(ConfigError):
    """The schema registry declares an enum or a field's enum wrongly (names file, schema,
    field and value), or code asks the registry for a field, span or enum code it does not
    declare — raised where the code binds the name, at import."""


class LayoutError(ArbSphereError):
    """A binary layout declaration is invalid (misaligned field, unknown type, ...)."""


class DecodeError(ArbSphereError):
    """Malformed bytes. ``problem`` is a short machine-readable tag, ``offset`` a byte offset."""

    def __init__(self, problem: str, offset: int, detail: str) -> None:
        self.problem = problem
        self.offset = offset
        self.detail = detail
        super().__init__(f"{problem} at offset {offset}: {detail}")


class FrameError(DecodeError):
    """A serial frame failed COBS decoding or its CRC-32C check."""


class DatagramError(DecodeError):
    """A UDP datagram's header or message boundaries are inconsistent."""


class LinkError(ArbSphereError):
    """A device link (serial port, UDP socket) could not be opened or failed."""


class DeviceError(ArbSphereError):
    """A device (emulated or real) stopped answering or sent something it must not."""


class PipelineError(ArbSphereError):
    """A pipeline role process or one of its ZeroMQ hops failed."""


class SolverError(ArbSphereError):
    """A coordination kernel was given inputs it cannot solve (e.g. infeasible limits)."""


class ResultSetError(ArbSphereError):
    """A result set is missing files or its contents are inconsistent."""


class JournalError(ArbSphereError):
    """The replay journal cannot be opened, written or synced, or a writer is used after it
    closed or failed. ``path`` names the journal directory or segment file when known."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path is not None else message)


class JournalCorruptError(JournalError):
    """A journal failed verification. ``segment`` (index), ``offset`` (byte offset in that
    segment file) and ``seq`` (the sequence expected there) locate the first problem, ``path``
    is its segment file; ``problem`` is the reader's full description of it."""

    def __init__(
        self,
        message: str,
        *,
        segment: int,
        offset: int,
        seq: int,
        problem: Any = None,
        path: str | None = None,
    ) -> None:
        self.segment = segment
        self.offset = offset
        self.seq = seq
        self.problem = problem
        super().__init__(message)
        self.path = path


class SecurityError(ArbSphereError):
    """An identity, credential, message-tag, ledger, aggregation or privacy-budget check failed.
    ``reason`` is a short machine-readable tag (used as the refusal counter's key)."""

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        self.reason = reason
        super().__init__(message)


class CredentialError(SecurityError):
    """A credential is unknown, expired, not yet valid, revoked, for another role, or its
    signature does not verify. ``reason`` is one of those words."""


class MessageRefused(SecurityError):
    """A message was refused before processing: bad tag, replayed or too old nonce, timestamp
    outside the skew window, unknown sender. ``reason`` names which."""


class LedgerError(SecurityError):
    """The governance ledger is malformed or fails verification. ``path`` and ``index`` (entry
    number) locate the first problem when known."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "ledger",
        path: str | None = None,
        index: int | None = None,
    ) -> None:
        self.path = path
        self.index = index
        where = ""
        if path is not None:
            where += f"{path}: "
        if index is not None:
            where += f"entry {index}: "
        super().__init__(f"{where}{message}", reason=reason)


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify against the claimed root."""


class AggregationError(SecurityError):
    """A secure-aggregation round cannot complete: a party dropped out, the fixed-point sum
    would overflow its headroom, or masked shares are inconsistent."""


class BudgetExhausted(SecurityError):
    """A privacy budget has too little epsilon (or delta) left for the requested release."""
