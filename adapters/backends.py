"""The device link backends, by link name: the one place that says which ``link = "..."``
exists and what it is made of.

A campaign names a link per venue (``[venues.<name>] link``) and for the broker (``[broker]
link``). Three readers look the name up here: the campaign loader (is it registered, can it
serve this role, is there an emulator for ``device = "emulator"``), the orchestrator (which
emulator module to launch and how to wire it to the adapter) and the adapters (which link class
to open, from which role-config keys).

Adding a backend: one module beside :mod:`.udp_link` / :mod:`.serial_link` with the link
classes (the :class:`~.links.FeedLink` / :class:`~.links.BrokerLink` protocols) and a parser of
the role-config keys they need, one line in :data:`BACKENDS`, and the shipped conformance checks
(:mod:`arbsphere.testing.links`) run against it: ``tests/test_links.py`` fails for a registered
backend without a loopback pair there. An emulator for it names its module here as a string (a
role must not import the emulators) and uses one of the :data:`WIRINGS` the orchestrator knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from arbsphere.adapters import serial_link, udp_link
from arbsphere.adapters.links import BrokerLink, FeedLink
from arbsphere.clock import Clock
from arbsphere.errors import ConfigError

#: the package the emulator module names below live in (launched as ``python -m``)
EMULATOR_PACKAGE = "arbsphere.firmware_interfaces.emulators"
#: How the orchestrator connects an emulated device to its adapter:
#: ``"udp"`` — over loopback UDP: a feed emulator sends to the address the venue adapter's
#: ready file reports; a broker emulator binds, reports its port, the adapter sends to it (and
#: an ``impairment`` table puts a UDP impairment relay in between).
#: ``"pty"`` — through a pseudo-terminal pair the orchestrator opens: the emulator inherits the
#: master fd (``master_fd``), the adapter opens the slave path as its ``port``.
WIRING_UDP = "udp"
WIRING_PTY = "pty"
WIRINGS = (WIRING_UDP, WIRING_PTY)

#: (role config, its file) -> the link class's config dataclass; errors name file and key
LinkConfigParser = Callable[[dict[str, Any], str], Any]


@dataclass(frozen=True)
class LinkBackend:
    """One link backend: its rig-side link classes, their config parsers and its emulators.

    ``broker_link`` None: the link cannot carry a broker. ``feed_emulator`` /
    ``broker_emulator``: module names under :data:`EMULATOR_PACKAGE` (None: hardware only).
    """

    name: str
    #: what it is, for error messages and the README
    summary: str
    feed_link: Callable[[Any, Clock], FeedLink]
    feed_config: LinkConfigParser
    broker_link: Callable[[Any, Clock], BrokerLink] | None
    broker_config: LinkConfigParser | None
    feed_emulator: str | None
    broker_emulator: str | None
    wiring: str

    def open_feed(self, cfg: dict[str, Any], source: str, clock: Clock) -> FeedLink:
        """The venue adapter's link, from its role config (file ``source``)."""
        return self.feed_link(self.feed_config(cfg, source), clock)

    def open_broker(self, cfg: dict[str, Any], source: str, clock: Clock) -> BrokerLink:
        """The broker adapter's link, from its role config (file ``source``)."""
        if self.broker_link is None or self.broker_config is None:
            raise ConfigError(
                f"a broker cannot use link {self.name!r}: must be one of the registered "
                f"links {', '.join(names('broker'))} (arbsphere/adapters/backends.py)",
                file=source,
                key="link",
            )
        return self.broker_link(self.broker_config(cfg, source), clock)

    def emulator(self, role: str) -> str | None:
        """The full module name of this backend's emulator for ``role`` ("feed" or "broker"),
        or None when there is none."""
        module = self.feed_emulator if role == "feed" else self.broker_emulator
        return None if module is None else f"{EMULATOR_PACKAGE}.{module}"


#: Every registered backend, by the name a campaign uses in ``link = "..."``.
BACKENDS: MappingProxyType[str, LinkBackend] = MappingProxyType(
    {
        "udp": LinkBackend(
            "udp", "MoldUDP64-like datagrams, kernel receive stamps",
            udp_link.UdpFeedLink, udp_link.feed_link_config,
            udp_link.UdpBrokerLink, udp_link.broker_link_config,
            "feed_udp", "broker_udp", WIRING_UDP,
        ),
        "serial": LinkBackend(
            "serial", "COBS + CRC-32C frames on a serial port or pty, user-space stamps",
            serial_link.SerialFeedLink, serial_link.link_config,
            serial_link.SerialBrokerLink, serial_link.link_config,
            "feed_serial", "broker_serial", WIRING_PTY,
        ),
    }
)  # fmt: skip


def names(role: str = "feed") -> list[str]:
    """The registered link names that can serve ``role`` ("feed" or "broker")."""
    return [n for n, b in BACKENDS.items() if role == "feed" or b.broker_link is not None]


def backend(name: str, *, role: str = "feed", file: str = "", key: str = "link") -> LinkBackend:
    """The backend registered as ``name`` for ``role``; a ConfigError naming ``file``,
    ``key`` and the value, with the registered names, when there is none."""
    found = BACKENDS.get(name)
    if found is None or name not in names(role):
        what = "unknown link" if found is None else f"a {role} cannot use link"
        raise ConfigError(
            f"{what} {name!r}: must be one of the registered links "
            f"{', '.join(names(role))} (arbsphere/adapters/backends.py)",
            file=file or None,
            key=key,
        )
    return found
