"""``arbsphere verify RUN_DIR``: check a result set end to end, stopping at the first failure.

In order: ``manifest.json`` reads; every file it lists exists with its SHA-256 (files present
but unlisted are reported, not failed); then, when the manifest has a ``security`` section, the
public roster ``identities.json`` (every credential signed by the campaign authority the manifest
names, and by the one the user pins, if any) and the governance ledger (:func:`verify_ledger`
with the roster's subject keys, the manifest's cosigners and its size/root anchor; every
checkpoint signed by the manifest's signer, a coordinator). File problems raise
:class:`ResultSetError`; security problems the :class:`SecurityError` subclass that found them.

Before the file hashes, ``manifest.sig`` (:mod:`arbsphere.kpi.manifest_sig`): the run's
authority's Ed25519 signature over ``manifest.json``'s bytes, checked with the public key in its
``did:key`` — which must be the manifest's ``security.authority_did`` and the pinned one, if any.
A result set without ``manifest.sig`` is reported as unsigned (written before manifests were
signed), not failed. Without ``--authority`` the authority is the one the result set names, so
a pinned DID is what ties a result set to an authority you trust.

``report.html`` is the one listed file that may differ from its hash: ``arbsphere report``
regenerates it from the verified data, so a differing report is reported as regenerated (not
verified: read it as a view of the data, the data is what is signed), never failed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from arbsphere.errors import CredentialError, LedgerError, ResultSetError
from arbsphere.kpi.manifest_sig import MANIFEST_SIG, ManifestSignature, check_manifest_signature
from arbsphere.kpi.resultset import REPORT, UNLISTED, sha256_file
from arbsphere.security.credentials import Credential
from arbsphere.security.identity import Role, did_key_from_public, public_from_did_key
from arbsphere.security.ledger import (
    CHECKPOINTS_FILE,
    Checkpoint,
    LedgerVerification,
    verify_ledger,
)

__all__ = ["IDENTITIES_FORMAT", "GovernanceCheck", "ResultSetReport", "verify_result_set"]

IDENTITIES_FORMAT = "arbsphere-identities-v1"
MANIFEST = "manifest.json"
#: the one listed file ``arbsphere report`` may rewrite (see the module docstring)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_T = TypeVar("_T")


@dataclass(frozen=True)
class GovernanceCheck:
    """What :func:`verify_governance` checked: the roster and the ledger."""

    authority_did: str
    roles: dict[str, Role]  # name -> role
    credentials: int
    ledger: LedgerVerification
    verify_ms: float
    missing_venues: tuple[str, ...]  # venues of the roster that did not cosign the last checkpoint


@dataclass(frozen=True)
class ResultSetReport:
    """The outcome of a successful :func:`verify_result_set`."""

    run_dir: Path
    files_checked: int
    unlisted: tuple[str, ...]
    ledger: LedgerVerification | None
    verify_ms: float
    authority_did: str | None
    pinned: bool
    credentials: int = 0
    roles: int = 0
    transport: str | None = None
    tags: bool | None = None
    missing_venues: tuple[str, ...] = ()
    signature: ManifestSignature | None = None
    report_regenerated: bool = False

    def lines(self) -> list[str]:
        """Human-readable summary, one line per check."""
        out = [f"result set {self.run_dir}"]
        if self.signature is not None:
            out.append(
                f"manifest: signed by {self.signature.authority_did} ({MANIFEST_SIG} verifies "
                f"over {MANIFEST}, SHA-256 {self.signature.manifest_sha256[:16]}…)"
            )
        else:
            out.append(
                f"warning: manifest not signed (no {MANIFEST_SIG}): its file hashes are not "
                "bound to an authority"
            )
        out.append(f"files: {self.files_checked} listed in the manifest, every SHA-256 matches")
        if self.report_regenerated:
            out.append(
                f"note: {REPORT} differs from the manifest's hash: regenerated (arbsphere "
                "report) or edited; it is not verified, the data it is drawn from is"
            )
        if self.unlisted:
            out.append(
                f"unlisted (present, not in the manifest, not verified): {', '.join(self.unlisted)}"
            )
        if self.ledger is None:
            out.append(
                "no ledger: the manifest has no security section (a result set written before "
                "the governance ledger); only file hashes were checked"
            )
            return out
        trust = (
            "pinned by you"
            if self.pinned
            else "named by the result set itself; pass --authority DID to pin the one you trust"
        )
        out.append(f"authority: {self.authority_did} ({trust})")
        out.append(
            f"credentials: all {self.credentials} of the {self.roles} roles are signed by "
            "the authority"
        )
        led = self.ledger
        cosigned = ", ".join(led.final_cosigners) or "nobody"
        out.append(
            f"ledger: {led.events} events, {led.checkpoints} checkpoints, root "
            f"{led.root_hex[:16]}…; signed by {led.final_signer}, cosigned by {cosigned}; "
            f"chain, proofs and signatures verified in {self.verify_ms:.1f} ms"
        )
        kinds = ", ".join(f"{k} {n}" for k, n in led.kinds.items() if n)
        out.append(f"events: {kinds or 'none'}")
        if self.missing_venues:
            out.append(
                "note: venues in the roster that did not cosign the last checkpoint: "
                + ", ".join(self.missing_venues)
            )
        if self.transport is not None:
            tags = {True: "on", False: "OFF", None: "not recorded"}[self.tags]
            out.append(f"transport: {self.transport}, message tags {tags}")
            if self.transport != "curve":
                out.append("warning: pipeline sockets were not encrypted (CurveZMQ off)")
            if self.tags is False:
                out.append("warning: messages carried no per-message tags")
        return out


def verify_result_set(run_dir: Path, *, authority_did: str | None = None) -> ResultSetReport:
    """Verify the result set in ``run_dir`` (see the module docstring); raise on the first
    failure. ``authority_did`` pins the campaign authority the caller trusts."""
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    security = manifest.get("security")
    claimed = security.get("authority_did") if isinstance(security, dict) else None
    signature = check_manifest_signature(
        run_dir, authority_did if authority_did is not None else claimed
    )
    files = _field(manifest, "files", dict, MANIFEST)
    report_regenerated = _check_files(run_dir, files)
    unlisted = tuple(
        rel
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and (rel := p.relative_to(run_dir).as_posix()) not in UNLISTED
        if rel not in files
    )
    if security is None:
        if authority_did is not None:
            raise CredentialError(
                f"{MANIFEST}: the result set has no security section (no authority, no ledger);"
                f" you trust {authority_did}",
                reason="untrusted_authority",
            )
        return ResultSetReport(
            run_dir, len(files), unlisted, None, 0.0, None, False,
            signature=signature, report_regenerated=report_regenerated,
        )  # fmt: skip
    if not isinstance(security, dict):
        raise ResultSetError(f"{MANIFEST}: key 'security': expected an object")
    check = verify_governance(run_dir, security, authority_did=authority_did)
    tags = security.get("tags")
    return ResultSetReport(
        run_dir=run_dir,
        files_checked=len(files),
        unlisted=unlisted,
        ledger=check.ledger,
        verify_ms=check.verify_ms,
        authority_did=check.authority_did,
        pinned=authority_did is not None,
        credentials=check.credentials,
        roles=len(check.roles),
        transport=str(security.get("transport", "not recorded")),
        tags=tags if isinstance(tags, bool) else None,
        missing_venues=check.missing_venues,
        signature=signature,
        report_regenerated=report_regenerated,
    )


def _check_files(run_dir: Path, files: Mapping[str, Any]) -> bool:
    """Every listed file exists with its SHA-256; returns whether ``report.html`` differs (the
    one file allowed to: see the module docstring)."""
    report_regenerated = False
    for rel in sorted(files):
        expected = files[rel]
        if not isinstance(expected, str) or _SHA256_RE.fullmatch(expected) is None:
            raise ResultSetError(f"{MANIFEST}: files[{rel!r}]: {expected!r} is not a SHA-256 hex")
        path = _inside(run_dir, rel, f"files[{rel!r}]")
        if not path.is_file():
            raise ResultSetError(f"{rel}: listed in the manifest but missing")
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise ResultSetError(f"{rel}: cannot read: {exc}") from exc
        if actual == expected:
            continue
        if rel == REPORT:
            report_regenerated = True
            continue
        raise ResultSetError(
            f"{rel}: SHA-256 is {actual[:16]}…, the manifest says {expected[:16]}…"
        )
    return report_regenerated


def verify_governance(
    run_dir: Path, security: Mapping[str, Any], *, authority_did: str | None = None
) -> GovernanceCheck:
    """Verify the roster and the ledger a manifest's ``security`` section describes (usable
    before ``manifest.json`` is written, e.g. to fill ``kpi.json``'s ``governance``)."""
    where = f"{MANIFEST}: security"
    claimed = _field(security, "authority_did", str, where)
    ledger_cfg = _field(security, "ledger", dict, where)
    roster_rel = _field(security, "identities", str, where)
    roster = _read_json(_inside(run_dir, roster_rel, "security.identities"), roster_rel)
    if not isinstance(roster, dict) or roster.get("format") != IDENTITIES_FORMAT:
        raise ResultSetError(f"{roster_rel}: not an {IDENTITIES_FORMAT} roster")
    session = security.get("session")
    if session is not None and roster.get("session") != session:
        raise ResultSetError(
            f"{roster_rel}: session {roster.get('session')!r}, the manifest says {session!r}"
        )
    authority = _roster_authority(roster, roster_rel, claimed, authority_did)
    roles, keys, credentials = _check_roster(roster, roster_rel, authority)
    result, verify_ms = _verify_run_ledger(run_dir, ledger_cfg, f"{where}.ledger", roles, keys)
    venues = sorted(n for n, r in roles.items() if r == Role.VENUE)
    missing = tuple(v for v in venues if v not in result.final_cosigners)
    return GovernanceCheck(claimed, roles, credentials, result, verify_ms, missing)


def _roster_authority(
    roster: Mapping[str, Any], roster_rel: str, claimed: str, authority_did: str | None
) -> Ed25519PublicKey:
    """The roster's authority key: its DID must be the did:key of that key, the manifest's
    ``claimed`` DID, and the one the caller trusts (``authority_did``, when pinned)."""
    auth = _field(roster, "authority", dict, roster_rel)
    auth_key = _hex_bytes(_field(auth, "public_key", str, roster_rel), 32, f"{roster_rel}: key")
    auth_did = did_key_from_public(auth_key)
    if auth.get("did") != auth_did:
        raise CredentialError(
            f"{roster_rel}: authority did {auth.get('did')!r} is not the did:key of its "
            f"public_key ({auth_did})",
            reason="bad_did",
        )
    if auth_did != claimed:
        raise CredentialError(
            f"{roster_rel}: authority {auth_did} is not the manifest's {claimed}",
            reason="untrusted_authority",
        )
    if authority_did is not None and authority_did != claimed:
        raise CredentialError(
            f"result set was issued by {claimed}, you trust {authority_did}",
            reason="untrusted_authority",
        )
    return Ed25519PublicKey.from_public_bytes(auth_key)


def _verify_run_ledger(
    run_dir: Path,
    ledger_cfg: Mapping[str, Any],
    where: str,
    roles: Mapping[str, Role],
    keys: Mapping[str, Ed25519PublicKey],
) -> tuple[LedgerVerification, float]:
    """The run's ledger, signed by the roster's coordinator and cosigned by its venues as the
    manifest says, against the manifest's anchor; returns the verification and its time (ms)."""
    ledger_rel = _field(ledger_cfg, "dir", str, where)
    ledger_dir = _inside(run_dir, ledger_rel, "security.ledger.dir")
    signer = _field(ledger_cfg, "signer", str, where)
    cosigners = _field(ledger_cfg, "cosigners", list, where)
    size = _field(ledger_cfg, "size", int, where)
    root = _hex_bytes(_field(ledger_cfg, "root", str, where), 32, where)
    if roles.get(signer) != Role.COORDINATOR:
        raise LedgerError(
            f"{MANIFEST}: ledger signer {signer!r} is not a coordinator of the roster "
            f"(role {roles.get(signer, 'absent')})",
            reason="unknown_signer",
        )
    for name in cosigners:
        if not isinstance(name, str) or roles.get(name) != Role.VENUE:
            raise LedgerError(
                f"{MANIFEST}: ledger cosigner {name!r} is not a venue of the roster",
                reason="unknown_signer",
            )
    trusted = {name: keys[name] for name in (signer, *cosigners)}
    t0 = time.perf_counter()
    result = verify_ledger(
        ledger_dir,
        trusted,
        require_cosigners=cosigners,
        expected_size=size,
        expected_root=root,
    )
    verify_ms = (time.perf_counter() - t0) * 1e3
    _check_checkpoint_signer(ledger_dir / CHECKPOINTS_FILE, signer)
    expected_cps = ledger_cfg.get("checkpoints")
    if expected_cps is not None and expected_cps != result.checkpoints:
        raise LedgerError(
            f"{result.checkpoints} checkpoints, the manifest says {expected_cps}",
            reason="anchor_mismatch",
            path=str(ledger_dir / CHECKPOINTS_FILE),
        )
    return result, verify_ms


def _check_checkpoint_signer(cp_path: Path, signer: str) -> None:
    """Every checkpoint is signed by the manifest's ``signer``."""
    lines = cp_path.read_text("utf-8").split("\n")[:-1]  # verify_ledger parsed it already
    for k, line in enumerate(lines):
        cp = Checkpoint.from_json(line, k, str(cp_path))
        if cp.signer != signer:
            raise LedgerError(
                f"checkpoint {k} is signed by {cp.signer!r}, the manifest's signer is {signer!r}",
                reason="unknown_signer",
                path=str(cp_path),
            )


def _check_roster(
    roster: Mapping[str, Any], rel: str, authority: Ed25519PublicKey
) -> tuple[dict[str, Role], dict[str, Ed25519PublicKey], int]:
    """Every role's credentials: well-formed, signed by ``authority``, naming the role's name,
    DID and role; returns (name -> role, name -> subject key, credentials checked)."""
    entries = _field(roster, "roles", dict, rel)
    roles: dict[str, Role] = {}
    keys: dict[str, Ed25519PublicKey] = {}
    serials: dict[int, str] = {}
    sender_ids: dict[int, str] = {}
    count = 0
    for name, entry in entries.items():
        where = f"{rel}: role {name!r}"
        if not isinstance(entry, dict):
            raise ResultSetError(f"{where}: expected an object")
        try:
            role = Role(str(entry.get("role")))
        except ValueError:
            raise CredentialError(
                f"{where}: unknown role {entry.get('role')!r}", reason="malformed"
            ) from None
        did = _field(entry, "did", str, where)
        try:
            subject = public_from_did_key(did)
        except CredentialError as exc:
            raise CredentialError(f"{where}: {exc}", reason=exc.reason) from exc
        sender_id = _field(entry, "sender_id", int, where)
        if sender_id in sender_ids:
            raise ResultSetError(f"{where}: sender_id {sender_id} is {sender_ids[sender_id]}'s too")
        sender_ids[sender_id] = name
        creds = _field(entry, "credentials", list, where)
        if not creds:
            raise CredentialError(f"{where}: no credential", reason="unknown")
        for i, text in enumerate(creds):
            at = f"{where}: credential {i}"
            if not isinstance(text, str):
                raise CredentialError(f"{at}: not a hex string", reason="malformed")
            try:
                cred = Credential.from_bytes(bytes.fromhex(text))
            except (ValueError, CredentialError) as exc:
                raise CredentialError(f"{at}: {exc}", reason="malformed") from exc
            try:
                authority.verify(cred.signature, cred.body())
            except InvalidSignature:
                raise CredentialError(
                    f"{at} (serial {cred.serial}): not signed by the authority",
                    reason="bad_signature",
                ) from None
            if cred.name != name or cred.did != did or cred.role != role:
                raise CredentialError(
                    f"{at} (serial {cred.serial}) binds {cred.name!r}, {cred.role}, {cred.did};"
                    f" the roster says {name!r}, {role}, {did}",
                    reason="wrong_role" if cred.role != role else "conflict",
                )
            if cred.serial in serials:
                raise CredentialError(
                    f"{at}: serial {cred.serial} is also {serials[cred.serial]}'s",
                    reason="conflict",
                )
            serials[cred.serial] = name
            count += 1
        roles[name] = role
        keys[name] = Ed25519PublicKey.from_public_bytes(subject)
    return roles, keys, count


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    manifest = _read_json(run_dir / MANIFEST, MANIFEST)
    if not isinstance(manifest, dict):
        raise ResultSetError(f"{MANIFEST}: not a JSON object")
    return manifest


def _read_json(path: Path, rel: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultSetError(f"{rel}: missing ({path})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultSetError(f"{rel}: cannot read: {exc}") from exc


def _field(obj: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ResultSetError(f"{where}: key {key!r}: expected {kind.__name__}, got {value!r}")
    return value


def _hex_bytes(text: str, length: int, where: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != length:
        raise ResultSetError(f"{where}: {text!r} is not {length} bytes of hex")
    return raw


def _inside(run_dir: Path, rel: str, what: str) -> Path:
    """``run_dir / rel``, refusing a path that leaves the result set."""
    path = run_dir / rel
    if Path(rel).is_absolute() or not path.resolve().is_relative_to(run_dir.resolve()):
        raise ResultSetError(f"{MANIFEST}: {what}: {rel!r} is outside the result set")
    return path
