"""The device link backends, by link name: the one place that says which ``link = "..."``
exists and what it is made of.

A campaign names a link per venue (``[venues.<name>] link``) and for the broker (``[broker]
link``). Three readers look the name up here: the campaign loader (is it registered, can it
serve this role, is there an emulator for ``device = "emulator"``), the orchestrator (which
emulator module to launch, how to wire it to the adapter, and the link's settings for the
adapter's role config: :meth:`LinkBackend.feed_settings`) and the adapters (which link class to
open, with which settings: :class:`FeedLinkSpec` / :class:`BrokerLinkSpec` in their role config,
read back into the settings dataclass the backend names).

Adding a backend: one module beside :mod:`.udp_link` / :mod:`.serial_link` with the link
classes (the :class:`~.links.FeedLink` / :class:`~.links.BrokerLink` protocols) and their
settings dataclasses (built from the campaign's :class:`~.links.LinkParams` by a ``from_params``
classmethod), one line in :data:`BACKENDS`, and the shipped conformance checks
(:mod:`arbsphere.testing.links`) run against it: ``tests/test_links.py`` fails for a registered
backend without a loopback pair there. An emulator for it names its module here as a string (a
role must not import the emulators) and uses one of the :data:`WIRINGS` the orchestrator knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any

from arbsphere.adapters import serial_link, udp_link
from arbsphere.adapters.links import BrokerLink, FeedLink, LinkParams
from arbsphere.clock import Clock
from arbsphere.errors import ConfigError
from arbsphere.runtime import ChosenBy

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


@dataclass(frozen=True)
class LinkBackend:
    """One link backend: its rig-side link classes, their settings dataclasses and its
    emulators.

    ``feed_config`` / ``broker_config``: the settings dataclass of the link class, what the
    adapter's role config carries (a classmethod ``from_params(LinkParams)`` builds it from the
    campaign). ``broker_link`` None: the link cannot carry a broker. ``feed_emulator`` /
    ``broker_emulator``: module names under :data:`EMULATOR_PACKAGE` (None: hardware only).
    """

    name: str
    #: what it is, for error messages and the README
    summary: str
    feed_link: Callable[[Any, Clock], FeedLink]
    feed_config: type[Any]
    broker_link: Callable[[Any, Clock], BrokerLink] | None
    broker_config: type[Any] | None
    feed_emulator: str | None
    broker_emulator: str | None
    wiring: str

    def feed_settings(self, params: LinkParams) -> Any:
        """A venue adapter's link settings from the campaign's link parameters."""
        return self.feed_config.from_params(params)

    def broker_settings(self, params: LinkParams) -> Any:
        """The broker adapter's link settings from the campaign's link parameters."""
        return self._broker_config().from_params(params)

    def _broker_config(self) -> type[Any]:
        if self.broker_link is None or self.broker_config is None:
            raise ConfigError(
                f"a broker cannot use link {self.name!r}: must be one of the registered "
                f"links {', '.join(names('broker'))} (arbsphere/adapters/backends.py)",
                key="backend",
            )
        return self.broker_config

    def open_feed(self, settings: Any, clock: Clock) -> FeedLink:
        """The venue adapter's link with its ``settings`` (a :attr:`feed_config`)."""
        return self.feed_link(settings, clock)

    def open_broker(self, settings: Any, clock: Clock) -> BrokerLink:
        """The broker adapter's link with its ``settings`` (a :attr:`broker_config`)."""
        self._broker_config()
        assert self.broker_link is not None
        return self.broker_link(settings, clock)

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
            udp_link.UdpFeedLink, udp_link.UdpLinkConfig,
            udp_link.UdpBrokerLink, udp_link.UdpBrokerLinkConfig,
            "feed_udp", "broker_udp", WIRING_UDP,
        ),
        "serial": LinkBackend(
            "serial", "COBS + CRC-32C frames on a serial port or pty, user-space stamps",
            serial_link.SerialFeedLink, serial_link.SerialLinkConfig,
            serial_link.SerialBrokerLink, serial_link.SerialLinkConfig,
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


def _feed_config_of(name: Any) -> type[Any]:
    return backend(str(name), role="feed", key="backend").feed_config


def _broker_config_of(name: Any) -> type[Any]:
    return backend(str(name), role="broker", key="backend")._broker_config()


@dataclass(frozen=True)
class FeedLinkSpec:
    """A venue adapter's link in its role config: the backend's name and the settings
    dataclass that backend names (read back as that dataclass)."""

    backend: str
    settings: Annotated[object, ChosenBy("backend", _feed_config_of)]

    def __post_init__(self) -> None:
        expected = _feed_config_of(self.backend)
        if not isinstance(self.settings, expected):
            raise ConfigError(f"must be a {expected.__name__}", key="settings")

    @classmethod
    def of(cls, backend_name: str, params: LinkParams) -> FeedLinkSpec:
        """The spec of link ``backend_name`` with the campaign's ``params``."""
        return cls(backend_name, backend(backend_name, role="feed").feed_settings(params))

    def open(self, clock: Clock) -> FeedLink:
        return backend(self.backend, role="feed").open_feed(self.settings, clock)


@dataclass(frozen=True)
class BrokerLinkSpec:
    """The broker adapter's link in its role config, as :class:`FeedLinkSpec`."""

    backend: str
    settings: Annotated[object, ChosenBy("backend", _broker_config_of)]

    def __post_init__(self) -> None:
        expected = _broker_config_of(self.backend)
        if not isinstance(self.settings, expected):
            raise ConfigError(f"must be a {expected.__name__}", key="settings")

    @classmethod
    def of(cls, backend_name: str, params: LinkParams) -> BrokerLinkSpec:
        return cls(backend_name, backend(backend_name, role="broker").broker_settings(params))

    def open(self, clock: Clock) -> BrokerLink:
        return backend(self.backend, role="broker").open_broker(self.settings, clock)
