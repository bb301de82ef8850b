"""``manifest.sig``: the run's authority signs ``manifest.json``; ``arbsphere verify`` checks it
with public material only, and refuses a manifest changed after signing (one byte, a swapped
file hash) or signed by another authority than the one pinned. A synthetic result set (no
campaign run) from ``test_verify_run``; the signed result set of a real run is checked in
``test_campaign``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from test_verify_run import ResultSet, build_result_set, failure

from arbsphere.errors import CredentialError, ResultSetError
from arbsphere.kpi.manifest_sig import MANIFEST_SIG, check_manifest_signature, sign_manifest
from arbsphere.kpi.resultset import ResultSetWriter
from arbsphere.kpi.verify import verify_result_set
from arbsphere.rig.cli import main
from arbsphere.security.credentials import CampaignAuthority
from arbsphere.testing import StepClock


def _authority() -> CampaignAuthority:
    return CampaignAuthority(Ed25519PrivateKey.generate(), StepClock(1_700_000_000_000_000_000, 1))


@pytest.fixture
def signed(tmp_path: Path) -> ResultSet:
    rs = build_result_set(tmp_path)
    sign_manifest(rs.run_dir, rs.authority)
    return rs


def test_signed_manifest_verifies_with_public_material_only(
    signed: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    sig = json.loads((signed.run_dir / MANIFEST_SIG).read_text())
    assert sig["authority_did"] == signed.authority.did and len(sig["signature"]) == 128
    report = verify_result_set(signed.run_dir, authority_did=signed.authority.did)
    assert report.signature is not None and report.signature.authority_did == signed.authority.did
    assert report.unlisted == ()  # manifest.sig is not a stray file
    capsys.readouterr()
    assert main(["verify", str(signed.run_dir), "--authority", signed.authority.did]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"manifest: signed by {signed.authority.did}" in out and "verified" in out


def test_one_byte_changed_in_the_manifest_is_refused(
    signed: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    path = signed.run_dir / "manifest.json"
    data = path.read_bytes()
    at = data.index(b'"complete"') + 1
    path.write_bytes(data[:at] + b"C" + data[at + 1 :])  # "complete" -> "Complete"
    with pytest.raises(CredentialError, match=r"manifest\.sig: does not verify: manifest\.json "
                       r"changed since it was signed") as exc:  # fmt: skip
        verify_result_set(signed.run_dir)
    assert exc.value.reason == "bad_signature"
    assert "manifest.sig: does not verify" in failure(signed, capsys)


def test_swapped_file_hash_is_refused_although_the_files_match(signed: ResultSet) -> None:
    # kpi.json edited and its hash updated in the manifest: every file hash matches again,
    # only the signature tells
    (signed.run_dir / "kpi.json").write_text('{"throughput": {"ticks_in": 999}}')
    signed.rehash()
    with pytest.raises(CredentialError, match="changed since it was signed"):
        verify_result_set(signed.run_dir)


def test_signature_by_another_key_is_refused(signed: ResultSet) -> None:
    sig_path = signed.run_dir / MANIFEST_SIG
    sig = json.loads(sig_path.read_text())
    forged = _authority().sign_document((signed.run_dir / "manifest.json").read_bytes())
    sig_path.write_text(json.dumps({**sig, "signature": forged.hex()}))
    with pytest.raises(CredentialError, match="the signature is not did:key:"):
        verify_result_set(signed.run_dir)


def test_wrong_authority_pinned_is_refused(
    signed: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _authority().did
    with pytest.raises(CredentialError, match=rf"manifest\.sig: signed by .*expected .*{other}"):
        verify_result_set(signed.run_dir, authority_did=other)
    assert "manifest.sig: signed by" in failure(signed, capsys, "--authority", other)


def test_signed_by_an_authority_other_than_the_manifests_is_refused(tmp_path: Path) -> None:
    rs = build_result_set(tmp_path)
    sign_manifest(rs.run_dir, _authority())  # a valid signature, by a key the roster lacks
    with pytest.raises(CredentialError, match=r"expected the authority " + rs.authority.did):
        verify_result_set(rs.run_dir)


def test_missing_signature_is_reported_as_such(tmp_path: Path) -> None:
    rs = build_result_set(tmp_path)
    assert check_manifest_signature(rs.run_dir, rs.authority.did) is None
    report = verify_result_set(rs.run_dir)
    assert report.signature is None
    assert any("manifest not signed (no manifest.sig)" in line for line in report.lines())


def test_malformed_signature_file_is_a_result_set_error(signed: ResultSet) -> None:
    (signed.run_dir / MANIFEST_SIG).write_text('{"format": "something-else"}')
    with pytest.raises(ResultSetError, match="not an arbsphere-manifest-sig/1 signature"):
        verify_result_set(signed.run_dir)


def test_writer_signs_the_exact_bytes_it_wrote(tmp_path: Path) -> None:
    authority = _authority()
    out = ResultSetWriter(tmp_path / "run", "loopback", 1_700_000_000_000_000_000)
    out.write_json("kpi.json", {"a": 1})
    out.set_status(True)
    out.finish(signer=authority)
    checked = check_manifest_signature(out.run_dir, authority.did)
    assert checked is not None and checked.authority_did == authority.did
    assert "manifest.sig" not in json.loads((out.run_dir / "manifest.json").read_text())["files"]


def test_the_authority_signs_json_documents_only() -> None:
    with pytest.raises(CredentialError, match="JSON documents only"):
        _authority().sign_document(b"ASCR\x01 a credential body")


def test_signature_checks_with_a_plain_ed25519_library(signed: ResultSet) -> None:
    """What a reader without the rig does: did:key -> raw key (multibase base58btc, multicodec
    0xed01), then Ed25519 over manifest.json's bytes."""
    sig = json.loads((signed.run_dir / MANIFEST_SIG).read_text())
    did = sig["authority_did"]
    assert did.startswith("did:key:z")
    raw = base58.b58decode(did.removeprefix("did:key:z"))
    assert raw[:2] == b"\xed\x01"
    key = Ed25519PublicKey.from_public_bytes(raw[2:])
    manifest = (signed.run_dir / "manifest.json").read_bytes()
    key.verify(bytes.fromhex(sig["signature"]), manifest)  # raises if it does not verify
    assert hashlib.sha256(manifest).hexdigest() == sig["sha256"]
