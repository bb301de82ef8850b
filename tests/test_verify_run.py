"""``arbsphere verify``: a synthetic result set (roster, credentials, ledger, manifest) that
verifies, and each tampering that must fail naming what was changed; the report's Governance
section."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from arbsphere.errors import CredentialError, LedgerError, ResultSetError, SecurityError
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import file_hashes
from arbsphere.kpi.verify import IDENTITIES_FORMAT, verify_result_set
from arbsphere.rig.cli import main
from arbsphere.security.credentials import CampaignAuthority
from arbsphere.security.identity import Role, RoleIdentity
from arbsphere.security.ledger import CHECKPOINTS_FILE, LEDGER_FILE, EventKind, LedgerWriter
from arbsphere.testing import StepClock

ROLES = {
    "coordinator": (Role.COORDINATOR, 1),
    "venue_a": (Role.VENUE, 2),
    "venue_b": (Role.VENUE, 3),
    "broker": (Role.BROKER, 4),
}
VENUES = ("venue_a", "venue_b")


@dataclass
class ResultSet:
    run_dir: Path
    authority: CampaignAuthority
    identities: dict[str, RoleIdentity]

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "manifest.json").read_text())
        return data

    def write_manifest(self, manifest: dict[str, Any], *, rehash: bool = True) -> None:
        if rehash:
            manifest["files"] = file_hashes(self.run_dir)
        (self.run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))

    def rehash(self) -> None:
        self.write_manifest(self.manifest())

    @property
    def ledger_dir(self) -> Path:
        return self.run_dir / "ledger"


def build_result_set(tmp_path: Path, *, security: bool = True) -> ResultSet:
    """A result set as a campaign run writes it, without running one."""
    clock = StepClock(1_700_000_000_000_001_000, 1_000)
    run_dir = tmp_path / "results" / "loopback" / "20260101T000000Z"
    (run_dir / "proc").mkdir(parents=True)
    authority = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
    ids = {name: RoleIdentity.generate(name, role) for name, (role, _) in ROLES.items()}
    creds = {name: [authority.issue(ident.public())] for name, ident in ids.items()}
    creds["coordinator"].append(authority.rotate(creds["coordinator"][0]))
    session = "5e55" * 8
    kpi: dict[str, Any] = {"throughput": {"ticks_in": 100}, "loss": {"gaps": 0}}
    (run_dir / "trace.parquet").write_bytes(bytes(range(256)) * 4)
    (run_dir / "proc" / "coordinator.stats.json").write_text('{"ticks": 100}\n')
    manifest: dict[str, Any] = {
        "format": "arbsphere-resultset/1",
        "campaign": "loopback",
        "run_id": run_dir.name,
        "status": "complete",
    }
    if security:
        roster = {
            "format": IDENTITIES_FORMAT,
            "session": session,
            "authority": {"did": authority.did, "public_key": authority.public_key_raw.hex()},
            "roles": {
                name: {
                    "role": str(ROLES[name][0]),
                    "sender_id": ROLES[name][1],
                    "did": ids[name].did,
                    "credentials": [c.to_bytes().hex() for c in creds[name]],
                }
                for name in ROLES
            },
        }
        (run_dir / "identities.json").write_text(json.dumps(roster, indent=2))
        cosign = {v: ids[v].signing_key for v in VENUES}
        with LedgerWriter(run_dir / "ledger", clock) as ledger:
            ledger.append(EventKind.RUN_START, 1, 0, {"run_id": run_dir.name})
            ledger.append(EventKind.CONFIG_HASH, 1, 0, {"sha256": "ab" * 32})
            for name, (_, sender) in ROLES.items():
                ledger.append(EventKind.ROLE_JOINED, 1, sender, {"name": name})
                ledger.append(EventKind.CREDENTIAL_ISSUED, 0, sender, {"serial": sender})
            ledger.checkpoint("coordinator", ids["coordinator"].signing_key, cosign)
            for i in range(5):
                ledger.append(EventKind.PLAN_DELTA, 1, 4, {"seq": i, "legs": [1, -1]})
            ledger.append(EventKind.MESSAGE_REFUSED, 1, 2, {"reason": "replay"})
            ledger.append(EventKind.RUN_STOP, 1, 0, {"status": "complete"})
            final = ledger.checkpoint("coordinator", ids["coordinator"].signing_key, cosign)
        kpi["governance"] = {"events": final.size, "verified": True, "checkpoints": 2}
        manifest["security"] = {
            "transport": "curve",
            "tags": True,
            "attest_plan_deltas": True,
            "authority_did": authority.did,
            "session": session,
            "identities": "identities.json",
            "ledger": {
                "dir": "ledger",
                "size": final.size,
                "root": final.root.hex(),
                "checkpoints": 2,
                "signer": "coordinator",
                "cosigners": list(VENUES),
            },
            "aggregation": {"reveals_individual_inputs": True, "note": "two venues"},
        }
    (run_dir / "kpi.json").write_text(json.dumps(kpi))
    rs = ResultSet(run_dir, authority, ids)
    rs.write_manifest(manifest)
    return rs


def failure(rs: ResultSet, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run the CLI, expect exit 1, return its output on one line."""
    capsys.readouterr()
    assert main(["verify", str(rs.run_dir), *extra]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "verification FAILED" in out
    return out


@pytest.fixture
def rs(tmp_path: Path) -> ResultSet:
    return build_result_set(tmp_path)


def test_clean_result_set_verifies(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify_result_set(rs.run_dir)
    assert report.ledger is not None
    assert report.ledger.events == 17 and report.ledger.checkpoints == 2
    assert report.ledger.kinds["PLAN_DELTA"] == 5
    assert report.ledger.final_cosigners == VENUES
    assert report.unlisted == ()
    assert report.files_checked == 6  # trace, kpi, proc stats, identities, 2 ledger files
    assert report.credentials == 5 and report.roles == 4
    assert report.authority_did == rs.authority.did and not report.pinned
    assert report.verify_ms > 0
    text = "\n".join(report.lines())
    assert "17 events, 2 checkpoints" in text and "pass --authority" in text

    pinned = verify_result_set(rs.run_dir, authority_did=rs.authority.did)
    assert pinned.pinned
    assert main(["verify", str(rs.run_dir), "--authority", rs.authority.did]) == 0
    assert main(["verify", str(rs.run_dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "verified" in out and "FAILED" not in out


def test_missing_run_dir_or_manifest_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert main(["verify", str(tmp_path)]) == 2
    assert "usage error" in capsys.readouterr().out
    rs = build_result_set(tmp_path)
    assert main(["verify", str(rs.run_dir), "--authority", "did:key:zNotADid"]) == 2


def test_modified_data_file_fails_naming_it(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rs.run_dir / "trace.parquet"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    expected = rs.manifest()["files"]["trace.parquet"]
    with pytest.raises(ResultSetError, match=r"trace\.parquet: SHA-256 is") as info:
        verify_result_set(rs.run_dir)
    assert expected[:16] in str(info.value)
    assert "trace.parquet" in failure(rs, capsys)


def test_deleted_listed_file_fails(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    (rs.run_dir / "proc" / "coordinator.stats.json").unlink()
    with pytest.raises(ResultSetError, match=r"proc/coordinator\.stats\.json: listed .* missing"):
        verify_result_set(rs.run_dir)
    assert "coordinator.stats.json" in failure(rs, capsys)


def test_unlisted_file_is_reported_not_failed(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    (rs.run_dir / "proc" / "notes.txt").write_text("added later\n")
    report = verify_result_set(rs.run_dir)
    assert report.unlisted == ("proc/notes.txt",)
    assert any("proc/notes.txt" in line for line in report.lines())
    assert main(["verify", str(rs.run_dir)]) == 0
    assert "proc/notes.txt" in capsys.readouterr().out


def test_pre_security_result_set_checks_hashes_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rs = build_result_set(tmp_path, security=False)
    report = verify_result_set(rs.run_dir)
    assert report.ledger is None and report.files_checked == 3
    assert any("no ledger" in line for line in report.lines())
    assert main(["verify", str(rs.run_dir)]) == 0
    assert "no ledger" in capsys.readouterr().out
    # pinning an authority on a result set that has none cannot pass
    with pytest.raises(CredentialError, match="no security section"):
        verify_result_set(rs.run_dir, authority_did=rs.authority.did)


def _flip_ledger_byte(rs: ResultSet) -> None:
    path = rs.ledger_dir / LEDGER_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x20  # inside the last entry's JSON payload
    path.write_bytes(bytes(data))


def test_flipped_ledger_entry_caught_by_file_hash(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    _flip_ledger_byte(rs)
    with pytest.raises(ResultSetError, match=r"ledger/ledger\.bin: SHA-256"):
        verify_result_set(rs.run_dir)
    assert "ledger/ledger.bin" in failure(rs, capsys)


def test_flipped_ledger_entry_caught_by_the_ledger(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    _flip_ledger_byte(rs)
    rs.rehash()
    with pytest.raises(LedgerError, match="entry 16") as info:
        verify_result_set(rs.run_dir)
    assert info.value.index == 16 and not isinstance(info.value, ResultSetError)
    assert "entry 16" in failure(rs, capsys)


def test_altered_manifest_root_fails(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = rs.manifest()
    root = manifest["security"]["ledger"]["root"]
    manifest["security"]["ledger"]["root"] = ("0" if root[0] != "0" else "1") + root[1:]
    rs.write_manifest(manifest)
    with pytest.raises(LedgerError, match="the anchor says") as info:
        verify_result_set(rs.run_dir)
    assert info.value.reason == "anchor_mismatch"
    assert "anchor says" in failure(rs, capsys)


def _edit_checkpoints(rs: ResultSet, k: int, edit: Any) -> None:
    path = rs.ledger_dir / CHECKPOINTS_FILE
    lines = path.read_text().splitlines()
    obj = json.loads(lines[k])
    edit(obj)
    lines[k] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    rs.rehash()


def test_replaced_checkpoint_signature_fails(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    def forge(obj: dict[str, Any]) -> None:
        message = bytes.fromhex(obj["root"])  # any message: the key is not the coordinator's
        obj["signature"] = Ed25519PrivateKey.generate().sign(message).hex()

    _edit_checkpoints(rs, 0, forge)
    with pytest.raises(LedgerError, match=r"checkpoint 0: signature of 'coordinator'") as info:
        verify_result_set(rs.run_dir)
    assert info.value.reason == "bad_signature"
    assert "checkpoint 0" in failure(rs, capsys)


def test_missing_cosigner_fails(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    def drop(obj: dict[str, Any]) -> None:
        obj["cosignatures"] = [c for c in obj["cosignatures"] if c["signer"] != "venue_b"]

    _edit_checkpoints(rs, 1, drop)
    with pytest.raises(LedgerError, match="lacks cosignatures of") as info:
        verify_result_set(rs.run_dir)
    assert info.value.reason == "missing_cosigner"
    assert "venue_b" in failure(rs, capsys)


def test_checkpoint_by_another_signer_fails(rs: ResultSet) -> None:
    """A venue's valid signature in the signer slot is still not the coordinator's."""

    def swap(obj: dict[str, Any]) -> None:
        a = next(c for c in obj["cosignatures"] if c["signer"] == "venue_a")
        obj["signer"], obj["signature"] = "venue_a", a["signature"]
        obj["cosignatures"] = [
            {"signer": "coordinator", "signature": obj["signature"]},
            *(c for c in obj["cosignatures"] if c["signer"] == "venue_b"),
        ]

    _edit_checkpoints(rs, 0, swap)
    with pytest.raises(LedgerError, match="checkpoint 0"):
        verify_result_set(rs.run_dir)


def test_signer_not_a_coordinator_fails(rs: ResultSet) -> None:
    manifest = rs.manifest()
    manifest["security"]["ledger"]["signer"] = "broker"
    rs.write_manifest(manifest)
    with pytest.raises(LedgerError, match="'broker' is not a coordinator"):
        verify_result_set(rs.run_dir)


def test_forged_credential_fails(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    mallory = CampaignAuthority(
        Ed25519PrivateKey.generate(), StepClock(1_700_000_000_000_001_000, 1_000)
    )
    forged = mallory.issue(rs.identities["venue_a"].public())
    path = rs.run_dir / "identities.json"
    roster = json.loads(path.read_text())
    roster["roles"]["venue_a"]["credentials"] = [forged.to_bytes().hex()]
    path.write_text(json.dumps(roster))
    rs.rehash()
    with pytest.raises(CredentialError, match=r"role 'venue_a': credential 0 .*not signed") as info:
        verify_result_set(rs.run_dir)
    assert info.value.reason == "bad_signature"
    assert "venue_a" in failure(rs, capsys)


def test_swapped_subject_key_in_roster_fails(rs: ResultSet) -> None:
    """A roster entry naming another key than its (genuine) credentials bind."""
    path = rs.run_dir / "identities.json"
    roster = json.loads(path.read_text())
    roster["roles"]["coordinator"]["did"] = RoleIdentity.generate("x", Role.COORDINATOR).did
    path.write_text(json.dumps(roster))
    rs.rehash()
    with pytest.raises(CredentialError, match="role 'coordinator': credential 0"):
        verify_result_set(rs.run_dir)


def test_pinned_other_authority_fails(rs: ResultSet, capsys: pytest.CaptureFixture[str]) -> None:
    other = CampaignAuthority(
        Ed25519PrivateKey.generate(), StepClock(1_700_000_000_000_001_000, 1_000)
    ).did
    with pytest.raises(CredentialError, match=r"issued by .* you trust"):
        verify_result_set(rs.run_dir, authority_did=other)
    out = failure(rs, capsys, "--authority", other)
    assert "was issued by" in out and other[:20] in out


def test_manifest_authority_not_the_rosters_fails(rs: ResultSet) -> None:
    manifest = rs.manifest()
    manifest["security"]["authority_did"] = RoleIdentity.generate("x", Role.AUTHORITY).did
    rs.write_manifest(manifest)
    with pytest.raises(CredentialError, match="is not the manifest's"):
        verify_result_set(rs.run_dir)


def test_entry_after_last_checkpoint_fails(
    rs: ResultSet, capsys: pytest.CaptureFixture[str]
) -> None:
    with LedgerWriter(rs.ledger_dir, StepClock(1_800_000_000_000_001_000, 1_000)) as ledger:
        ledger.append(EventKind.PLAN_DELTA, 1, 4, {"seq": 99, "legs": [2, -2]})
    rs.rehash()
    with pytest.raises(LedgerError, match="after the last checkpoint") as info:
        verify_result_set(rs.run_dir)
    assert info.value.reason == "uncovered_entries"
    assert "after the last checkpoint" in failure(rs, capsys)


def test_failures_are_security_or_result_set_errors(rs: ResultSet) -> None:
    (rs.run_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ResultSetError, match=r"manifest\.json: cannot read"):
        verify_result_set(rs.run_dir)
    assert not issubclass(ResultSetError, SecurityError)


# --- the report's Governance section --------------------------------------------------------


def _governance(transport: str, tags: bool) -> dict[str, Any]:
    kinds = {k.name: 0 for k in EventKind}
    kinds.update(RUN_START=1, PLAN_DELTA=42, MESSAGE_REFUSED=3)
    return {
        "events": 46,
        "verified": True,
        "verify_ms": 1.25,
        "checkpoints": 3,
        "root": "ab" * 32,
        "kinds": kinds,
        "refusals": {
            "credential": {"expired": 0},
            "message": {"replay": 2, "bad_tag": 1, "late": 0},
            "budget": {},
        },
        "transport": transport,
        "tags": tags,
    }


def _render(tmp_path: Path, governance: dict[str, Any]) -> str:
    manifest: dict[str, object] = {
        "campaign": "loopback",
        "run_id": "r1",
        "status": "complete",
        "security": {"aggregation": {"note": "with two venues the sum reveals the other's input"}},
    }
    out = tmp_path / "report.html"
    render_report({"governance": governance}, None, manifest, out)
    return out.read_text()


def test_report_governance_section(tmp_path: Path) -> None:
    text = _render(tmp_path, _governance("curve", True))
    assert "<h2>Governance</h2>" in text
    section = text[text.index("<h2>Governance</h2>") :]
    assert '<td class="num">curve</td>' in section
    assert "abababababababab…" in section and "ab" * 32 not in section
    assert "PLAN_DELTA" in section and "RUN_STOP" not in section  # non-zero kinds only
    assert "replay" in section and "bad_tag" in section and "late" not in section
    assert "<th>credential</th><td>none</td>" in section
    assert "<th>budget</th><td>none</td>" in section
    assert "reveals the other&#x27;s input" in section
    assert "plaintext" not in section and "warning" not in section


def test_report_warns_on_plaintext_and_tags_off(tmp_path: Path) -> None:
    text = _render(tmp_path, _governance("plaintext", False))
    section = text[text.index("<h2>Governance</h2>") :]
    assert "warning</span> transport is <strong>plaintext</strong>" in section
    assert "per-message tags were <strong>off</strong>" in section
