"""Identities: did:key against the W3C CCG did:key test vectors, CurveZMQ keys against the
libzmq test key pairs, key storage on disk and its refusals.

Known answers:

* did:key Ed25519 — w3c-ccg/did-method-key ``test-vectors/ed25519-x25519.json`` (seed = the
  RFC 8032 private key, ``publicKeyBase58``, the DID), and openwallet-foundation/acapy
  ``aries_cloudagent/did/tests/test_dids.py`` (``publicKeyBase58`` ↔ DID). The X25519 DID of the
  W3C file is used as a refusal probe (multicodec 0xec).
* CurveZMQ keys — libzmq ``doc/zmq_curve.adoc`` "TEST KEY VALUES" (hex and Z85 of the client and
  server key pairs); Z85 — ZeroMQ RFC 32 ("HelloWorld").
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import base58
import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from zmq.utils import z85

from arbsphere.errors import CredentialError, SecurityError
from arbsphere.security.identity import (
    PublicIdentity,
    Role,
    RoleIdentity,
    check_name,
    did_key_from_public,
    public_from_did_key,
)

# (RFC 8032 private key = seed hex, publicKeyBase58, did) from w3c-ccg/did-method-key
W3C_ED25519 = [
    (
        "00" * 32,
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    ),
    (
        "00" * 31 + "01",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
    ),
    (
        "00" * 31 + "02",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
    ),
    (
        "00" * 31 + "03",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
    ),
    (
        "00" * 31 + "04",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
    ),
]
# publicKeyBase58 and DID from openwallet-foundation/acapy test_dids.py
ACAPY_ED25519 = (
    "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K",
    "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th",
)
# an X25519 did:key (multicodec 0xec 0x01) from the same W3C file
W3C_X25519_DID = "did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"

# libzmq doc/zmq_curve.adoc TEST KEY VALUES: (public hex, public z85, secret hex, secret z85)
ZMQ_TEST_KEYS = [
    (
        "BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518",
        b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
        "7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888",
        b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
    ),
    (
        "54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652",
        b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        "8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7",
        b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
    ),
]


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- did:key -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seed_hex", "pub_b58", "did"), W3C_ED25519)
def test_did_key_w3c_vectors(seed_hex: str, pub_b58: str, did: str) -> None:
    public = _raw_public(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)))
    assert base58.b58encode(public).decode() == pub_b58
    assert did_key_from_public(public) == did
    assert public_from_did_key(did) == public


def test_did_key_acapy_vector() -> None:
    pub_b58, did = ACAPY_ED25519
    public = base58.b58decode(pub_b58)
    assert did_key_from_public(public) == did
    assert public_from_did_key(did) == public


def test_did_key_layout_recomputed() -> None:
    public = os.urandom(32)
    did = did_key_from_public(public)
    assert did.startswith("did:key:z6Mk")  # every Ed25519 did:key starts so
    assert base58.b58decode(did[len("did:key:z") :]) == b"\xed\x01" + public


def _did_of(payload: bytes) -> str:
    return "did:key:z" + base58.b58encode(payload).decode()


@pytest.mark.parametrize(
    ("did", "needle"),
    [
        ("did:web:example.com", "does not start"),
        ("did:key:f" + (b"\xed\x01" + bytes(32)).hex(), "does not start"),  # base16 multibase
        ("DID:KEY:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "does not start"),
        ("did:key:z", "multicodec"),
        (W3C_X25519_DID, "multicodec prefix ec01"),
        (_did_of(b"\xed\x01" + bytes(31)), "31 bytes"),
        (_did_of(b"\xed\x01" + bytes(33)), "33 bytes"),
        (_did_of(b"\xed" + bytes(32)), "multicodec"),
        (_did_of(b"\x00\xed\x01" + bytes(32)), "multicodec"),
        ("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0", "base58"),  # '0'
        ("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWé", "base58"),
        ("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp ", "base58"),
    ],
)
def test_public_from_did_key_refuses(did: str, needle: str) -> None:
    with pytest.raises(CredentialError) as info:
        public_from_did_key(did)
    assert info.value.reason == "bad_did"
    assert needle in str(info.value)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_did_key_from_public_refuses_wrong_length(length: int) -> None:
    with pytest.raises(CredentialError, match=f"got {length}") as info:
        did_key_from_public(bytes(length))
    assert info.value.reason == "bad_did"


# --- roles and names -------------------------------------------------------------------------


def test_roles_and_codes() -> None:
    assert [str(r) for r in Role] == [
        "authority",
        "coordinator",
        "venue",
        "broker",
        "device",
        "recorder",
    ]
    assert sorted(r.code for r in Role) == [1, 2, 3, 4, 5, 6]
    for role in Role:
        assert Role.from_code(role.code) is role
    with pytest.raises(KeyError):
        Role.from_code(0)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 33, "vénue", "a b", "a\0"])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="identity name"):
        check_name(name)


def test_check_name_accepts_32_chars() -> None:
    assert check_name("v" * 32) == "v" * 32


# --- CurveZMQ keys -----------------------------------------------------------------------------


def test_z85_rfc32_known_answer() -> None:
    assert z85.encode(bytes.fromhex("864FD26FB559F75B")) == b"HelloWorld"


@pytest.mark.parametrize(("pub_hex", "pub_z85", "sec_hex", "sec_z85"), ZMQ_TEST_KEYS)
def test_curve_keys_libzmq_vectors(
    pub_hex: str, pub_z85: bytes, sec_hex: str, sec_z85: bytes
) -> None:
    assert z85.encode(bytes.fromhex(pub_hex)) == pub_z85
    assert z85.encode(bytes.fromhex(sec_hex)) == sec_z85
    derived = X25519PrivateKey.from_private_bytes(bytes.fromhex(sec_hex)).public_key()
    assert derived.public_bytes_raw().hex().upper() == pub_hex
    identity = RoleIdentity(
        name="zmq-test",
        role=Role.VENUE,
        signing_key=Ed25519PrivateKey.generate(),
        curve_public=pub_z85,
        curve_secret=sec_z85,
        tag_key=X25519PrivateKey.generate(),
    )
    assert identity.public().curve_public_raw.hex().upper() == pub_hex


def test_role_identity_refuses_mismatched_curve_pair() -> None:
    (_, client_pub, _, _), (_, _, _, server_sec) = ZMQ_TEST_KEYS
    with pytest.raises(CredentialError, match="does not belong") as info:
        RoleIdentity(
            name="mixed",
            role=Role.VENUE,
            signing_key=Ed25519PrivateKey.generate(),
            curve_public=client_pub,
            curve_secret=server_sec,
            tag_key=X25519PrivateKey.generate(),
        )
    assert info.value.reason == "bad_identity"


def test_generate_keys_are_consistent_and_distinct() -> None:
    ident = RoleIdentity.generate("venue-a", Role.VENUE)
    assert len(ident.curve_public) == 40 and len(ident.curve_secret) == 40
    assert zmq.curve_public(ident.curve_secret) == ident.curve_public  # libzmq's own derivation
    assert ident.tag_public != z85.decode(ident.curve_public)  # no key reused across protocols
    assert ident.tag_public != ident.signing_public
    assert public_from_did_key(ident.did) == ident.signing_public
    signature = ident.sign(b"payload")
    Ed25519PublicKey.from_public_bytes(public_from_did_key(ident.did)).verify(signature, b"payload")
    assert ident.curve_secret.decode() not in repr(ident)  # secrets stay out of logs
    other = RoleIdentity.generate("venue-a", Role.VENUE)
    assert other.did != ident.did and other.curve_public != ident.curve_public


# --- PublicIdentity -------------------------------------------------------------------------


def test_public_identity_json_round_trip() -> None:
    ident = RoleIdentity.generate("broker-1", Role.BROKER)
    pub = ident.public()
    text = json.dumps(pub.to_dict())
    back = PublicIdentity.from_dict(json.loads(text))
    assert back == pub
    assert back.did == ident.did and back.role is Role.BROKER
    assert json.loads(text)["curve_public"] == ident.curve_public.decode()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("did", "did:key:zzz"),
        ("role", "king"),
        ("tag_public", "zz"),
        ("tag_public", "00" * 31),
        ("curve_public", "short"),
        ("name", "../etc"),
    ],
)
def test_public_identity_from_dict_refuses(key: str, value: str) -> None:
    data = RoleIdentity.generate("venue-a", Role.VENUE).public().to_dict()
    data[key] = value
    with pytest.raises(CredentialError) as info:
        PublicIdentity.from_dict(data)
    assert info.value.reason in ("malformed", "bad_did")


def test_public_identity_from_dict_refuses_missing_key() -> None:
    data = RoleIdentity.generate("venue-a", Role.VENUE).public().to_dict()
    del data["tag_public"]
    with pytest.raises(CredentialError, match="tag_public"):
        PublicIdentity.from_dict(data)


# --- save / load -----------------------------------------------------------------------------


PRIVATE_SUFFIXES = (".ed25519.pem", ".curve.pem", ".tag.pem")


def test_save_load_round_trip_and_modes(tmp_path: Path) -> None:
    ident = RoleIdentity.generate("coord", Role.COORDINATOR)
    ident.save(tmp_path)
    for suffix in PRIVATE_SUFFIXES:
        path = tmp_path / f"coord{suffix}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert stat.S_IMODE((tmp_path / "coord.identity.json").stat().st_mode) == 0o644
    loaded = RoleIdentity.load(tmp_path, "coord")
    assert loaded.public() == ident.public()
    assert loaded.curve_secret == ident.curve_secret
    sig = loaded.sign(b"m")
    ident.signing_key.public_key().verify(sig, b"m")
    assert not list(tmp_path.glob("*.tmp"))


def test_save_tightens_mode_of_existing_file(tmp_path: Path) -> None:
    ident = RoleIdentity.generate("coord", Role.COORDINATOR)
    ident.save(tmp_path)
    os.chmod(tmp_path / "coord.tag.pem", 0o666)
    ident.save(tmp_path)
    assert stat.S_IMODE((tmp_path / "coord.tag.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("suffix", PRIVATE_SUFFIXES)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_load_refuses_accessible_private_key(tmp_path: Path, suffix: str, mode: int) -> None:
    RoleIdentity.generate("coord", Role.COORDINATOR).save(tmp_path)
    path = tmp_path / f"coord{suffix}"
    os.chmod(path, mode)
    with pytest.raises(CredentialError) as info:
        RoleIdentity.load(tmp_path, "coord")
    assert info.value.reason == "key_permissions"
    assert str(path) in str(info.value) and f"{mode:04o}" in str(info.value)


def test_load_refuses_symlinked_key(tmp_path: Path) -> None:
    RoleIdentity.generate("coord", Role.COORDINATOR).save(tmp_path)
    path = tmp_path / "coord.ed25519.pem"
    path.rename(tmp_path / "elsewhere.pem")
    path.symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(CredentialError, match="cannot open") as info:
        RoleIdentity.load(tmp_path, "coord")
    assert info.value.reason == "bad_identity"


def test_load_refuses_swapped_key_kinds(tmp_path: Path) -> None:
    RoleIdentity.generate("coord", Role.COORDINATOR).save(tmp_path)
    ed = tmp_path / "coord.ed25519.pem"
    tag = tmp_path / "coord.tag.pem"
    ed_bytes, tag_bytes = ed.read_bytes(), tag.read_bytes()
    ed.write_bytes(tag_bytes)
    with pytest.raises(CredentialError, match="expected Ed25519PrivateKey"):
        RoleIdentity.load(tmp_path, "coord")
    ed.write_bytes(ed_bytes)
    tag.write_bytes(b"not a pem")
    with pytest.raises(CredentialError, match="not a PKCS8 PEM") as info:
        RoleIdentity.load(tmp_path, "coord")
    assert info.value.reason == "bad_identity"


def test_load_refuses_public_file_not_matching_keys(tmp_path: Path) -> None:
    RoleIdentity.generate("coord", Role.COORDINATOR).save(tmp_path)
    other = RoleIdentity.generate("coord", Role.COORDINATOR).public().to_dict()
    path = tmp_path / "coord.identity.json"
    data = json.loads(path.read_text())
    data["curve_public"] = other["curve_public"]
    path.write_text(json.dumps(data))
    with pytest.raises(CredentialError, match="do not match") as info:
        RoleIdentity.load(tmp_path, "coord")
    assert info.value.reason == "bad_identity"


def test_load_missing_identity(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="cannot open"):
        RoleIdentity.load(tmp_path, "nobody")
    with pytest.raises(ValueError):
        RoleIdentity.load(tmp_path, "../escape")


def test_errors_are_security_errors() -> None:
    with pytest.raises(SecurityError):
        public_from_did_key("nope")
