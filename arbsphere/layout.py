"""Fixed little-endian binary layouts, declared once as data.

A layout is a list of ``[name, type]`` or ``[name, type, count]`` entries read from a TOML
file; an entry may end with a table of options, ``{ enum = "Name" }``: the integer codes the
field carries are the named enum's (the declaring file owns and checks the enums). From that
one declaration this module derives:

* a packed little-endian NumPy structured dtype (usable as a Numba record type), and
* a C struct for firmware and C++ authors (:func:`c_header`), with static assertions of its
  size and of every field offset; the header compiles as C11 and as C++17 (``extern "C"``,
  ``_Static_assert`` in C and ``static_assert`` in C++ through ``ARBSPHERE_STATIC_ASSERT``).

Every field must sit at its natural alignment and every layout's size must be a multiple of
its largest alignment, so the packed dtype and the naturally aligned C struct agree byte for
byte without compiler-specific packing pragmas. Padding is explicit (fields named ``_pad*``).
Violations raise :class:`~arbsphere.errors.LayoutError` naming the file, the layout and the
field.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arbsphere.errors import LayoutError

#: Wire type name -> (numpy format, C type, size in bytes)
SCALAR_TYPES: dict[str, tuple[str, str, int]] = {
    "u8": ("<u1", "uint8_t", 1),
    "i8": ("<i1", "int8_t", 1),
    "u16": ("<u2", "uint16_t", 2),
    "i16": ("<i2", "int16_t", 2),
    "u32": ("<u4", "uint32_t", 4),
    "i32": ("<i4", "int32_t", 4),
    "u64": ("<u8", "uint64_t", 8),
    "i64": ("<i8", "int64_t", 8),
    "f32": ("<f4", "float", 4),
    "f64": ("<f8", "double", 8),
}


#: Wire type name -> ``struct`` module code (always used with ``<``: little-endian, no padding)
STRUCT_CODES: dict[str, str] = {
    "u8": "B",
    "i8": "b",
    "u16": "H",
    "i16": "h",
    "u32": "I",
    "i32": "i",
    "u64": "Q",
    "i64": "q",
    "f32": "f",
    "f64": "d",
}


@dataclass(frozen=True)
class Field:
    """One field of a layout: a scalar or a fixed-length array of scalars."""

    name: str
    type: str
    count: int  # 1 for a scalar; >1 for a fixed array
    offset: int
    enum: str | None = None  # the enum whose codes the field carries (declared by the file)

    @property
    def size(self) -> int:
        return SCALAR_TYPES[self.type][2] * self.count

    @property
    def align(self) -> int:
        return SCALAR_TYPES[self.type][2]


@dataclass(frozen=True)
class Layout:
    """A named, fixed, little-endian record layout."""

    name: str
    fields: tuple[Field, ...]
    size: int
    dtype: np.dtype[Any]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"layout {self.name} has no field {name!r}")

    @property
    def struct_format(self) -> str:
        """``struct`` format of this layout without the ``<`` prefix; ``_pad*`` fields become
        pad bytes (they take no value), ``u8`` arrays become ``Ns`` bytes."""
        parts = []
        for f in self.fields:
            code = STRUCT_CODES[f.type]
            if f.name.startswith("_pad"):
                parts.append(f"{f.size}x")
            elif f.count == 1:
                parts.append(code)
            elif f.type == "u8":
                parts.append(f"{f.count}s")
            else:
                parts.append(f"{f.count}{code}")
        return "".join(parts)

    @property
    def value_fields(self) -> tuple[str, ...]:
        """Names of the fields that take a value in :attr:`struct_format` (no padding)."""
        return tuple(f.name for f in self.fields if not f.name.startswith("_pad"))

    def c_struct(self, c_name: str) -> str:
        """The C declaration of this layout (a ``typedef struct``) plus static asserts."""
        lines = [f"typedef struct {c_name} {{"]
        for f in self.fields:
            ctype = SCALAR_TYPES[f.type][1]
            suffix = f"[{f.count}]" if f.count > 1 else ""
            codes = f"; codes: {f.enum}" if f.enum is not None else ""
            lines.append(f"    {ctype} {f.name}{suffix}; /* offset {f.offset}{codes} */")
        lines.append(f"}} {c_name};")
        lines.append(f'ARBSPHERE_STATIC_ASSERT(sizeof({c_name}) == {self.size}, "{c_name} size");')
        for f in self.fields:
            lines.append(
                f"ARBSPHERE_STATIC_ASSERT(offsetof({c_name}, {f.name}) == {f.offset}, "
                f'"{c_name}.{f.name} offset");'
            )
        return "\n".join(lines)


def build_layout(name: str, spec: Sequence[Any] | None, *, source: str) -> Layout:
    """Build a :class:`Layout` from its TOML declaration.

    ``spec`` is a list of ``[name, type]`` / ``[name, type, count]``, each optionally followed
    by an options table (``{ enum = "Name" }``); ``source`` names the file (and table) the
    declaration came from, for error messages.
    """
    if not isinstance(spec, list | tuple) or not spec:
        raise LayoutError(f"{source}: layout '{name}' must be a non-empty list of fields")
    fields: list[Field] = []
    seen: set[str] = set()
    offset = 0
    max_align = 1
    for index, entry in enumerate(spec):
        where = f"{source}: layout '{name}' field #{index}"
        options: Any = {}
        if isinstance(entry, list | tuple) and entry and isinstance(entry[-1], dict):
            options, entry = entry[-1], entry[:-1]
        if not isinstance(entry, list | tuple) or len(entry) not in (2, 3):
            raise LayoutError(
                f"{where}: expected [name, type] or [name, type, count] (each optionally "
                f"followed by an options table), got {entry!r}"
            )
        fname, ftype = entry[0], entry[1]
        count = entry[2] if len(entry) == 3 else 1
        unknown = sorted(set(options) - {"enum"})
        if unknown:
            raise LayoutError(f"{where} ({fname}): unknown option {unknown[0]!r}; known: enum")
        enum = options.get("enum")
        if enum is not None and (not isinstance(enum, str) or not enum.isidentifier()):
            raise LayoutError(f"{where} ({fname}): enum must name an enum, got {enum!r}")
        if not isinstance(fname, str) or not fname.isidentifier():
            raise LayoutError(f"{where}: field name {fname!r} is not an identifier")
        if fname in seen:
            raise LayoutError(f"{where}: duplicate field name {fname!r}")
        if ftype not in SCALAR_TYPES:
            raise LayoutError(
                f"{where} ({fname}): unknown type {ftype!r}; known: {', '.join(SCALAR_TYPES)}"
            )
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise LayoutError(f"{where} ({fname}): count must be a positive integer, got {count!r}")
        f = Field(fname, ftype, count, offset, enum)
        if offset % f.align != 0:
            raise LayoutError(
                f"{where} ({fname}): offset {offset} is not a multiple of its alignment "
                f"{f.align}; add explicit _pad fields before it"
            )
        seen.add(fname)
        fields.append(f)
        offset += f.size
        max_align = max(max_align, f.align)
    if offset % max_align != 0:
        raise LayoutError(
            f"{source}: layout '{name}' size {offset} is not a multiple of its alignment "
            f"{max_align}; add trailing _pad fields"
        )
    dtype = np.dtype(
        [
            (f.name, SCALAR_TYPES[f.type][0], (f.count,))
            if f.count > 1
            else (f.name, SCALAR_TYPES[f.type][0])
            for f in fields
        ]
    )
    if dtype.itemsize != offset:  # pragma: no cover - numpy packs sequential fields
        raise LayoutError(f"{source}: layout '{name}': dtype size {dtype.itemsize} != {offset}")
    return Layout(name=name, fields=tuple(fields), size=offset, dtype=dtype)


def c_header(
    guard: str,
    title: str,
    structs: Iterable[tuple[str, Layout]],
    constants: Iterable[tuple[str, int, str]] = (),
    code_groups: Iterable[tuple[str, Iterable[tuple[str, int]]]] = (),
) -> str:
    """Render a self-contained header that compiles as C11 and as C++17.

    ``structs`` are ``(c_name, layout)`` pairs; ``constants`` are ``(NAME, value, comment)``;
    ``code_groups`` are ``(comment, [(NAME, value), ...])``: an enum's codes under its doc.
    """
    out = [
        f"/* {title}",
        " *",
        " * GENERATED from the ArbSphere layout declarations; do not edit by hand.",
        " * All integers little-endian; every field naturally aligned, so no packing pragma",
        " * is needed. Regenerate with `arbsphere headers`.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        *_CPP_COMPAT,
        "",
    ]
    for cname, value, comment in constants:
        out.append(f"#define {cname} {_c_literal(value)} /* {comment} */")
    out.append("")
    for comment, codes in code_groups:
        lines = textwrap.wrap(comment, 92)
        out.append(f"/* {lines[0]}" + ("" if len(lines) > 1 else " */"))
        out += [f" * {line}" for line in lines[1:]]
        if len(lines) > 1:
            out.append(" */")
        out += [f"#define {cname} {_c_literal(value)}" for cname, value in codes]
        out.append("")
    for c_name, layout in structs:
        out.append(layout.c_struct(c_name))
        out.append("")
    out += ["#ifdef __cplusplus", '} /* extern "C" */', "#endif", ""]
    out.append(f"#endif /* {guard} */")
    out.append("")
    return "\n".join(out)


# C11 spells the compile-time check _Static_assert, C++ static_assert; both headers define the
# same macro, so either may be included first. C++ also gets C linkage for the declarations.
_CPP_COMPAT = (
    "#ifndef ARBSPHERE_STATIC_ASSERT",
    "#ifdef __cplusplus",
    "#define ARBSPHERE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)",
    "#else",
    "#define ARBSPHERE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)",
    "#endif",
    "#endif",
    "",
    "#ifdef __cplusplus",
    'extern "C" {',
    "#endif",
)


def _c_literal(value: int) -> str:
    if value < 0:
        return f"({value})"
    return f"0x{value:X}u" if value >= 256 else f"{value}u"
