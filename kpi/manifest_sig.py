"""``manifest.sig``: the run's authority signs ``manifest.json``, so a published result set can
be checked without the rig's private keys.

The signature is Ed25519 over the manifest's exact bytes as written (no re-serialisation, so
any verifier — this module, ``openssl pkeyutl -verify -rawin``, a few lines of any Ed25519
library — checks the same bytes). The detached ``manifest.sig`` is JSON: the format, the file
signed, its SHA-256 (to name a mismatch precisely), the signer's ``did:key`` (the public key
itself, so no private material is needed to check) and the hex signature. The manifest's
``files`` hold every other file's SHA-256, so the signature covers the whole result set.

The signature file is not listed in the manifest (it is written after it, over it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from arbsphere.errors import CredentialError, ResultSetError
from arbsphere.security.identity import public_from_did_key

__all__ = [
    "MANIFEST_SIG",
    "SIG_FORMAT",
    "ManifestSignature",
    "ManifestSigner",
    "check_manifest_signature",
    "sign_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
SIG_FORMAT = "arbsphere-manifest-sig/1"


class ManifestSigner(Protocol):
    """What signs a manifest: the run's campaign authority (:class:`CampaignAuthority`)."""

    @property
    def did(self) -> str: ...

    def sign_document(self, document: bytes) -> bytes: ...


@dataclass(frozen=True)
class ManifestSignature:
    """A verified ``manifest.sig``: who signed which manifest bytes."""

    authority_did: str
    manifest_sha256: str


def sign_manifest(run_dir: Path, signer: ManifestSigner) -> Path:
    """Sign ``run_dir/manifest.json``'s bytes with ``signer`` and write ``manifest.sig``."""
    data = (Path(run_dir) / MANIFEST).read_bytes()
    sig = {
        "format": SIG_FORMAT,
        "signed": MANIFEST,
        "sha256": hashlib.sha256(data).hexdigest(),
        "algorithm": "Ed25519",
        "authority_did": signer.did,
        "signature": signer.sign_document(data).hex(),
    }
    path = Path(run_dir) / MANIFEST_SIG
    path.write_text(json.dumps(sig, indent=2) + "\n", "utf-8")
    return path


def check_manifest_signature(run_dir: Path, expected_did: str | None) -> ManifestSignature | None:
    """Check ``manifest.sig`` over ``manifest.json``; ``None`` when the result set has none.

    ``expected_did`` is the authority the signature must be by (the manifest's, or the one the
    caller pinned). Raises :class:`CredentialError` naming what failed: a signer other than the
    expected authority, a manifest whose bytes changed since it was signed, a bad signature."""
    run_dir = Path(run_dir)
    sig_path = run_dir / MANIFEST_SIG
    if not sig_path.is_file():
        return None
    sig = _read(sig_path)
    did = _text(sig, "authority_did")
    if expected_did is not None and did != expected_did:
        raise CredentialError(
            f"{MANIFEST_SIG}: signed by {did}, expected the authority {expected_did}",
            reason="untrusted_authority",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(public_from_did_key(did))
    except CredentialError as exc:
        raise CredentialError(f"{MANIFEST_SIG}: authority_did: {exc}", reason="bad_did") from exc
    try:
        signature = bytes.fromhex(_text(sig, "signature"))
    except ValueError:
        raise ResultSetError(f"{MANIFEST_SIG}: signature is not hex") from None
    data = (run_dir / MANIFEST).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    signed = _text(sig, "sha256")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        changed = (
            f"{MANIFEST} changed since it was signed (SHA-256 {actual[:16]}…, signed "
            f"{signed[:16]}…)"
            if actual != signed
            else f"the signature is not {did}'s over {MANIFEST}"
        )
        raise CredentialError(
            f"{MANIFEST_SIG}: does not verify: {changed}", reason="bad_signature"
        ) from None
    return ManifestSignature(did, actual)


def _read(path: Path) -> dict[str, Any]:
    try:
        sig = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultSetError(f"{MANIFEST_SIG}: cannot read: {exc}") from exc
    if not isinstance(sig, dict) or sig.get("format") != SIG_FORMAT:
        raise ResultSetError(f"{MANIFEST_SIG}: not an {SIG_FORMAT} signature")
    if sig.get("signed") != MANIFEST or sig.get("algorithm") != "Ed25519":
        raise ResultSetError(
            f"{MANIFEST_SIG}: signs {sig.get('signed')!r} with {sig.get('algorithm')!r}; "
            f"expected {MANIFEST} with Ed25519"
        )
    return sig


def _text(sig: dict[str, Any], key: str) -> str:
    value = sig.get(key)
    if not isinstance(value, str):
        raise ResultSetError(f"{MANIFEST_SIG}: key {key!r}: expected a string, got {value!r}")
    return value
