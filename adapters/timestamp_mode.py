"""Which stamps a UDP link takes: the campaign's ``timestamping`` and ``hw_config`` weighed
against what the link's interface offers (``ETHTOOL_GET_TS_INFO``) and how it is set now
(``SIOCGHWTSTAMP``). Pure decisions; :mod:`.link_timestamping` acts on them.

``timestamping``:

* ``"software"`` — kernel software stamps (``CLOCK_REALTIME``, taken in the network stack);
* ``"hardware"`` — the NIC's raw hardware stamps (its PTP hardware clock), converted to rig time;
  an interface that cannot is an error at link open naming the interface and what the kernel
  reported;
* ``"auto"`` (the default) — hardware where the interface can and is set up for it, else
  software; which one and why is recorded.

``hw_config``:

* ``"keep"`` (the default) — the interface's hardware-stamp configuration belongs to whoever set
  it (ptp4l, another rig): it is read, never written. Hardware mode then needs it already on
  with a receive filter that stamps every packet (``ALL`` or ``SOME``; the PTP-only filters miss
  the rig's datagrams).
* ``"set"`` — the link sets it (``SIOCSHWTSTAMP``: transmit ``ON`` where offered, receive
  ``ALL``, else ``SOME``) and records the configuration it replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbsphere.adapters.nic_timestamping import HwTimestampConfig, TimestampingInfo
from arbsphere.errors import LinkError

TIMESTAMPING_MODES = ("software", "hardware", "auto")
HW_CONFIG_MODES = ("keep", "set")
DEFAULT_TIMESTAMPING = "auto"
DEFAULT_HW_CONFIG = "keep"
#: receive filters that stamp the rig's (non-PTP) datagrams, best first
ANY_PACKET_FILTERS = ("ALL", "SOME")
RX_HARDWARE = "hardware"
RX_SOFTWARE = "software"


def hardware_gap(caps: TimestampingInfo) -> str | None:
    """Why ``caps`` cannot give hardware receive stamps of the rig's datagrams (None: it can)."""
    flags = caps.flags
    reported = (f"ETHTOOL_GET_TS_INFO reports so_timestamping [{', '.join(flags)}], "
                f"rx_filters [{', '.join(caps.rx_filter_names)}], phc_index "
                f"{-1 if caps.phc_index is None else caps.phc_index}")  # fmt: skip
    missing = [f for f in ("RX_HARDWARE", "RAW_HARDWARE") if f not in flags]
    if missing:
        return (
            f"{caps.interface}: no hardware receive stamps ({reported}; needs {', '.join(missing)})"
        )
    if caps.phc_index is None:
        return f"{caps.interface}: no PTP hardware clock to convert its stamps ({reported})"
    if not any(f in caps.rx_filter_names for f in ANY_PACKET_FILTERS):
        return (f"{caps.interface}: no receive filter stamps every packet ({reported}; needs ALL "
                "or SOME: the PTP-only filters miss the rig's datagrams)")  # fmt: skip
    return None


def timestamp_mode_possible(caps: TimestampingInfo | None, mode: str) -> tuple[bool, str]:
    """Can a link on an interface with capabilities ``caps`` (None: unknown, e.g. a wildcard
    bind address) run in ``mode``? (possible, the reason: for "auto" which stamps it would take).
    Capabilities only: whether hardware stamping is switched on is the link's check at open."""
    if mode not in TIMESTAMPING_MODES:
        return False, f"unknown timestamping {mode!r}: one of {', '.join(TIMESTAMPING_MODES)}"
    if mode == "software":
        return True, "software stamps asked (user-space where the kernel refuses them)"
    if caps is None:
        why = "no single interface is known for the link, so no hardware stamps"
        return mode == "auto", (f"software: {why}" if mode == "auto" else why)
    gap = hardware_gap(caps)
    if gap is None:
        return True, f"hardware stamps on {caps.interface}, PHC /dev/ptp{caps.phc_index}"
    return mode == "auto", (f"software: {gap}" if mode == "auto" else gap)


@dataclass(frozen=True)
class TimestampPlan:
    """What a link will do: its receive stamps, whether it sets the interface's configuration
    (``set_config``: (tx_type, rx_filter) for ``SIOCSHWTSTAMP``) and asks hardware transmit
    stamps, and why."""

    requested: str
    hw_config: str
    interface: str | None
    rx: str
    reason: str
    phc_index: int | None = None
    set_config: tuple[str, str] | None = None
    tx_hardware: bool = False


def _describe(current: HwTimestampConfig | None) -> str:
    if current is None:
        return "the driver reports no hardware-stamp configuration"
    return f"SIOCGHWTSTAMP: tx {current.tx_type}, rx {current.rx_filter}"


def plan_timestamping(
    name: str, interface: str | None, caps: TimestampingInfo | None,
    current: HwTimestampConfig | None, mode: str, hw_config: str,
) -> TimestampPlan:  # fmt: skip
    """The plan for link ``name``; LinkError naming the interface when ``mode`` is "hardware"
    and the interface cannot or is not set up for it (with ``hw_config`` "keep")."""
    if hw_config not in HW_CONFIG_MODES:
        raise LinkError(f"{name}: hw_config {hw_config!r}: one of {', '.join(HW_CONFIG_MODES)}")
    ok, why = timestamp_mode_possible(caps, mode)
    if not ok:
        raise LinkError(f"{name}: timestamping = {mode!r}: {why}")
    if mode == "software" or caps is None or hardware_gap(caps) is not None:
        return TimestampPlan(mode, hw_config, interface, RX_SOFTWARE, why)
    on = current is not None and current.rx_filter in ANY_PACKET_FILTERS
    set_config = None
    if not on and hw_config == "set":
        tx = "ON" if "ON" in caps.tx_type_names else "OFF"
        set_config = (tx, next(f for f in ANY_PACKET_FILTERS if f in caps.rx_filter_names))
    elif not on:
        why = (f"hardware stamps are not switched on for the rig's datagrams on {interface} "
               f"({_describe(current)}); switch them on (e.g. hwstamp_ctl -i {interface} -t 1 "
               '-r 1) or let the rig set them with hw_config = "set"')  # fmt: skip
        if mode == "hardware":
            raise LinkError(f"{name}: timestamping = 'hardware': {why}")
        return TimestampPlan(mode, hw_config, interface, RX_SOFTWARE, f"software: {why}")
    tx_on = (
        set_config[0] == "ON" if set_config else (current is not None and current.tx_type == "ON")
    )
    return TimestampPlan(
        mode, hw_config, interface, RX_HARDWARE,
        why + (f"; the rig sets tx {set_config[0]}, rx {set_config[1]}" if set_config else ""),
        caps.phc_index, set_config, tx_on and "TX_HARDWARE" in caps.flags,
    )  # fmt: skip
