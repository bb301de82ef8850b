"""The ArbSphere SDK for Python: what an author of a device or an adapter builds on.

**What is public is what this module exports** (its ``__all__``, listed below). Everything
else in the ``arbsphere`` package — including the modules these names come from — is the rig's
own and may change without notice; import from ``arbsphere.sdk`` only.

The rig's own loopback device emulators are built on these same pieces (the framing, datagrams,
clock-sync responder, start handshake and process plumbing are the objects exported here), so
every campaign exercises them. ``examples/python_feed_device.py`` (a feed, UDP or serial) and
``examples/python_broker_device.py`` are complete devices on this API alone that pass
``arbsphere conformance``; start there (README, "Writing a device").

**Device messages** (``device_messages.toml``, C header ``arbsphere_device.h``): fixed
little-endian records, an 8-byte header (``msg_type``, ``version``, ``length``, ``device_id``)
then the body. :func:`new_record` makes a zeroed record with its header filled,
:func:`encode` gives its bytes; :func:`decode` (named fields) and :func:`decode_values` (a
tuple, fast) check type, version and length and raise :class:`DecodeError` naming the problem
and the offset. Types and statuses: :class:`MsgType`, :class:`AckStatus`, :class:`ArmStatus`;
prices are integers in :data:`PRICE_SCALE` units.

**Transports**: serial frames (:func:`encode_frame`, :func:`decode_frame`,
:class:`FrameDecoder` for a byte stream: COBS + CRC-32C, 0x00 delimiter) and UDP datagrams
(:func:`pack_datagram` with a :func:`session_id`, :func:`unpack_datagram`,
:class:`GapDetector` for sequence gaps).
:class:`UdpDeviceLink` and :class:`SerialDeviceLink` are ready device-side links on them
(the :class:`DeviceLink` interface).

**Protocol state machines** (transport-free, clock-free: feed them messages with their arrival
time, send what they return): :class:`SyncResponder` (the device side of the clock-sync
exchange: SYNC -> DELAY_REQ) and :class:`StartHandshake` (ARM -> ARMED, START; when a feed's
schedule starts).

**A device process**: :func:`run_device` (config JSON, SIGTERM / SIGINT, stats JSON, exit
codes 0 / 2 config error / 3 failure) calling your ``main(cfg, ctx)`` with a
:class:`ConfigReader` (typed getters whose errors name the file and key) and a
:class:`DeviceContext`; :class:`DeviceLoop` is the main loop (link, heartbeats, sync answers,
arming, stats, clean stop) a device subclasses.

**Contract messages** (for adapter authors; ``contracts.toml``): :func:`default_registry`
returns the :class:`SchemaRegistry`; ``registry.schema("PlanDelta")`` a :class:`Schema` (its
``header.dtype`` and ``item.dtype`` are NumPy dtypes), ``registry.encode(...)`` the bytes of
one message in its 32-byte envelope, ``registry.decode(buf)`` a :class:`Message`.
"""

from __future__ import annotations

from enum import IntEnum

from arbsphere.clock import DeviceClock, RealtimeClock
from arbsphere.contracts import Message, Schema, SchemaRegistry, default_registry
from arbsphere.errors import (
    ArbSphereError,
    ConfigError,
    DatagramError,
    DecodeError,
    FrameError,
    LinkError,
)
from arbsphere.firmware_interfaces import messages as _dm
from arbsphere.firmware_interfaces.crc import crc32c
from arbsphere.firmware_interfaces.device_main import ConfigReader, DeviceContext, run_device
from arbsphere.firmware_interfaces.messages import decode, decode_values, encode, new_record
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, decode_frame, encode_frame
from arbsphere.firmware_interfaces.start_handshake import (
    ArmedAnswer,
    Capabilities,
    Schedule,
    StartHandshake,
)
from arbsphere.firmware_interfaces.sync_responder import PendingDelayReq, SyncResponder
from arbsphere.firmware_interfaces.udp_datagram import (
    Datagram,
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)
from arbsphere.sdk.device_loop import DeviceLoop
from arbsphere.sdk.links import DeviceLink, Received, SerialDeviceLink, UdpDeviceLink

PRICE_SCALE: int = _dm.PRICE_SCALE
"""Fixed-point units per price unit: a TICK's, ORDER's or ACK's price ``p`` travels as
``round(p * PRICE_SCALE)``."""

DEVICE_MESSAGE_VERSION: int = _dm.DEVICE_MESSAGE_VERSION
"""The device message version every header carries (a message of another is refused)."""


class MsgType(IntEnum):
    """Device message types (the header's ``msg_type``), from ``device_messages.toml``."""

    TICK = _dm.MSG_TICK
    ORDER = _dm.MSG_ORDER
    ACK = _dm.MSG_ACK
    HEARTBEAT = _dm.MSG_HEARTBEAT
    ARM = _dm.MSG_ARM
    ARMED = _dm.MSG_ARMED
    START = _dm.MSG_START
    SYNC = _dm.MSG_SYNC
    FOLLOW_UP = _dm.MSG_FOLLOW_UP
    DELAY_REQ = _dm.MSG_DELAY_REQ
    DELAY_RESP = _dm.MSG_DELAY_RESP


class AckStatus(IntEnum):
    """An ACK's ``status``: FILL (all lots), PARTIAL (fewer), REJECT (none) are final."""

    ACK = _dm.ACK_STATUS_ACK
    FILL = _dm.ACK_STATUS_FILL
    PARTIAL = _dm.ACK_STATUS_PARTIAL
    REJECT = _dm.ACK_STATUS_REJECT


class ArmStatus(IntEnum):
    """An ARMED's ``status``: OK (the device will run the schedule) or REFUSED (it stays
    idle)."""

    OK = _dm.ARM_STATUS_OK
    REFUSED = _dm.ARM_STATUS_REFUSED


__all__ = [
    "DEVICE_MESSAGE_VERSION",
    "PRICE_SCALE",
    "AckStatus",
    "ArbSphereError",
    "ArmStatus",
    "ArmedAnswer",
    "Capabilities",
    "ConfigError",
    "ConfigReader",
    "Datagram",
    "DatagramError",
    "DecodeError",
    "DeviceClock",
    "DeviceContext",
    "DeviceLink",
    "DeviceLoop",
    "FrameDecoder",
    "FrameError",
    "GapDetector",
    "LinkError",
    "Message",
    "MsgType",
    "PendingDelayReq",
    "RealtimeClock",
    "Received",
    "Schedule",
    "Schema",
    "SchemaRegistry",
    "SerialDeviceLink",
    "StartHandshake",
    "SyncResponder",
    "UdpDeviceLink",
    "crc32c",
    "decode",
    "decode_frame",
    "decode_values",
    "default_registry",
    "encode",
    "encode_frame",
    "new_record",
    "pack_datagram",
    "run_device",
    "session_id",
    "unpack_datagram",
]
