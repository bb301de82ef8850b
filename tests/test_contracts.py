"""Contracts: registry, envelope codec, malformed input, version refusal, C header layout."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from enum import IntEnum, IntFlag
from pathlib import Path

import numba
import numpy as np
import pytest

from arbsphere.contracts import (
    PLAN_LEG_DTYPE,
    Schema,
    SchemaRegistry,
    check_compatibility,
    default_registry,
    load_registry_text,
)
from arbsphere.contracts_header import header_structs, render_contracts_header
from arbsphere.errors import (
    ConfigError,
    ContractError,
    ContractVersionError,
    DecodeError,
    LayoutError,
)
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.layout import build_layout
from arbsphere.privacy.budget import Mechanism
from arbsphere.security.governance_frames import FrameKind

ROOT = Path(__file__).resolve().parents[1]
REG = default_registry()


def _plan_delta(n_legs: int = 2) -> bytes:
    pd = REG.schema("PlanDelta")
    hdr = np.zeros(1, pd.header_dtype)
    hdr["delta_id"] = 77
    hdr["n_legs"] = n_legs
    legs = np.zeros(n_legs, PLAN_LEG_DTYPE)
    legs["size_lots"] = np.arange(1, n_legs + 1)
    legs["side"] = 1
    return REG.encode(pd, hdr, legs, sender_id=3, nonce=11, origin_ts_ns=1_000)


def test_envelope_fixed_vector() -> None:
    # Fixed vector: a PlanDelta (v1) with no legs, fields chosen so every byte position is
    # checked.
    pd = REG.schema("PlanDelta", 1)
    hdr = np.zeros(1, pd.header_dtype)
    hdr["delta_id"] = 0x0102030405060708
    hdr["ts_ns"] = -2
    hdr["sender"] = 0xA1B2C3D4
    hdr["cause_venue"] = 0x0B0A
    hdr["cause_seq"] = 9
    out = REG.encode(pd, hdr, None, sender_id=0x11223344, nonce=0x55, origin_ts_ns=-1)
    expected = bytes.fromhex(
        "41524253"  # magic "ARBS"
        "0300"
        "0100"  # schema id 3, version 1
        "44332211"  # sender
        "20000000"  # payload_len 32
        "5500000000000000"  # nonce
        "ffffffffffffffff"  # origin ts -1
        "0807060504030201"  # delta_id
        "feffffffffffffff"  # ts_ns -2
        "d4c3b2a1"  # sender
        "0000"  # n_legs
        "0a0b"  # cause_venue
        "0900000000000000"  # cause_seq
    )
    assert out == expected


def test_round_trip_every_schema() -> None:
    rng = np.random.default_rng(5)
    for schema in REG.schemas():
        hdr = np.zeros(1, schema.header_dtype)
        items = None
        if schema.item is not None:
            assert schema.count_field is not None
            items = np.frombuffer(rng.bytes(3 * schema.item.size), dtype=schema.item.dtype).copy()
            hdr[schema.count_field] = 3
        raw = REG.encode(schema, hdr, items, sender_id=1, nonce=2, origin_ts_ns=3)
        msg = REG.decode(raw)
        assert msg.schema is schema
        assert msg.header.tobytes() == hdr.tobytes()
        if items is not None:
            assert msg.items.tobytes() == items.tobytes()


@pytest.mark.parametrize(
    ("mutate", "problem", "offset"),
    [
        (lambda b: b[:10], "short", 10),
        (lambda b: b"XRBS" + b[4:], "bad_magic", 0),
        (lambda b: b[:4] + (99).to_bytes(2, "little") + b[6:], "unknown_schema", 4),
        (lambda b: b[:6] + (7).to_bytes(2, "little") + b[8:], "bad_version", 6),
        (lambda b: b[:-1], "bad_length", 12),
        (lambda b: b + b"\x00", "bad_length", 12),
        # n_legs says 3 but payload holds 2 legs (payload_len consistent with the bytes)
        (lambda b: b[: 32 + 20] + (3).to_bytes(2, "little") + b[32 + 22 :], "bad_length", 52),
    ],
)
def test_malformed_bytes_raise_specific_error(mutate, problem: str, offset: int) -> None:  # type: ignore[no-untyped-def]
    raw = _plan_delta(2)
    with pytest.raises(DecodeError) as info:
        REG.decode(mutate(raw))
    assert info.value.problem == problem
    assert info.value.offset == offset


def test_decode_random_garbage_never_crashes() -> None:
    rng = np.random.default_rng(1)
    good = _plan_delta(3)
    for _ in range(2000):
        buf = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        buf = buf[: int(rng.integers(0, len(buf) + 1))]
        try:
            msg = REG.decode(bytes(buf))
        except DecodeError:
            continue
        # Accepted: then it is exactly consistent with its own lengths.
        assert 32 + msg.schema.payload_size(len(msg.items)) == len(buf)


def test_layout_rejects_misaligned_field() -> None:
    with pytest.raises(LayoutError, match=r"f.toml: layout 'X' field #1 \(b\): offset 1"):
        build_layout("X", [["a", "u8"], ["b", "u32"]], source="f.toml")
    with pytest.raises(LayoutError, match="size 12 is not a multiple of its alignment 8"):
        build_layout("Y", [["a", "u64"], ["b", "u32"]], source="f.toml")
    with pytest.raises(LayoutError, match="unknown type 'u128'"):
        build_layout("Z", [["a", "u128"]], source="f.toml")


def test_registry_errors_name_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"bad.toml: key 'registry'"):
        load_registry_text("[x]\n", source="bad.toml")


def test_toy_pair_graphs_compatible_by_default() -> None:
    for name in ("toyPair", "toyPairClear", "toyPairCentral"):
        graph = REG.graph(name)
        assert set(graph.adapters) == {"broker"}  # the venues: any names, in the venue role
        assert graph.venues is not None and graph.venues.kind == "venue_feed"
        check_compatibility(REG, name, {}, source="campaign.toml")
        check_compatibility(REG, name, {}, source="campaign.toml", venues=["venue_a", "venue_b"])
        roles = graph.roles(["venue_a", "v7"])
        assert set(roles) == {"broker", "venue_a", "v7"}
        assert roles["v7"].kind == "venue_feed" and roles["v7"].speaks == graph.venues.speaks


def test_graphs_take_any_number_of_venues_within_their_count() -> None:
    """toyPair (secure aggregation) takes 2..16 venue adapters, the clear and central graphs
    2..64; a campaign outside the count is refused naming the key."""
    assert REG.graph("toyPair").venues.max_count == 16  # type: ignore[union-attr]
    for name, most in (("toyPair", 16), ("toyPairClear", 64), ("toyPairCentral", 64)):
        check_compatibility(REG, name, {}, source="c.toml", venues=[f"v{i}" for i in range(most)])
        for n in (1, most + 1):
            with pytest.raises(ContractVersionError, match=f"takes 2 to {most} venue") as info:
                check_compatibility(REG, name, {}, source="c.toml",
                                    venues=[f"v{i}" for i in range(n)])  # fmt: skip
            assert info.value.key == "venues"
    # a venue of any name declares its versions like a named adapter did
    speaks = dict(REG.graph("toyPair").venues.speaks)  # type: ignore[union-attr]
    with pytest.raises(ContractVersionError, match="adapter 'venue_h' speaks DualVariables v2"):
        check_compatibility(
            REG, "toyPair", {"venue_h": {**speaks, "DualVariables": 2}}, source="c.toml",
            venues=[f"venue_{c}" for c in "abcdefgh"],
        )  # fmt: skip
    with pytest.raises(ContractVersionError, match="'venue_h' is not part of contract graph"):
        check_compatibility(REG, "toyPair", {"venue_h": speaks}, source="c.toml")


def test_incompatible_adapter_version_refused() -> None:
    # Add a v2 of LocalArbProblem to a private registry, then have venue_b declare it.
    text = (ROOT / "arbsphere" / "contracts.toml").read_text()
    text = text.replace(
        '[[schemas]]\nname = "SharedSignals"',
        '[[schemas]]\nname = "LocalArbProblem"\nid = 1\nversion = 2\ncount_field = "n"\n'
        'header = [["n", "u32"], ["_pad", "u32"]]\nitem = [["c", "f64"]]\n\n'
        '[[schemas]]\nname = "SharedSignals"',
    )
    reg = load_registry_text(text, source="contracts.toml")
    declared = {"venue_b": {"LocalArbProblem": 2, "SharedSignals": 1}}
    with pytest.raises(ContractVersionError) as info:
        check_compatibility(reg, "toyPairCentral", declared, source="campaigns/x.toml",
                            venues=["venue_a", "venue_b"])  # fmt: skip
    msg = str(info.value)
    assert "campaigns/x.toml" in msg
    assert "adapter 'venue_b' speaks LocalArbProblem v2" in msg
    assert "requires v1" in msg


def test_plan_leg_dtype_usable_in_numba() -> None:
    @numba.njit(cache=False)
    def net(legs):  # type: ignore[no-untyped-def]
        s = 0
        for i in range(legs.shape[0]):
            s += legs[i].side * legs[i].size_lots
        return s

    legs = np.zeros(3, PLAN_LEG_DTYPE)
    legs["side"] = [1, -1, 1]
    legs["size_lots"] = [5, 7, 1]
    assert net(legs) == -1


def test_committed_header_is_current() -> None:
    committed = (ROOT / "arbsphere" / "include" / "arbsphere_contracts.h").read_text()
    assert committed == render_contracts_header(), "run `make headers` to regenerate"


def test_header_compiles_and_matches_dtypes(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on PATH; install gcc to run the header layout check")
    structs = header_structs(REG)
    lines = [
        "#include <stdio.h>",
        '#include "arbsphere_contracts.h"',
        "int main(void) {",
        '  printf("{");',
    ]
    first = True
    for cname, layout in structs:
        sep = "" if first else ","
        first = False
        lines.append(f'  printf("{sep}\\"{cname}\\": {{\\"size\\": %zu", sizeof({cname}));')
        for f in layout.fields:
            lines.append(f'  printf(", \\"{f.name}\\": %zu", offsetof({cname}, {f.name}));')
        lines.append('  printf("}");')
    lines += ['  printf("}\\n");', "  return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(
        [
            cc,
            "-std=c11",
            "-Wall",
            "-Werror",
            "-I",
            str(ROOT / "arbsphere" / "include"),
            str(src),
            "-o",
            str(exe),
        ],
        check=True,
    )
    measured = json.loads(
        subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    )
    for cname, layout in structs:
        got = measured[cname]
        assert got["size"] == layout.dtype.itemsize, cname
        fields = layout.dtype.fields
        assert fields is not None
        for f in layout.fields:
            assert got[f.name] == fields[f.name][1], f"{cname}.{f.name}"


def test_packer_matches_encode() -> None:
    pd = REG.schema("PlanDelta")
    hdr = np.zeros(1, pd.header_dtype)
    hdr["delta_id"], hdr["ts_ns"], hdr["sender"], hdr["n_legs"] = 5, 6, 7, 2
    hdr["cause_venue"], hdr["cause_seq"] = 1, 99
    legs = np.zeros(2, PLAN_LEG_DTYPE)
    legs["ts_ns"], legs["delta_id"], legs["venue"], legs["side"] = 6, 5, [0, 1], [1, -1]
    legs["size_lots"], legs["limit_px"] = [3, 3], [10_000, 10_001]
    expected = REG.encode(pd, hdr, legs, sender_id=2, nonce=8, origin_ts_ns=123)
    packer = REG.packer(pd, 2)
    values = list(REG.envelope_values(pd, 2, 2, 8, 123))
    values += [int(hdr[0][f]) for f in pd.header.value_fields]
    for leg in legs:
        values += [int(leg[f]) for f in pd.item.value_fields]  # type: ignore[union-attr]
    assert packer.pack(*values) == expected


def test_decode_values_agrees_with_decode_and_rejects_the_same() -> None:
    raw = _plan_delta(2)
    schema, values = REG.decode_values(raw)
    msg = REG.decode(raw)
    assert schema is msg.schema
    env = REG.envelope.value_fields
    assert values[env.index("nonce")] == msg.nonce
    hdr_fields = schema.header.value_fields
    assert values[len(env) + hdr_fields.index("delta_id")] == 77
    rng = np.random.default_rng(3)
    for _ in range(3000):
        buf = bytearray(raw)
        for _ in range(int(rng.integers(1, 3))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        buf = buf[: int(rng.integers(0, len(buf) + 1))]
        try:
            REG.decode(bytes(buf))
            ok = True
        except DecodeError as exc:
            ok = False
            with pytest.raises(DecodeError) as info:
                REG.decode_values(bytes(buf))
            assert (info.value.problem, info.value.offset) == (exc.problem, exc.offset)
        if ok:
            REG.decode_values(bytes(buf))


def test_decode_values_remembered_shape_still_checks_the_item_count() -> None:
    """A length decoded once is remembered (the hot path's one lookup); a message of that
    length whose count field disagrees with it is still refused as :meth:`decode` refuses it."""
    raw = _plan_delta(2)
    REG.decode_values(raw)  # the shape (PlanDelta v2, 2 legs' length) is now remembered
    schema = REG.schema("PlanDelta", 2)
    at = REG.envelope.size + schema.header.field("n_legs").offset
    bad = bytearray(raw)
    bad[at : at + 2] = (3).to_bytes(2, "little")
    with pytest.raises(DecodeError) as expected:
        REG.decode(bytes(bad))
    with pytest.raises(DecodeError) as info:
        REG.decode_values(bytes(bad))
    assert (info.value.problem, info.value.offset) == (
        expected.value.problem,
        expected.value.offset,
    )
    assert REG.decode_values(raw)[1] == REG.decode_values(raw)[1]  # and the good one still passes


def test_split_messages_cuts_a_frame_at_its_envelopes() -> None:
    # Fixed vector: the v1 PlanDelta of test_envelope_fixed_vector (64 bytes) twice back to
    # back, the second with nonce 0x56: cut at offset 64, each part as encoded.
    pd = REG.schema("PlanDelta", 1)
    hdr = np.zeros(1, pd.header_dtype)
    hdr["delta_id"] = 0x0102030405060708
    first = REG.encode(pd, hdr, None, sender_id=0x11223344, nonce=0x55, origin_ts_ns=-1)
    second = REG.encode(pd, hdr, None, sender_id=0x11223344, nonce=0x56, origin_ts_ns=-1)
    assert len(first) == 64 and first[:4] == b"ARBS"
    assert REG.split_messages(first + second) == [first, second]
    assert REG.split_messages(first) == [first]  # one message: the frame as it is
    three = _plan_delta(2) + _plan_delta(0) + _plan_delta(1)  # sender 3 in all
    parts = REG.split_messages(three)
    assert [REG.decode(p).items.shape[0] for p in parts] == [2, 0, 1]
    assert b"".join(parts) == three


@pytest.mark.parametrize(
    ("frame", "problem", "offset"),
    [
        (b"", "short", 0),
        # 10 bytes after a whole message: too few for an envelope, named at their offset
        (lambda a, b: a + b[:10], "short", 64),
        # the second message's magic flipped: offset of its magic field
        (lambda a, b: a + b"X" + b[1:], "bad_magic", 64),
        # the second message cut short: its payload_len field is named
        (lambda a, b: a + b[:-1], "bad_length", 64 + 12),
        # the first message's payload_len too long for the frame
        (lambda a, b: a[:12] + (1000).to_bytes(4, "little") + a[16:] + b, "bad_length", 12),
        # a second sender inside one tag: refused, its sender_id field named
        (lambda a, b: a + b[:8] + (7).to_bytes(4, "little") + b[12:], "mixed_senders", 64 + 8),
    ],
)
def test_split_messages_names_what_is_wrong(frame, problem: str, offset: int) -> None:  # type: ignore[no-untyped-def]
    pd = REG.schema("PlanDelta", 1)
    hdr = np.zeros(1, pd.header_dtype)
    a = REG.encode(pd, hdr, None, sender_id=3, nonce=1, origin_ts_ns=0)
    b = REG.encode(pd, hdr, None, sender_id=3, nonce=2, origin_ts_ns=0)
    raw = frame(a, b) if callable(frame) else frame
    with pytest.raises(DecodeError) as info:
        REG.split_messages(raw)
    assert (info.value.problem, info.value.offset) == (problem, offset)


# --- enums and field positions ------------------------------------------------------------------

_ENVELOPE = (
    '[["magic", "u32"], ["schema_id", "u16"], ["schema_version", "u16"], ["sender_id", "u32"],'
    ' ["payload_len", "u32"], ["nonce", "u64"], ["origin_ts_ns", "i64"]]'
)


def _registry(enums: str, header: str, source: str = "bad.toml") -> SchemaRegistry:
    """A private registry of one schema ``Thing`` with ``header`` fields and ``enums``."""
    text = (
        f"[registry]\nmagic = 1\nenvelope = {_ENVELOPE}\n\n[graphs]\n\n{enums}\n\n"
        f'[[schemas]]\nname = "Thing"\nid = 1\nversion = 1\nheader = [{header}]\n'
    )
    return load_registry_text(text, source=source)


_KIND = '[enums.Kind]\ndoc = "what it is"\nvalues = { A = 1, B = 2 }'


def test_enums_are_built_from_the_declaration() -> None:
    data = tomllib.loads((ROOT / "arbsphere" / "contracts.toml").read_text())
    assert set(REG.enums) == set(data["enums"])
    for name, spec in data["enums"].items():
        cls = REG.enum(name)
        assert {m.name: int(m) for m in cls} == spec["values"], name
        assert issubclass(cls, IntFlag) == spec.get("flags", False)
        assert cls.__doc__ == spec["doc"]
    assert REG.codes("PlanDeltaKind", "TRADE", "WRITE_OFF") == (1, 2)
    assert REG.codes("ReportStatus", "REJECT") == (4,)
    assert all(type(c) is int for c in REG.codes("RoundPhase", "BEGIN", "REVEAL"))
    kind = REG.schema("PlanDelta", 2).header.field("kind")
    assert kind.enum == "PlanDeltaKind"
    # the device's ACK status is relayed as the report's: one set of codes
    assert {m.name: int(m) for m in REG.enum("ReportStatus")} == dict(dm.DECLARATIONS.ack_status)
    header = render_contracts_header()
    assert "#define ARBSPHERE_PLAN_DELTA_KIND_WRITE_OFF 2u" in header
    assert "uint8_t kind; /* offset 32; codes: PlanDeltaKind */" in header
    with pytest.raises(ContractError, match="enum PlanDeltaKind has no value 'CANCEL'"):
        REG.codes("PlanDeltaKind", "CANCEL")
    with pytest.raises(ContractError, match="no enum 'Nope' declared"):
        REG.enum("Nope")


def test_hand_written_enums_must_match_the_declaration() -> None:
    REG.check_enum(FrameKind, "GovernanceFrameKind")
    REG.check_enum(Mechanism, "NoiseMechanism")

    class Drifted(IntEnum):
        LAPLACE = 1
        GAUSSIAN = 3

    with pytest.raises(ContractError, match="differs from the declaration") as info:
        REG.check_enum(Drifted, "NoiseMechanism")
    assert info.value.key == "enums.NoiseMechanism"


@pytest.mark.parametrize(
    ("enums", "header", "key", "message"),
    [
        (_KIND, '["k", "u8", { enum = "Other" }], ["_p", "u8", 7]', "schemas[0].header.k",
         "Thing v1 field k names enum 'Other', which is not declared \\(declared: Kind\\)"),
        (_KIND, '["k", "f64", { enum = "Kind" }]', "schemas[0].header.k",
         "Thing v1 field k carries enum Kind but is f64, not an integer scalar"),
        (_KIND, '["k", "u16", 2, { enum = "Kind" }]', "schemas[0].header.k",
         "Thing v1 field k carries enum Kind but is u16\\[2\\]"),
        ('[enums.Kind]\ndoc = "d"\nvalues = { A = 1, BIG = 300 }',
         '["k", "u8", { enum = "Kind" }], ["_p", "u8", 7]', "schemas[0].header.k",
         "Thing v1 field k \\(u8\\) cannot carry enum Kind code 300 \\(0..255\\)"),
        ('[enums.Kind]\ndoc = "d"\nvalues = { A = 1, B = 1 }', '["k", "u8"]',
         "enums.Kind.values.B", "code 1 already names A"),
        ('[enums.Kind]\ndoc = "d"\nflags = true\nvalues = { A = 1, B = 3 }', '["k", "u8"]',
         "enums.Kind.values.B", "a flag must be a power of two, got 3"),
        ('[enums.Kind]\ndoc = "d"\nvalues = { a = 1 }', '["k", "u8"]', "enums.Kind.values.a",
         "UPPER_CASE"),
        ('[enums.Kind]\nvalues = { A = 1 }', '["k", "u8"]', "enums.Kind.doc", "doc string"),
        ('[enums.Kind]\ndoc = "d"\nvalues = { A = "1" }', '["k", "u8"]', "enums.Kind.values.A",
         "code must be an integer, got '1'"),
        (_KIND, '["nonce", "u64"]', "schemas[0].header.nonce", "shadow an envelope field"),
        (_KIND, '["items", "u64"]', "schemas[0].header.items", "shadow a FieldIndex name"),
    ],
)  # fmt: skip
def test_a_bad_enum_or_field_declaration_names_file_schema_field_and_value(
    enums: str, header: str, key: str, message: str
) -> None:
    with pytest.raises(ContractError, match=message) as info:
        _registry(enums, header)
    assert info.value.file == "bad.toml" and info.value.key == key
    assert str(info.value).startswith(f"bad.toml: key '{key}': ")


def test_layout_options_are_checked() -> None:
    with pytest.raises(LayoutError, match=r"\(k\): unknown option 'enumm'"):
        build_layout("X", [["k", "u8", {"enumm": "Kind"}]], source="f.toml")
    with pytest.raises(LayoutError, match=r"\(k\): enum must name an enum, got 3"):
        build_layout("X", [["k", "u8", {"enum": 3}]], source="f.toml")


def _distinct_message(schema: Schema, n_items: int) -> bytes:
    """A message of ``schema`` whose every value differs from every other (by position)."""
    hdr = np.zeros(1, schema.header_dtype)
    items = None if schema.item is None else np.zeros(n_items, schema.item.dtype)
    k = 10
    for rec, layout in [(hdr, schema.header)] + (
        [] if schema.item is None else [(items[i : i + 1], schema.item) for i in range(n_items)]  # type: ignore[index]
    ):
        for f in layout.fields:
            if f.name == schema.count_field:
                rec[f.name] = n_items
            elif not f.name.startswith("_pad"):
                rec[f.name] = k if f.count == 1 else [k] * f.count
                k += 1
    return REG.encode(schema, hdr, items, sender_id=3, nonce=4, origin_ts_ns=5)


def test_field_indices_read_every_declared_field() -> None:
    """Every schema: the value at ``F.<field>`` is that field's (and items at their stride),
    so an index that does not follow the declared order fails here."""
    env = REG.envelope_fields
    for schema in REG.schemas():
        n_items = 0 if schema.item is None else 3
        raw = _distinct_message(schema, n_items)
        got, values = REG.decode_values(raw)
        msg = REG.decode(raw)
        f = schema.fields
        assert got is schema and len(values) == f.n_values(n_items)
        assert (values[env.sender_id], values[env.nonce], values[env.origin_ts_ns]) == (3, 4, 5)
        assert (f.sender_id, f.nonce) == (env.sender_id, env.nonce)
        for name in schema.header.value_fields:
            want = msg.header[0][name]
            if want.shape:  # a u8 array: one bytes value
                want = bytes(want)
            assert values[getattr(f, name)] == want, (schema.name, name)
        for k in range(n_items):
            for name in schema.item.value_fields if schema.item is not None else ():
                at = f.items + f.stride * k + getattr(f.item, name)
                assert values[at] == msg.items[k][name], (schema.name, k, name)
        names = schema.header.value_fields
        assert values[f.span(*names)] == values[f.header_start : f.items]


def test_field_indices_follow_a_changed_field_order() -> None:
    """Swap two fields in a copy of the declaration: the positions move with them, and code
    that names them in the old order (a span, a packer's expectation) is refused at import."""
    text = (ROOT / "arbsphere" / "contracts.toml").read_text()
    old = '    ["order_id", "u64"],\n    ["delta_id", "u64"],\n'
    assert text.count(old) == 1
    text = text.replace(old, '    ["delta_id", "u64"],\n    ["order_id", "u64"],\n')
    reg = load_registry_text(text, source="contracts.toml")
    was, now = REG.fields("ExecutionReport"), reg.fields("ExecutionReport")
    assert (now.order_id, now.delta_id) == (was.delta_id, was.order_id)
    assert now.span("delta_id", "order_id", "venue") == slice(was.order_id, was.venue + 1)
    with pytest.raises(ContractError, match="not consecutive in this order"):
        now.span("order_id", "delta_id", "venue")
    with pytest.raises(ContractError, match="code passes order_id, delta_id, venue"):
        now.expect(
            ("order_id", "delta_id", "venue", "asset", "status", "filled_lots", "fill_px",
             "device_rx_ns", "device_tx_ns", "rig_tx_ns", "rig_rx_ns")
        )  # fmt: skip
    with pytest.raises(ContractError, match="ExecutionReport v1 has no field 'venue_id'") as info:
        _ = now.venue_id
    assert info.value.file == "contracts.toml"
    with pytest.raises(ContractError, match="ExecutionReport v1 item has no field 'x'"):
        _ = now.item.x
    assert not hasattr(now, "__deepcopy_hook__")  # protocol probes stay AttributeErrors


#: the pipeline's decode sites: they read values by the registry's names only
_PIPELINE = [
    "coordinator/core.py", "coordinator/receive_loop.py", "coordinator/service.py",
    "coordinator/federated_solve.py",
    "coordinator/rounds.py", "coordinator/price_rounds.py",
    "coordinator/signal_aggregate.py", "coordinator/plan_events.py", "adapters/broker_adapter.py",
    "adapters/plan_replica.py", "adapters/venue_rounds.py", "adapters/venue_prices.py",
    "adapters/sync_master.py", "arbsphere/replay/player.py", "arbsphere/replay/engine.py",
]  # fmt: skip


@pytest.mark.parametrize("path", _PIPELINE)
def test_no_positional_or_literal_codes_on_the_pipeline_path(path: str) -> None:
    text = (ROOT / path).read_text()
    positional = re.findall(r"\b(?:values|v|more|h|ack)\[\s*\d+", text)
    literal = re.findall(r"\b(?:kind|status|phase)\b\)? *(?:==|!=|in) *\(?\d", text)
    assert not positional and not literal, (positional, literal)
