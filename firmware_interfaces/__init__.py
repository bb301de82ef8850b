"""What devices speak on the wire: device messages, their serial and UDP transports, the C
header for firmware authors, fixed test vectors, and the loopback device emulators.

Modules:

* :mod:`.messages` — device message layouts (``device_messages.toml``), encode/decode.
* :mod:`.crc` — CRC-32C of serial frames.
* :mod:`.serial_framing` — COBS + CRC-32C frames with a zero delimiter; stream deframer.
* :mod:`.udp_datagram` — MoldUDP64-like datagrams and sequence gap detection.
* :mod:`.device_header` — renders ``include/arbsphere_device.h`` from the same declarations.
* :mod:`.sync_responder` — the device side of the clock-sync exchange (SYNC -> DELAY_REQ).
* :mod:`.start_handshake` — the device side of ARM / ARMED / START.
* :mod:`.device_main` — a device process's plumbing: config reader, signals, stats JSON.
* :mod:`.emulators` — loopback feed/broker devices and the synthetic market they quote.

``vectors/*.json`` hold frozen byte-exact vectors every implementation (Python, firmware)
must reproduce.
"""
