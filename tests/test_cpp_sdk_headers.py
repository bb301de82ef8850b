"""The generated C++ SDK headers: the committed files equal the render, they compile as strict
C++17, every view's size and field offsets equal the declared layouts, and bytes a C++ writer
sets decode in Python to the same values (and the other way round)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from arbsphere.contracts import default_registry
from arbsphere.errors import DecodeError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.layout import Layout
from arbsphere.rig.cpp_headers import SDK_INCLUDE, cpp_sdk_files

CXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion"]


def _cxx() -> str:
    for name in ("c++", "g++"):
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip("no C++ compiler (c++/g++) on PATH; install g++ for the C++ SDK checks")


def _run_cpp(tmp_path: Path, body: str) -> str:
    src = tmp_path / "prog.cpp"
    src.write_text(
        "#include <cstdio>\n"
        '#include "arbsphere/device_messages.hpp"\n'
        '#include "arbsphere/contracts.hpp"\n'
        "using namespace arbsphere;\n"
        "int main() {\n" + body + "\n  return 0;\n}\n"
    )
    exe = tmp_path / "prog"
    build = subprocess.run(
        [_cxx(), *CXX_FLAGS, "-I", str(SDK_INCLUDE.parent), str(src), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout


def test_committed_sdk_headers_are_current() -> None:
    for path, text in cpp_sdk_files().items():
        assert path.exists(), f"{path} missing: run `make headers`"
        assert path.read_text() == text, f"{path} is stale: run `make headers`"


def _views() -> list[tuple[str, Layout]]:
    views = [("device::Header", dm.DECLARATIONS.header)]
    for m in dm.DECLARATIONS.messages:
        views.append(("device::" + "".join(p.capitalize() for p in m.name.split("_")), m.layout))
    views.append(("device::DatagramHeader", dm.DECLARATIONS.datagram_header))
    reg = default_registry()
    views.append(("contracts::Envelope", reg.envelope))
    for s in reg.schemas():
        views.append((f"contracts::{s.name}V{s.version}Header", s.header))
        if s.item is not None:
            views.append((f"contracts::{s.name}V{s.version}Item", s.item))
    return views


def test_view_sizes_and_offsets_match_layouts(tmp_path: Path) -> None:
    lines = ['  std::printf("{");']
    for i, (cls, layout) in enumerate(_views()):
        sep = "," if i else ""
        lines.append(f'  std::printf("{sep}\\"{cls}\\": {{\\"size\\": %zu", {cls}::kSize);')
        for f in layout.fields:
            if not f.name.startswith("_pad"):
                lines.append(f'  std::printf(", \\"{f.name}\\": %zu", {cls}::Offset::{f.name});')
        lines.append('  std::printf("}");')
    lines.append('  std::printf("}\\n");')
    measured = json.loads(_run_cpp(tmp_path, "\n".join(lines)))
    for cls, layout in _views():
        assert measured[cls]["size"] == layout.dtype.itemsize, cls
        fields = layout.dtype.fields
        assert fields is not None
        for f in layout.fields:
            if not f.name.startswith("_pad"):
                assert measured[cls][f.name] == fields[f.name][1], f"{cls}::Offset::{f.name}"


def test_cpp_writer_bytes_decode_in_python(tmp_path: Path) -> None:
    body = r"""
  std::uint8_t buf[64] = {0};
  device::ArmWriter w;
  Status st = device::encode(MutBytes{buf + 3, 60}, 0, 0xA1B2C3D4u, &w);  // unaligned on purpose
  w.set_arm_seq(0x0102030405060708ull).set_start_ns(-5).set_tick_interval_ns(250000)
   .set_n_ticks(40).set_venue_id(3).set_n_assets(2);
  for (std::size_t i = 0; i < device::Arm::kSize; ++i) std::printf("%02x", buf[3 + i]);
  std::printf(" %s\n", st.name());
"""
    hex_bytes, status = _run_cpp(tmp_path, body).split()
    assert status == "ok"
    mtype, rec = dm.decode(bytes.fromhex(hex_bytes))
    assert mtype == dm.MSG_ARM
    got = {k: int(rec[k][0]) for k in ("device_id", "arm_seq", "start_ns", "n_ticks", "n_assets")}
    assert got == {
        "device_id": 0xA1B2C3D4,
        "arm_seq": 0x0102030405060708,
        "start_ns": -5,
        "n_ticks": 40,
        "n_assets": 2,
    }


def test_cpp_decode_reports_python_problem_and_offset(tmp_path: Path) -> None:
    """A bad version and a short buffer are reported with the Python decoder's tag and offset."""
    rec = dm.new_record(dm.MSG_HEARTBEAT, 9)
    good = dm.encode(rec)
    bad_version = bytearray(good)
    bad_version[1] = 7
    cases = {"bad_version": bytes(bad_version), "short": good[:20]}
    body = ""
    for name, data in cases.items():
        arr = ", ".join(str(b) for b in data)
        body += (
            f"  {{ const std::uint8_t b[] = {{{arr}}}; device::Heartbeat h;\n"
            f"    Status st = device::decode(Bytes{{b, sizeof b}}, 0, &h);\n"
            f'    std::printf("{name} %s %zu\\n", st.name(), st.offset); }}\n'
        )
    out = dict(line.split(" ", 1) for line in _run_cpp(tmp_path, body).splitlines())
    for name, data in cases.items():
        with pytest.raises(DecodeError) as exc:
            dm.decode(data)
        assert out[name] == f"{exc.value.problem} {exc.value.offset}"


@pytest.mark.parametrize("header", sorted(p.name for p in SDK_INCLUDE.glob("*.hpp")))
def test_every_sdk_header_compiles_alone(header: str, tmp_path: Path) -> None:
    """Each SDK header is self-contained: included first and alone, strict C++17, no warning."""
    src = tmp_path / "alone.cpp"
    src.write_text(f'#include "arbsphere/{header}"\nint main() {{ return 0; }}\n')
    build = subprocess.run(
        [_cxx(), *CXX_FLAGS, "-Wshadow", "-fsyntax-only", "-I", str(SDK_INCLUDE.parent), str(src)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"{header}:\n{build.stderr}"
