"""Both generated C headers compile cleanly as C11 and as C++17 (pedantic, warnings are errors),
and in each language every struct's size and every field's offset equal the NumPy dtype's.

A generated program prints sizeof/offsetof of every struct as JSON; the comparison is made here
in Python against the dtypes, so a layout drift in either the generator or a compiler fails."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from arbsphere.contracts import default_registry
from arbsphere.contracts_header import header_structs
from arbsphere.firmware_interfaces.device_header import HEADER_PATH, device_structs
from arbsphere.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_H = ROOT / "arbsphere" / "include" / "arbsphere_contracts.h"

LANGUAGES = {
    "c11": (("cc", "gcc"), ["-std=c11"], "prog.c"),
    "c++17": (("c++", "g++"), ["-std=c++17"], "prog.cpp"),
}
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


def _compiler(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip(f"no compiler ({'/'.join(names)}) on PATH; install gcc and g++ for this check")


def _layout_program(structs: list[tuple[str, Layout]]) -> str:
    """A C/C++ program printing {c_name: {"size": n, field: offset, ...}} as JSON."""
    lines = [
        "#include <stdio.h>",
        '#include "arbsphere_contracts.h"',
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
    lines += ['  printf("}\\n");', "  return 0;", "}", ""]
    return "\n".join(lines)


def _all_structs() -> list[tuple[str, Layout]]:
    return header_structs(default_registry()) + device_structs()


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_headers_compile_and_match_dtypes(lang: str, tmp_path: Path) -> None:
    names, std, filename = LANGUAGES[lang]
    compiler = _compiler(names)
    structs = _all_structs()
    src = tmp_path / filename
    src.write_text(_layout_program(structs))
    exe = tmp_path / "prog"
    includes = ["-I", str(CONTRACTS_H.parent), "-I", str(HEADER_PATH.parent)]
    build = subprocess.run(
        [compiler, *std, *STRICT, *includes, str(src), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"{lang} build failed:\n{build.stderr}"
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    measured = json.loads(out)
    assert len(measured) == len(structs)
    for cname, layout in structs:
        got = measured[cname]
        assert got["size"] == layout.dtype.itemsize, f"{lang}: sizeof({cname})"
        fields = layout.dtype.fields
        assert fields is not None
        for f in layout.fields:
            assert got[f.name] == fields[f.name][1], f"{lang}: offsetof({cname}, {f.name})"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
@pytest.mark.parametrize("header", [CONTRACTS_H, HEADER_PATH], ids=lambda p: p.name)
def test_each_header_compiles_alone(lang: str, header: Path, tmp_path: Path) -> None:
    """Each header is self-contained: included first and alone, it compiles without warnings."""
    names, std, filename = LANGUAGES[lang]
    src = tmp_path / filename
    src.write_text(f'#include "{header.name}"\nint main(void) {{ return 0; }}\n')
    build = subprocess.run(
        [_compiler(names), *std, *STRICT, "-I", str(header.parent), str(src), "-o", "/dev/null"],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"{header.name} as {lang}:\n{build.stderr}"
