"""Loopback emulators of the feed and broker devices, each a real OS process.

* :mod:`.feed_udp` — feed device sending TICK/HEARTBEAT datagrams to the rig over UDP.
* :mod:`.feed_serial` — the same feed as COBS/CRC-32C frames on a pty master or serial port.
* :mod:`.broker_udp` — broker device answering every ORDER datagram with an ACK (its fill
  policy: :mod:`.fill_policy`).
* :mod:`.broker_serial` — the same broker as COBS/CRC-32C frames on a pty master or serial port.
* :mod:`.sync_responder` — a feed link's rig -> device direction served while the feed waits:
  the clock-sync exchange (:mod:`~arbsphere.firmware_interfaces.sync_responder`) and ARM /
  START.
* :mod:`.schedule` — the open-loop send schedule the feeds follow (no coordinated omission).
* :mod:`.feed_session` — a feed's session (the device side of ARM / ARMED / START is
  :mod:`~arbsphere.firmware_interfaces.start_handshake`): idle until armed when its config has
  no schedule (an external device, started with ``arbsphere device``), then run the armed
  schedule.
* :mod:`.impairment`, :mod:`.impair_relay` — link impairment, in an emulator or as a UDP relay.
* :mod:`.market` — the synthetic market the feeds quote.

Run one as ``python -m arbsphere.firmware_interfaces.emulators.feed_udp CONFIG.json``; exit code
0 on a normal stop (SIGTERM/SIGINT or schedule done), 2 on a bad config (the message names the
file and the key), 3 on a device or link failure.
"""
