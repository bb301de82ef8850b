"""CRC-32C (Castagnoli), the checksum of serial device frames.

A thin typed wrapper over the ``crc32c`` package (hardware-accelerated where the CPU has it);
never hand-written here. Check value: ``crc32c(b"123456789") == 0xE3069283``.
"""

from __future__ import annotations

import crc32c as _crc32c

#: Published check value of CRC-32C over b"123456789".
CHECK_VALUE: int = 0xE3069283


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of ``data``; pass a previous result as ``value`` to continue a running CRC."""
    return int(_crc32c.crc32c(data, value))
