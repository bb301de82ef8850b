"""C++17 typed views over one fixed little-endian layout, for the generated C++ SDK headers.

For a layout this renders two classes: ``Name`` reads fields from ``const uint8_t*`` bytes and
``NameWriter`` sets them (fluent ``set_<field>``), both through ``arbsphere::load_le`` /
``store_le`` (memcpy: no undefined behaviour on unaligned bytes), plus ``Name::Offset::<field>``
byte offsets for error reports. ``_pad*`` fields get no accessor (encoders zero them). Array
fields take an index; an index past the end reads 0 and writes nothing. The files that use it
are rendered by :mod:`.cpp_headers`.
"""

from __future__ import annotations

import textwrap

from arbsphere.layout import SCALAR_TYPES, Field, Layout

#: wire type -> C++ type (``std::uint16_t``, ``double``)
CPP_TYPES = {
    name: f"std::{ctype}" if "int" in ctype else ctype
    for name, (_, ctype, _) in SCALAR_TYPES.items()
}


def cpp_type(wire_type: str) -> str:
    """The C++ type of a wire scalar type (``u16`` -> ``std::uint16_t``)."""
    return CPP_TYPES[wire_type]


def comment(doc: str, indent: str = "") -> list[str]:
    """``doc`` as ``//`` comment lines wrapped to 96 columns."""
    return [f"{indent}// {line}" for line in textwrap.wrap(doc, 96 - len(indent))]


def _value_fields(layout: Layout) -> list[Field]:
    return [f for f in layout.fields if not f.name.startswith("_pad")]


def _getter(f: Field) -> str:
    t = cpp_type(f.type)
    if f.count == 1:
        return f"    {t} {f.name}() const noexcept {{ return load_le<{t}>(p_ + {f.offset}); }}"
    step = f.size // f.count
    return (
        f"    {t} {f.name}(std::size_t i) const noexcept {{\n"
        f"        return i < {f.count} ? load_le<{t}>(p_ + {f.offset} + i * {step}) : {t}{{}};\n"
        "    }"
    )


def _setter(cls: str, f: Field) -> str:
    t = cpp_type(f.type)
    if f.count == 1:
        return (
            f"    {cls}& set_{f.name}({t} v) noexcept {{\n"
            f"        store_le<{t}>(p_ + {f.offset}, v);\n"
            "        return *this;\n"
            "    }"
        )
    step = f.size // f.count
    return (
        f"    {cls}& set_{f.name}(std::size_t i, {t} v) noexcept {{\n"
        f"        if (i < {f.count}) store_le<{t}>(p_ + {f.offset} + i * {step}, v);\n"
        "        return *this;\n"
        "    }"
    )


def view_classes(name: str, layout: Layout, doc: str, statics: list[str]) -> str:
    """``name`` (read view) and ``nameWriter`` over ``layout``; ``statics`` are extra
    ``static constexpr`` member lines both classes carry (type codes, schema ids)."""
    fields = _value_fields(layout)
    common = [f"    static constexpr std::size_t kSize = {layout.size};", *statics]
    offsets = ["    struct Offset {"]
    offsets += [f"        static constexpr std::size_t {f.name} = {f.offset};" for f in fields]
    offsets.append("    };")
    counts = [f for f in fields if f.count > 1]
    if counts:
        offsets.append("    struct Count {")
        offsets += [f"        static constexpr std::size_t {f.name} = {f.count};" for f in counts]
        offsets.append("    };")
    infos = [f'        {{"{f.name}", {f.offset}, WireType::{f.type}, {f.count}}},' for f in fields]
    offsets += ["    static constexpr FieldInfo kFields[] = {", *infos, "    };"]
    writer = f"{name}Writer"
    out = [
        *comment(doc),
        f"class {name} {{",
        "public:",
        *common,
        *offsets,
        f"    {name}() noexcept = default;",
        f"    explicit {name}(const std::uint8_t* p) noexcept : p_(p) {{}}",
        "    const std::uint8_t* data() const noexcept { return p_; }",
        *[_getter(f) for f in fields],
        "",
        "private:",
        "    const std::uint8_t* p_ = nullptr;",
        "};",
        "",
        f"// Sets the fields of a {name} in place (the bytes must be {layout.size} long).",
        f"class {writer} {{",
        "public:",
        *common,
        f"    using Offset = {name}::Offset;",
        f"    {writer}() noexcept = default;",
        f"    explicit {writer}(std::uint8_t* p) noexcept : p_(p) {{}}",
        "    std::uint8_t* data() const noexcept { return p_; }",
        f"    {name} view() const noexcept {{ return {name}(p_); }}",
        *[_setter(writer, f) for f in fields],
        "",
        "private:",
        "    std::uint8_t* p_ = nullptr;",
        "};",
        "",
    ]
    return "\n".join(out)


def enum_class(name: str, codes: dict[str, int], doc: str) -> str:
    """``enum class name : <smallest unsigned type>`` with the declared codes."""
    top = max(codes.values(), default=0)
    base = "std::uint8_t" if top < 256 else "std::uint16_t" if top < 65536 else "std::uint32_t"
    lines = [*comment(doc), f"enum class {name} : {base} {{"]
    lines += [f"    {member} = {code}," for member, code in codes.items()]
    lines += ["};", ""]
    return "\n".join(lines)
