"""No function in the installed package (nor in the benchmarks) is over :data:`MAX_LINES`
lines, counted from its ``def`` to the end of its body, docstring included.

:data:`ALLOWED` names the functions not yet split (none today), each with its length as its
ceiling (it may not grow), and an entry whose function is split (or gone) must leave the list:
the list can only shrink."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

MAX_LINES = 80
#: the source trees walked: the installed package and the benchmarks
PACKAGES = ("arbsphere", "benchmarks")
#: the design card's top-level folders, installed as subpackages of ``arbsphere``
#: (pyproject's ``package-dir``); an editable install maps them in from their own folders,
#: where a walk of ``arbsphere``'s folder does not see them
MAPPED = ("rig", "firmware_interfaces", "adapters", "coordinator", "kpi")
#: module:qualified name -> its length today (lines), for the functions not yet split
ALLOWED: dict[str, int] = {}


def function_lengths(source: str) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, length in lines) of every function in ``source``, nested
    ones included; the length runs from the ``def`` line to the body's last line."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                end = child.end_lineno or child.lineno
                yield name, child.lineno, end - child.lineno + 1
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(source), "")


def package_sources() -> Iterator[tuple[str, Path]]:
    """(module name, source file) of every module of :data:`PACKAGES` and the
    :data:`MAPPED` subpackages, found through the import system."""
    tops = [*PACKAGES, *(f"arbsphere.{name}" for name in MAPPED)]
    seen: set[str] = set()
    for top in tops:
        package = importlib.import_module(top)
        found = [(top, package.__file__)]
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            spec = importlib.util.find_spec(info.name)
            found.append((info.name, spec.origin if spec is not None else None))
        for name, origin in found:
            if name not in seen and origin is not None and origin.endswith(".py"):
                seen.add(name)
                yield name, Path(origin)


def long_functions(max_lines: int = MAX_LINES) -> dict[str, tuple[Path, int, int]]:
    """module:qualified name -> (file, first line, length) of every function over
    ``max_lines`` lines in :data:`PACKAGES`."""
    found: dict[str, tuple[Path, int, int]] = {}
    for module, path in package_sources():
        for name, line, length in function_lengths(path.read_text("utf-8")):
            if length > max_lines:
                found[f"{module}:{name}"] = (path, line, length)
    return found


def test_the_walk_finds_the_package_and_the_benchmarks() -> None:
    modules = dict(package_sources())
    for name in (
        "arbsphere.journal.reader",
        "arbsphere.rig.calibration",
        "arbsphere.kpi.report",
        "arbsphere.firmware_interfaces.emulators.schedule",
        "arbsphere.coordinator.service",
        "benchmarks.__main__",
    ):
        assert name in modules and modules[name].is_file(), name


def test_the_count_runs_from_def_to_the_end_of_the_body() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(83))
    source = textwrap.dedent('''
        class Outer:
            @staticmethod
            def long(a: int) -> int:
                """Docstring counted."""
        ''') + body + "\n        return a\n\ndef short() -> None:\n    pass\n"  # fmt: skip
    lengths = {name: length for name, _, length in function_lengths(source)}
    assert lengths == {"Outer.long": 86, "short": 2}  # def + docstring + 83 + return


def test_no_function_is_over_80_lines_beyond_the_allow_list() -> None:
    found = long_functions()
    too_long = [
        f"{path}:{name.split(':')[1]} ({name}): {length} lines, from line {line}"
        for name, (path, line, length) in sorted(found.items(), key=lambda kv: -kv[1][2])
        if length > ALLOWED.get(name, MAX_LINES)
    ]
    assert not too_long, (
        f"functions over {MAX_LINES} lines (or longer than their allow-list entry); split "
        "them into functions with one job each:\n  " + "\n  ".join(too_long)
    )


def test_the_allow_list_only_names_functions_still_too_long() -> None:
    found = long_functions()
    stale = sorted(name for name in ALLOWED if name not in found)
    assert not stale, (
        f"remove from ALLOWED in tests/test_function_length.py (now at most {MAX_LINES} lines, "
        "or gone): " + ", ".join(stale)
    )
