"""Render the C header of the canonical IR (``include/arbsphere_contracts.h``).

Generated from the same registry declaration as the NumPy dtypes, so C/C++ and firmware
authors read exactly the layouts the Python side encodes, and the codes its enum fields carry
(``ARBSPHERE_<ENUM>_<VALUE>``; a struct field's comment names its enum). A test keeps the
committed header equal to :func:`render_contracts_header` and compiles it to compare sizes and
offsets.
"""

from __future__ import annotations

import re
from enum import IntFlag

from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.layout import Layout, c_header


def c_struct_name(name: str) -> str:
    """``PlanDelta.item`` -> ``arbsphere_plan_delta_item_v1`` style snake case (without _v)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace(".", "_")
    return f"arbsphere_{snake}"


def header_structs(registry: SchemaRegistry) -> list[tuple[str, Layout]]:
    """(C name, layout) for the envelope and every schema version's header and item."""
    structs: list[tuple[str, Layout]] = [("arbsphere_envelope_t", registry.envelope)]
    for schema in registry.schemas():
        base = c_struct_name(schema.name) + f"_v{schema.version}"
        structs.append((f"{base}_t", schema.header))
        if schema.item is not None:
            structs.append((f"{base}_item_t", schema.item))
    return structs


def render_contracts_header(registry: SchemaRegistry | None = None) -> str:
    reg = registry or default_registry()
    constants: list[tuple[str, int, str]] = [
        ("ARBSPHERE_MAGIC", reg.magic, '"ARBS" as a little-endian u32'),
    ]
    for schema in reg.schemas():
        macro = c_struct_name(schema.name).upper()
        constants.append((f"{macro}_ID", schema.id, f"schema id of {schema.name}"))
        constants.append(
            (
                f"{macro}_V{schema.version}",
                schema.version,
                f"{schema.name} version {schema.version}",
            )
        )
    return c_header(
        "ARBSPHERE_CONTRACTS_H",
        "ArbSphere canonical IR: message envelope and schema records.\n"
        " * A message is envelope + header record + count_field x item record.",
        header_structs(reg),
        constants,
        enum_codes(reg),
    )


def enum_codes(registry: SchemaRegistry) -> list[tuple[str, list[tuple[str, int]]]]:
    """(comment, [(C name, code)]) of every declared enum, in declaration order."""
    out = []
    for name, cls in registry.enums.items():
        prefix = c_struct_name(name).upper()
        codes = [(f"{prefix}_{member}", int(value)) for member, value in cls.__members__.items()]
        kind = "bit flags" if issubclass(cls, IntFlag) else "codes"
        out.append((f"{name} ({kind}): {cls.__doc__}", codes))
    return out
