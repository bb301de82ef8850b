"""``arbsphere device KIND --config FILE``: an emulated device started on its own, as an external
device the rig does not launch (a campaign's ``device = "hardware"``), e.g. on another host, in
another network namespace, or on the far end of a serial cable.

The config is the emulator's own JSON (the module docstrings of
:mod:`~arbsphere.firmware_interfaces.emulators.feed_udp`, ``feed_serial``, ``broker_udp``,
``broker_serial`` list the keys; errors name the file and the key). A feed has no schedule in
it — no ``start_at_ns`` or length: it idles, sending heartbeats and answering the clock sync,
until the rig's ARM (see :mod:`~arbsphere.firmware_interfaces.emulators.feed_session`), runs
that one schedule and exits. A broker answers orders until SIGTERM / Ctrl-C. The stats go to
the config's ``stats_path``, else beside the config (``<config stem>.stats.json``). Exit codes
as every device process: 0 stopped, 2 configuration error, 3 device or link failure.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from arbsphere.firmware_interfaces.device_main import run_device

EMULATORS = "arbsphere.firmware_interfaces.emulators"
#: command-line kind -> emulator module (under :data:`EMULATORS`)
DEVICE_KINDS = {
    "feed-udp": "feed_udp",
    "feed-serial": "feed_serial",
    "broker-udp": "broker_udp",
    "broker-serial": "broker_serial",
}


def run_external_device(kind: str, config: str) -> int:
    """Run the emulator of ``kind`` (a :data:`DEVICE_KINDS` key) with ``config`` in this
    process until it ends or is stopped; its exit code."""
    module_name = DEVICE_KINDS[kind]
    module = importlib.import_module(f"{EMULATORS}.{module_name}")
    path = Path(config)
    stats = str(path.with_name(f"{path.stem}.stats.json"))
    return run_device(module.main, module_name, [f"arbsphere device {kind}", config],
                      stats_default=stats)  # fmt: skip
