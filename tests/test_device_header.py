"""The generated device C header: committed copy is current, C layouts equal the NumPy dtypes,
and a TICK built in C is byte-identical to the Python encoding."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_header import (
    HEADER_PATH,
    device_constants,
    device_structs,
    render_device_header,
)

INCLUDE = HEADER_PATH.parent


def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on PATH; install gcc to run the C header checks")
    return cc


def _build_and_run(tmp_path: Path, source: str) -> str:
    src = tmp_path / "prog.c"
    src.write_text(source)
    exe = tmp_path / "prog"
    subprocess.run(
        [
            _cc(),
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(INCLUDE),
            str(src),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout


def test_committed_header_is_current() -> None:
    assert HEADER_PATH.read_text() == render_device_header(), (
        "regenerate: python -m arbsphere.firmware_interfaces.device_header"
    )


def test_header_declares_everything() -> None:
    text = render_device_header()
    for cname in (
        "arbsphere_tick_t",
        "arbsphere_order_t",
        "arbsphere_ack_t",
        "arbsphere_heartbeat_t",
        "arbsphere_datagram_header_t",
    ):
        assert f"}} {cname};" in text
    assert "#define ARBSPHERE_PRICE_SCALE 0x5F5E100u" in text
    assert "#define ARBSPHERE_MSG_DELAY_RESP 19u" in text
    assert "COBS(message || CRC32C(message)" in text


def test_header_layouts_match_dtypes(tmp_path: Path) -> None:
    structs = device_structs()
    lines = [
        "#include <stdio.h>",
        '#include "arbsphere_device.h"',
        "int main(void) {",
        '  printf("{");',
    ]
    for i, (cname, layout) in enumerate(structs):
        sep = "," if i else ""
        lines.append(f'  printf("{sep}\\"{cname}\\": {{\\"size\\": %zu", sizeof({cname}));')
        for f in layout.fields:
            lines.append(f'  printf(", \\"{f.name}\\": %zu", offsetof({cname}, {f.name}));')
        lines.append('  printf("}");')
    lines.append('  printf(", \\"constants\\": {");')
    for i, (name, _value, _doc) in enumerate(device_constants()):
        sep = ", " if i else ""
        lines.append(f'  printf("{sep}\\"{name}\\": %lld", (long long){name});')
    lines += ['  printf("}}\\n");', "  return 0;", "}"]
    measured = json.loads(_build_and_run(tmp_path, "\n".join(lines)))
    for cname, layout in structs:
        got = measured[cname]
        assert got["size"] == layout.dtype.itemsize, cname
        fields = layout.dtype.fields
        assert fields is not None
        for f in layout.fields:
            assert got[f.name] == fields[f.name][1], f"{cname}.{f.name}"
    assert measured["constants"] == {name: value for name, value, _ in device_constants()}


def test_tick_built_in_c_matches_python_encode(tmp_path: Path) -> None:
    source = r"""
#include <stdio.h>
#include <string.h>
#include "arbsphere_device.h"
int main(void) {
    arbsphere_tick_t t;
    memset(&t, 0, sizeof t);
    t.msg_type = ARBSPHERE_MSG_TICK;
    t.version = ARBSPHERE_DEVICE_MESSAGE_VERSION;
    t.length = sizeof t;
    t.device_id = 0xA1B2C3D4u;
    t.venue_id = 2;
    t.asset_id = 0x0305;
    t.device_seq = 0x0102030405060708ull;
    t.intended_send_ns = -123456789012345LL;
    t.send_ns = 1700000000123456789LL;
    t.bid_px = 100 * (int64_t)ARBSPHERE_PRICE_SCALE - 1;
    t.ask_px = 100 * (int64_t)ARBSPHERE_PRICE_SCALE + 1;
    t.bid_size = 7;
    t.ask_size = -1;
    const unsigned char *p = (const unsigned char *)&t;
    for (size_t i = 0; i < sizeof t; i++) printf("%02x", p[i]);
    printf("\n");
    return 0;
}
"""
    c_bytes = bytes.fromhex(_build_and_run(tmp_path, source).strip())
    rec = dm.new_record(dm.MSG_TICK, 0xA1B2C3D4)
    rec["venue_id"], rec["asset_id"], rec["device_seq"] = 2, 0x0305, 0x0102030405060708
    rec["intended_send_ns"], rec["send_ns"] = -123456789012345, 1700000000123456789
    rec["bid_px"], rec["ask_px"] = 100 * dm.PRICE_SCALE - 1, 100 * dm.PRICE_SCALE + 1
    rec["bid_size"], rec["ask_size"] = 7, -1
    assert c_bytes == dm.encode(rec)
    mtype, back = dm.decode(c_bytes)
    assert mtype == dm.MSG_TICK and int(back["ask_size"][0]) == -1
