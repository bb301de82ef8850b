"""One UDP link's stamps: set up once at link open (:meth:`LinkTimestamping.open`), then used on
every datagram received (:meth:`LinkTimestamping.rx_stamp`) and on every send whose time matters
(:attr:`LinkTimestamping.tx`, :mod:`.tx_timestamps`).

At open: the plan (:mod:`.timestamp_mode`) from the interface's capabilities and current
hardware-stamp configuration (read with ``ETHTOOL_GET_TS_INFO`` / ``SIOCGHWTSTAMP``; in
"software" mode neither is asked), ``SIOCSHWTSTAMP`` only when the plan says so
(``hw_config = "set"``), the PHC conversion for hardware stamps (:mod:`.phc_clock`), and the
socket's ``SO_TIMESTAMPING`` flags: receive stamps (software, or software and raw hardware) and
the transmit reporting flags. What was chosen, why, and what was set is in :meth:`report`
(the role's stats, the manifest's ``timestamps``).

Sources, receive and transmit apart: ``"hardware"`` (PHC stamps on the rig timebase),
``"kernel-software"``, ``"user-space"`` (``clock.now_ns()`` around the system call). A link
never mixes them silently: a datagram that arrives without the stamp its source promises turns
the link's receive source down a step for it and every later one, counted.
"""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arbsphere.adapters.links import TIMESTAMP_HARDWARE, TIMESTAMP_KERNEL, TIMESTAMP_USER
from arbsphere.adapters.nic_timestamping import (
    HwTimestampConfig,
    IoctlFn,
    hwtstamp_config,
    set_hwtstamp,
    ts_info,
)
from arbsphere.adapters.phc_clock import PhcConversion, PhcReader
from arbsphere.adapters.timestamp_mode import (
    ANY_PACKET_FILTERS,
    DEFAULT_HW_CONFIG,
    DEFAULT_TIMESTAMPING,
    RX_HARDWARE,
    TimestampPlan,
    hardware_gap,
    plan_timestamping,
)
from arbsphere.adapters.tx_timestamps import TX_REPORT_FLAGS, TxStamps
from arbsphere.clock import Clock
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces.kernel_timestamps import (
    RX_HARDWARE_FLAGS,
    RX_SOFTWARE_FLAGS,
    enable_timestamping,
    kernel_rx_stamps,
)

#: how to open a PHC reader for ``/dev/ptp<N>`` (replaceable in tests)
PhcOpener = Callable[[str], PhcReader]


@dataclass(frozen=True)
class StampSettings:
    """The campaign's timestamping of one UDP link (``timestamping``, ``hw_config``) and the
    link's own knobs."""

    timestamping: str = DEFAULT_TIMESTAMPING
    hw_config: str = DEFAULT_HW_CONFIG
    #: False: user-space stamps only, no kernel stamps asked (tests, odd kernels)
    kernel: bool = True
    #: how often the PHC is measured against the system clock (hardware stamps)
    phc_interval_ns: int = 100_000_000


@dataclass
class _Open:
    """What :meth:`LinkTimestamping.open` found, before the socket flags are set."""

    plan: TimestampPlan
    phc: PhcConversion | None = None
    hw_config: dict[str, Any] = field(default_factory=dict)


class LinkTimestamping:
    """The stamps of one UDP socket (see the module docstring). ``rx_flags``: the
    ``SO_TIMESTAMPING`` receive flags the kernel accepted (0: none, user-space stamps);
    ``kernel_asked``: kernel stamps were wanted (a user-space stamp then counts as a fallback);
    ``tx_ok``: the kernel accepted the transmit reporting flags."""

    def __init__(
        self, sock: socket.socket, name: str, plan: TimestampPlan, *, rx_flags: int,
        kernel_asked: bool, tx_ok: bool, phc: PhcConversion | None = None,
        hw_config: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.plan = plan
        self.phc = phc
        self.hw_config = hw_config or {}
        self.counts = {"rx_stamp_fallbacks": 0, "rx_hw_missing": 0}
        self._hw_asked = rx_flags == RX_HARDWARE_FLAGS and phc is not None
        self._kernel_asked = kernel_asked
        self.rx_source = (TIMESTAMP_HARDWARE if self._hw_asked
                          else TIMESTAMP_KERNEL if rx_flags else TIMESTAMP_USER)  # fmt: skip
        self.tx: TxStamps | None = None
        self.tx_source = TIMESTAMP_USER
        if tx_ok:
            hw = plan.tx_hardware and phc is not None
            self.tx = TxStamps(sock, hardware=hw, to_rig=None if phc is None else phc.to_rig)
            self.tx_source = TIMESTAMP_HARDWARE if hw else TIMESTAMP_KERNEL

    @classmethod
    def open(
        cls, sock: socket.socket, name: str, interface: str | None, clock: Clock,
        settings: StampSettings, *, ioctl: IoctlFn = fcntl.ioctl,
        phc_opener: PhcOpener = PhcReader,
    ) -> LinkTimestamping:  # fmt: skip
        """Plan, configure and enable the stamps of ``sock`` (bound on ``interface``; None: no
        single interface). LinkError for "hardware" where it cannot be had."""
        if not settings.kernel:
            why = "kernel stamps switched off for this link"
            plan = TimestampPlan(settings.timestamping, settings.hw_config, interface,
                                 "user-space", why)  # fmt: skip
            return cls(sock, name, plan, rx_flags=0, kernel_asked=False, tx_ok=False)
        found = _plan(name, interface, clock, settings, ioctl, phc_opener)
        hw = found.plan.rx == RX_HARDWARE and found.phc is not None
        rx_flags = RX_HARDWARE_FLAGS if hw else RX_SOFTWARE_FLAGS
        tx_ok = enable_timestamping(sock, rx_flags | TX_REPORT_FLAGS)
        if not tx_ok and not enable_timestamping(sock, rx_flags):
            rx_flags = 0  # the kernel refuses SO_TIMESTAMPING: user-space stamps
        return cls(sock, name, found.plan, rx_flags=rx_flags, kernel_asked=True, tx_ok=tx_ok,
                   phc=found.phc, hw_config=found.hw_config)  # fmt: skip

    def rx_stamp(self, ancdata: list[tuple[int, int, bytes]], user_ns: int) -> int:
        """The receive stamp of one datagram (rig ns) from its ancillary data; ``user_ns`` (the
        clock right after ``recvmsg``) where the promised kernel stamp is missing."""
        source = self.rx_source
        if source == TIMESTAMP_USER:
            if self._kernel_asked:
                self.counts["rx_stamp_fallbacks"] += 1
            return user_ns
        sw, hw = kernel_rx_stamps(ancdata)
        if self._hw_asked:
            if source == TIMESTAMP_HARDWARE:
                if hw:
                    return self.phc.to_rig(hw)  # type: ignore[union-attr]
                self.rx_source = TIMESTAMP_KERNEL
            self.counts["rx_hw_missing"] += 1
        if sw:
            return sw
        self.rx_source = TIMESTAMP_USER
        self.counts["rx_stamp_fallbacks"] += 1
        return user_ns

    def refresh(self, now_ns: int) -> None:
        """Re-measure the PHC against the system clock when due (hardware stamps only)."""
        if self.phc is not None:
            self.phc.refresh(now_ns)

    @property
    def uncertainty_ns(self) -> int:
        """The largest uncertainty of a hardware stamp converted to rig time (0: stamps taken
        on the rig's own clock)."""
        return 0 if self.phc is None else self.phc.uncertainty_ns

    def counters(self) -> dict[str, int]:
        tx = {} if self.tx is None else self.tx.counts
        return {**self.counts, **tx}

    def report(self) -> dict[str, Any]:
        """What the manifest records of this link's stamps."""
        p = self.plan
        unc = self.uncertainty_ns
        return {
            "requested": p.requested, "hw_config": p.hw_config, "interface": p.interface,
            "rx": self.rx_source, "tx": self.tx_source, "reason": p.reason,
            "rx_uncertainty_ns": unc if self.rx_source == TIMESTAMP_HARDWARE else 0,
            "tx_uncertainty_ns": unc if self.tx_source == TIMESTAMP_HARDWARE else 0,
            "phc": None if self.phc is None else self.phc.summary(),
            "hw_config_set": self.hw_config or None,
        }  # fmt: skip

    def close(self) -> None:
        if self.phc is not None:
            self.phc.close()


def _plan(
    name: str, interface: str | None, clock: Clock, settings: StampSettings, ioctl: IoctlFn,
    phc_opener: PhcOpener,
) -> _Open:  # fmt: skip
    """The plan, with the interface read (not in "software" mode), its configuration set when
    the plan says so, and the PHC opened for hardware stamps."""
    mode = settings.timestamping
    if mode == "software":
        return _Open(plan_timestamping(name, interface, None, None, mode, settings.hw_config))
    caps = current = None
    if interface is not None:
        try:
            caps = ts_info(interface, ioctl)
            if hardware_gap(caps) is None:
                current = hwtstamp_config(interface, ioctl)
        except LinkError as exc:
            if mode == "hardware":
                raise LinkError(f"{name}: timestamping = 'hardware': {exc}") from exc
            plan = plan_timestamping(name, interface, None, None, "software", settings.hw_config)
            return _Open(_software(plan, mode, str(exc)))
    plan = plan_timestamping(name, interface, caps, current, mode, settings.hw_config)
    if plan.rx != RX_HARDWARE:
        return _Open(plan)
    try:
        return _hardware(name, plan, current, clock, settings, ioctl, phc_opener)
    except LinkError as exc:
        if mode == "hardware":
            raise LinkError(f"{name}: timestamping = 'hardware': {exc}") from exc
        return _Open(_software(plan, mode, str(exc)))


def _software(plan: TimestampPlan, mode: str, why: str) -> TimestampPlan:
    """``plan`` turned to software stamps ("auto" where hardware could not be had)."""
    return TimestampPlan(mode, plan.hw_config, plan.interface, "software", f"software: {why}")


def _hardware(
    name: str, plan: TimestampPlan, current: HwTimestampConfig | None, clock: Clock,
    settings: StampSettings, ioctl: IoctlFn, phc_opener: PhcOpener,
) -> _Open:  # fmt: skip
    """Hardware stamps as planned: the PHC opened and measured first (no side effect), then the
    interface configured when the plan says so (``SIOCSHWTSTAMP``, recorded with what it
    replaced)."""
    phc = PhcConversion(phc_opener(f"/dev/ptp{plan.phc_index}"), clock,
                        interval_ns=settings.phc_interval_ns)  # fmt: skip
    found = _Open(plan, phc)
    interface = plan.interface
    if plan.set_config is not None:
        assert interface is not None
        try:
            now = set_hwtstamp(interface, *plan.set_config, ioctl=ioctl)
        except LinkError:
            phc.close()
            raise
        found.hw_config = {"set": list(plan.set_config), "driver_set": now.to_json(),
                           "replaced": None if current is None else current.to_json()}  # fmt: skip
        if now.rx_filter not in ANY_PACKET_FILTERS:
            phc.close()
            raise LinkError(f"{interface}: SIOCSHWTSTAMP asked rx {plan.set_config[1]}, "
                            f"the driver set rx {now.rx_filter}")  # fmt: skip
    return found
