"""The real calls on a veth pair (software stamps only, like loopback, but a NIC-like interface
between two network namespaces the test creates and removes): "auto" falls back to software
and says why, "hardware" fails naming the interface and what ``ETHTOOL_GET_TS_INFO`` reported,
and a SYNC sent across the pair is followed by a FOLLOW_UP carrying the kernel's transmit stamp
of it. Needs root and ``ip`` (iproute2); skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.udp_datagram import unpack_datagram

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to create network namespaces and a veth pair",
)

RIG_ADDR, DEVICE_ADDR, DEVICE_PORT = "10.77.31.1", "10.77.31.2", 9931

DEVICE = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{DEVICE_ADDR}", {DEVICE_PORT}))
s.settimeout(10)
print("ready", flush=True)
print(s.recv(65536).hex(), flush=True)
print(s.recv(65536).hex(), flush=True)
"""

RIG = f"""
import json
from arbsphere.adapters.sync_master import SyncMaster
from arbsphere.adapters.udp_link import UdpFeedLink, UdpLinkConfig
from arbsphere.clock import RealtimeClock
from arbsphere.errors import LinkError

clock = RealtimeClock()
out = {{}}
try:
    UdpFeedLink(UdpLinkConfig(bind_host="{RIG_ADDR}", name="venue_a", timestamping="hardware"),
                clock)
except LinkError as exc:
    out["hardware_error"] = str(exc)
link = UdpFeedLink(UdpLinkConfig(bind_host="{RIG_ADDR}", name="venue_a"), clock)
link.peer = ("{DEVICE_ADDR}", {DEVICE_PORT})
out["report"] = link.timestamping_report()
master = SyncMaster(link, clock, interval_ns=10**9, device_id=7, tx_wait_ms=100)
out["before"] = clock.now_ns()
master.poll(out["before"])
out["after"] = clock.now_ns()
out["pending"] = master.pending
out["counts"] = master.counts
print(json.dumps(out))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str]]:
    """Two namespaces joined by a veth pair: (rig namespace, device namespace, rig interface)."""
    tag = f"{os.getpid() % 100000}"
    rig, dev, rig_if, dev_if = f"tsr{tag}", f"tsd{tag}", f"vtsr{tag}", f"vtsd{tag}"
    _ip("netns", "add", rig)
    try:
        _ip("netns", "add", dev)
        try:
            _ip("link", "add", rig_if, "netns", rig, "type", "veth", "peer", "name", dev_if,
                "netns", dev)  # fmt: skip
            _ip("-n", rig, "addr", "add", f"{RIG_ADDR}/30", "dev", rig_if)
            _ip("-n", dev, "addr", "add", f"{DEVICE_ADDR}/30", "dev", dev_if)
            for ns, name in ((rig, rig_if), (dev, dev_if), (rig, "lo"), (dev, "lo")):
                _ip("-n", ns, "link", "set", name, "up")
            yield rig, dev, rig_if
        finally:
            _ip("netns", "del", dev)
    finally:
        _ip("netns", "del", rig)


def _python_in(ns: str, code: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", code]


def test_a_sync_across_a_veth_pair_carries_its_kernel_transmit_stamp(
    namespaces: tuple[str, str, str],
) -> None:
    rig_ns, dev_ns, rig_if = namespaces
    device = subprocess.Popen(_python_in(dev_ns, DEVICE), stdout=subprocess.PIPE, text=True)
    try:
        assert device.stdout is not None and device.stdout.readline().strip() == "ready"
        rig = subprocess.run(_python_in(rig_ns, RIG), capture_output=True, text=True, timeout=60)
        assert rig.returncode == 0, rig.stderr
        found = json.loads(rig.stdout)
        sent = [bytes.fromhex(device.stdout.readline().strip()) for _ in range(2)]
    finally:
        device.kill()
        device.wait(timeout=10)
    assert found["hardware_error"].startswith(
        f"venue_a: timestamping = 'hardware': {rig_if}: no hardware receive stamps "
        "(ETHTOOL_GET_TS_INFO reports so_timestamping ["
    )
    report = found["report"]
    assert (report["interface"], report["rx"], report["tx"]) == (
        rig_if, "kernel-software", "kernel-software")  # fmt: skip
    assert report["reason"].startswith(f"software: {rig_if}: no hardware receive stamps")
    messages = [dm.decode(bytes(m)) for d in sent for m in unpack_datagram(d).messages]
    assert [t for t, _ in messages] == [dm.MSG_SYNC, dm.MSG_FOLLOW_UP]
    t1 = int(messages[1][1]["t1_ns"][0])
    assert found["before"] < t1 < found["after"]
    assert found["pending"] == {"1": t1}
    assert found["counts"]["sync_tx_kernel"] == 1 and found["counts"]["sync_tx_fallbacks"] == 0
