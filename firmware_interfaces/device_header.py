"""Render the C header of the device wire formats (``include/arbsphere_device.h``).

Generated from ``device_messages.toml``, the same declaration the Python codec uses, so
firmware authors build exactly the bytes the rig decodes. A test keeps the committed header
equal to :func:`render_device_header`, compiles it to compare every size and offset with the
NumPy dtypes, and checks a TICK built in C byte for byte against :func:`.messages.encode`.

Regenerate: ``python -m arbsphere.firmware_interfaces.device_header``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces import serial_framing, udp_datagram
from arbsphere.layout import Layout, c_header

HEADER_PATH = Path(__file__).resolve().parent / "include" / "arbsphere_device.h"

_FRAMING = """\
 *
 * A device message is ONE fixed-size record: the common 8-byte header
 * (arbsphere_dev_header_t) followed by the body of its type; `length` is the whole message
 * size in bytes. Prices are fixed point: integer = price * ARBSPHERE_PRICE_SCALE.
 *
 * Serial transport (one message per frame):
 *     frame = COBS(message || CRC32C(message) as uint32 little-endian) || 0x00
 *   CRC-32C is Castagnoli (reflected poly 0x82F63B78, init/xorout 0xFFFFFFFF; check value
 *   of "123456789" is 0xE3069283). COBS removes every zero byte, so 0x00 only ends a frame;
 *   a receiver resynchronises at the next 0x00. At most ARBSPHERE_SERIAL_MAX_PAYLOAD
 *   message bytes per frame.
 *
 * UDP transport (MoldUDP64-like, little-endian):
 *     datagram = arbsphere_datagram_header_t || `count` messages back to back
 *   `sequence` is the device sequence of the first message; count 0 is a heartbeat that
 *   announces the next sequence. The messages must exactly fill the datagram.
 *
 * Clock sync (IEEE 1588 style, two-step, the rig is the master): rig SYNC (t1 stamped on the
 * rig just before the write) + FOLLOW_UP (precise t1); the device stamps t2 on SYNC arrival
 * and answers DELAY_REQ (t2, t3 = its own send time); the rig answers DELAY_RESP (t4). All
 * device times are on the device's own clock; the rig estimates offset and drift.
 *
 * Reserved type codes (ARBSPHERE_MSG_*_RESERVED_*) are rejected by receivers."""


def device_structs() -> list[tuple[str, Layout]]:
    """(C name, layout) of the message header, every message and the datagram header."""
    structs: list[tuple[str, Layout]] = [("arbsphere_dev_header_t", dm.DECLARATIONS.header)]
    structs += [(m.c_name, m.layout) for m in dm.DECLARATIONS.messages]
    structs.append((dm.DECLARATIONS.datagram_c_name, dm.DECLARATIONS.datagram_header))
    return structs


def device_constants() -> list[tuple[str, int, str]]:
    """(NAME, value, comment) of every constant the header defines."""
    decl = dm.DECLARATIONS
    out: list[tuple[str, int, str]] = [
        ("ARBSPHERE_DEVICE_MESSAGE_VERSION", decl.version, "header `version` of every message"),
        ("ARBSPHERE_PRICE_SCALE", decl.price_scale, "fixed-point units per price unit"),
        ("ARBSPHERE_DEV_HEADER_SIZE", decl.header.size, "bytes of the common message header"),
    ]
    for m in decl.messages:
        out.append((f"ARBSPHERE_MSG_{m.name}", m.code, f"{m.doc} ({m.layout.size} bytes)"))
    for name, code in decl.reserved.items():
        out.append((f"ARBSPHERE_MSG_{name}", code, "reserved"))
    for name, code in decl.ack_status.items():
        out.append((f"ARBSPHERE_ACK_STATUS_{name}", code, "arbsphere_ack_t.status"))
    for name, code in decl.arm_status.items():
        out.append((f"ARBSPHERE_ARM_STATUS_{name}", code, "arbsphere_armed_t.status"))
    out += [
        ("ARBSPHERE_SERIAL_MAX_PAYLOAD", serial_framing.MAX_PAYLOAD, "message bytes per frame"),
        ("ARBSPHERE_DATAGRAM_HEADER_SIZE", udp_datagram.HEADER_SIZE, "UDP datagram header"),
        ("ARBSPHERE_DATAGRAM_SESSION_SIZE", udp_datagram.SESSION_SIZE, "space-padded ASCII"),
    ]
    return out


def render_device_header() -> str:
    """The full text of ``arbsphere_device.h``."""
    return c_header(
        "ARBSPHERE_DEVICE_H",
        "ArbSphere device wire formats: feed and broker device messages.\n" + _FRAMING,
        device_structs(),
        device_constants(),
    )


def write_device_header(path: Path = HEADER_PATH) -> bool:
    """Write the header if it changed; return whether it was rewritten."""
    text = render_device_header()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else HEADER_PATH
    changed = write_device_header(path)
    print(f"{path}: {'written' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
