"""The report's "Devices" section: what hardware and which timestamp source produced the run.

One row per device, from the manifest: emulated or hardware, its id, the link and where its rig
side is (interface and address, or serial port), the receive and transmit stamp sources with
the conversion uncertainty a hardware stamp adds to every stage bound, the serial settings in
effect (and what the port refused), and how a hardware feed answered the start handshake. It
reads the manifest as data only (``devices``, ``timestamps``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

_HEAD = ("device", "kind", "id", "link", "rig side", "rx stamps", "tx stamps",
         "stamp uncertainty", "port settings", "start handshake")  # fmt: skip


def devices_html(manifest: Mapping[str, Any]) -> str:
    """The section, or "" when the manifest has no ``devices``."""
    devices = manifest.get("devices")
    if not isinstance(devices, Mapping) or not devices:
        return ""
    stamps = manifest.get("timestamps")
    stamps = stamps if isinstance(stamps, Mapping) else {}
    e = html.escape
    rows = ["<h2>Devices</h2>", "<table><tr>", *(f"<th>{h}</th>" for h in _HEAD), "</tr>"]
    for name, dev in devices.items():
        if not isinstance(dev, Mapping):
            continue
        ts = stamps.get(name)
        cells = (
            str(dev.get("device", "-")),
            str(dev.get("device_id", "-")),
            str(dev.get("link", "-")),
            _rig_side(dev),
            *_stamp_cells(dev, ts if isinstance(ts, Mapping) else None),
            _settings(dev.get("settings")),
            _handshake(dev.get("start_handshake")),
        )
        rows.append(f"<tr><th>{e(str(name))}</th>" + "".join(f"<td>{e(c)}</td>" for c in cells))
        rows.append("</tr>")
    rows.append("</table>")
    return "".join(rows)


def _rig_side(dev: Mapping[str, Any]) -> str:
    if dev.get("link") == "udp":
        address = dev.get("local_address") or "-"
        return f"{dev.get('interface') or 'no interface'} {address}"
    return str(dev.get("port", "-"))


def _stamp_cells(dev: Mapping[str, Any], ts: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(rx, tx, uncertainty): the link's own report; a serial link stamps in user space."""
    if ts is None:
        user = "user-space" if dev.get("link") != "udp" else "-"
        return user, user, "-"
    rx = str(ts.get("rx", "-"))
    if ts.get("requested") not in (None, rx):
        rx += f" ({ts['requested']} asked)"
    tx = str(ts.get("tx", "-"))
    if ts.get("sync_t1") not in (None, tx):
        tx += f"; sync t1 {ts['sync_t1']}"
    unc = f"rx {ts.get('rx_uncertainty_ns', 0)} ns, tx {ts.get('tx_uncertainty_ns', 0)} ns"
    return rx, tx, unc


def _settings(settings: object) -> str:
    if not isinstance(settings, Mapping):
        return "-"
    held = settings.get("in_effect")
    refused = settings.get("refused")
    text = ", ".join(f"{k}={v}" for k, v in held.items()) if isinstance(held, Mapping) else ""
    if isinstance(refused, Mapping) and refused:
        text += "; refused: " + ", ".join(f"{k} ({why})" for k, why in refused.items())
    return text or "-"


def _handshake(arming: object) -> str:
    if not isinstance(arming, Mapping):
        return "-"
    status = arming.get("status") or "no answer"
    return f"{arming.get('state', '-')}: ARMED {status} after {arming.get('arms_sent', 0)} ARM(s)"
