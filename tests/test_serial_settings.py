"""Serial port settings: what a campaign asks of a serial link (parity, stop bits, flow control,
low latency) reaches the port, is read back from the kernel, and what the port refuses is
reported instead of failing the link — on real ptys (a pty takes CRTSCTS, IXON and CSTOPB,
forces no parity and has no low-latency flag)."""

from __future__ import annotations

import errno
import json
import os
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbsphere.adapters.backends import BrokerLinkSpec
from arbsphere.adapters.links import LinkParams, link_settings
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.adapters.serial_link import SerialBrokerLink, SerialFeedLink, SerialLinkConfig
from arbsphere.adapters.serial_settings import (
    SerialSettings,
    decode_termios,
    open_port,
    set_low_latency,
)
from arbsphere.clock import RealtimeClock
from arbsphere.errors import ConfigError, LinkError
from arbsphere.rig.config import load_campaign, serial_options
from arbsphere.rig.probe import device_findings
from arbsphere.runtime import config_from_json, config_to_json

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()
SERIAL_VENUE = (
    'port = "pty"                 # "pty": the rig allocates a pseudo-terminal for the emulator'
)


@pytest.fixture
def pty_slave() -> Iterator[str]:
    master, slave = open_pty_pair()
    try:
        yield slave
    finally:
        os.close(master)


def _cflag(fd: int) -> int:
    return int(termios.tcgetattr(fd)[2])


def test_a_pty_takes_rtscts_and_two_stop_bits_and_refuses_parity_and_low_latency(
    pty_slave: str,
) -> None:
    config = SerialLinkConfig(port=pty_slave, baudrate=115200, name="venue_b",
                              flow_control="rtscts", parity="odd", stopbits=2)  # fmt: skip
    link = SerialFeedLink(config, RealtimeClock())
    try:
        cflag = _cflag(link.fileno())
        assert cflag & termios.CRTSCTS and cflag & termios.CSTOPB
        # pyserial asked PARENB|PARODD; the pty driver clears PARENB (it forces CS8, no parity)
        assert cflag & termios.PARODD and not cflag & termios.PARENB
        report = link.settings_applied()
    finally:
        link.close()
    assert report["port"] == pty_slave and report["is_pty"] is True
    assert report["requested"] == {"baudrate": 115200, "flow_control": "rtscts",
                                   "parity": "odd", "stopbits": 2, "low_latency": True}  # fmt: skip
    assert report["in_effect"] == {"baudrate": 115200, "parity": "none", "stopbits": 2,
                                   "flow_control": "rtscts", "low_latency": None}  # fmt: skip
    assert set(report["refused"]) == {"parity", "low_latency"}
    assert "a pty forces 8 data bits and no parity" in report["refused"]["parity"]
    assert "ENOTTY" in report["refused"]["low_latency"]
    assert report["low_latency_was"] is None and report["latency_timer_ms"] is None


def test_xonxoff_is_set_on_the_port_and_low_latency_off_asks_nothing(pty_slave: str) -> None:
    settings = SerialSettings(flow_control="xonxoff", low_latency=False)
    port, report = open_port(pty_slave, 921600, settings, "broker")
    try:
        attrs = termios.tcgetattr(port.fileno())
        assert attrs[0] & termios.IXON and attrs[0] & termios.IXOFF
        assert not attrs[2] & (termios.CRTSCTS | termios.PARENB | termios.CSTOPB)
    finally:
        port.close()
    assert report.in_effect["flow_control"] == "xonxoff"
    assert report.refused == {}  # nothing asked that the pty does not hold


def test_dsrdtr_is_reported_as_not_held_since_linux_has_no_such_flow_control(
    pty_slave: str,
) -> None:
    port, report = open_port(pty_slave, 921600, SerialSettings("dsrdtr", low_latency=False), "x")
    port.close()
    assert report.in_effect["flow_control"] == "none"
    assert "no DSR/DTR flow control" in report.refused["flow_control"]


def test_a_port_that_does_not_exist_fails_naming_the_link_and_the_port() -> None:
    with pytest.raises(LinkError, match=r"venue_b: cannot open serial port '/dev/nonexistent'"):
        SerialBrokerLink(SerialLinkConfig(port="/dev/nonexistent", name="venue_b"),
                         RealtimeClock())  # fmt: skip


def test_termios_flags_decode_to_the_settings_they_mean() -> None:
    cs8 = termios.CS8 | termios.CREAD
    base = [0, 0, cs8, 0, termios.B115200, termios.B115200, []]
    assert decode_termios(base) == {"baudrate": 115200, "parity": "none", "stopbits": 1,
                                    "flow_control": "none"}  # fmt: skip
    even = [0, 0, cs8 | termios.PARENB, 0, termios.B9600, termios.B9600, []]
    assert decode_termios(even)["parity"] == "even"
    assert decode_termios(even)["baudrate"] == 9600
    odd = [0, 0, cs8 | termios.PARENB | termios.PARODD, 0, 0, 0o10000, []]
    assert decode_termios(odd)["parity"] == "odd"
    assert decode_termios(odd)["baudrate"] is None  # BOTHER: a custom rate termios has no name for
    both = [termios.IXON | termios.IXOFF, 0, termios.CRTSCTS | termios.CSTOPB, 0, 0, 0, []]
    assert decode_termios(both)["flow_control"] == "rtscts+xonxoff"
    assert decode_termios(both)["stopbits"] == 2


class _Port:
    """A stand-in for a serial.Serial whose TIOCSSERIAL answers ``error`` (0: accepts)."""

    def __init__(self, error: int) -> None:
        self.error = error
        self.calls: list[bool] = []

    def set_low_latency_mode(self, on: bool) -> None:
        self.calls.append(on)
        if self.error:
            try:
                raise OSError(self.error, os.strerror(self.error))
            except OSError as e:  # as pyserial does: ValueError with the IOError as context
                raise ValueError(f"Failed to update ASYNC_LOW_LATENCY flag to {on}: {e}") from None


def test_low_latency_is_set_where_the_driver_takes_it_and_the_refusal_says_why() -> None:
    accepting = _Port(0)
    assert set_low_latency(accepting, True) is None  # type: ignore[arg-type]
    assert accepting.calls == [True]
    why = set_low_latency(_Port(errno.EINVAL), True)  # type: ignore[arg-type]
    assert why is not None and "EINVAL" in why and "ASYNC_LOW_LATENCY" in why


def test_settings_are_checked_with_the_key_that_is_wrong() -> None:
    with pytest.raises(ConfigError) as info:
        SerialLinkConfig(port="/dev/ttyUSB0", parity="mark")
    assert info.value.key == "parity" and "'mark'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        SerialSettings(stopbits=True)
    assert info.value.key == "stopbits"
    with pytest.raises(ConfigError) as info:
        SerialSettings(low_latency=1)  # type: ignore[arg-type]
    assert info.value.key == "low_latency"


def _campaign(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_the_campaign_s_serial_keys_reach_the_link_settings(tmp_path: Path) -> None:
    assert SERIAL_VENUE in LOOPBACK
    text = LOOPBACK.replace(SERIAL_VENUE, 'port = "pty"\nflow_control = "rtscts"\n'
                            'parity = "even"\nstopbits = 2\nlow_latency = false')  # fmt: skip
    venue = load_campaign(_campaign(tmp_path, text)).venues[1]
    assert serial_options(venue) == {"flow_control": "rtscts", "parity": "even", "stopbits": 2,
                                     "low_latency": False}  # fmt: skip
    params = LinkParams(name=venue.name, port="/dev/pts/9", **serial_options(venue))
    settings = SerialLinkConfig.from_params(params)
    assert settings.settings() == SerialSettings("rtscts", "even", 2, False)
    default = load_campaign(ROOT / "campaigns" / "loopback.toml").venues[1]
    assert serial_options(default) == {"flow_control": "none", "parity": "none", "stopbits": 1,
                                       "low_latency": True}  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        (SERIAL_VENUE, 'port = "pty"\nparity = "mark"', "venues.venue_b.parity",
         "must be one of none, even, odd"),
        (SERIAL_VENUE, 'port = "pty"\nflow_control = "cts"', "venues.venue_b.flow_control",
         "must be one of none, rtscts, xonxoff, dsrdtr"),
        (SERIAL_VENUE, 'port = "pty"\nstopbits = 3', "venues.venue_b.stopbits", "must be in"),
        (SERIAL_VENUE, 'port = "pty"\nlow_latency = "yes"', "venues.venue_b.low_latency",
         "must be true or false"),
        ("bind_port = 0                # 0 = ephemeral port, told to the emulator",
         'bind_port = 0\nparity = "even"', "venues.venue_a.parity",
         "a serial port setting; link 'udp' has no serial port"),
        ('device_port = 0 ', 'low_latency = true\ndevice_port = 0 ', "broker.low_latency",
         "a serial port setting; link 'udp' has no serial port"),
    ],
)  # fmt: skip
def test_serial_keys_are_refused_naming_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, fragment: str
) -> None:
    assert old in LOOPBACK
    path = _campaign(tmp_path, LOOPBACK.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key '{key}'"), info.value
    assert fragment in str(info.value)


def test_a_serial_broker_takes_the_keys_too(tmp_path: Path) -> None:
    text = LOOPBACK.replace('[broker]\nlink = "udp"', '[broker]\nlink = "serial"\n'
                            'flow_control = "xonxoff"\nstopbits = 2')  # fmt: skip
    broker = load_campaign(_campaign(tmp_path, text)).broker
    assert (broker.link, broker.flow_control, broker.stopbits) == ("serial", "xonxoff", 2)


def test_what_the_link_set_lands_in_the_manifest_s_devices_section(pty_slave: str) -> None:
    campaign = load_campaign(ROOT / "campaigns" / "loopback.toml")
    link = SerialFeedLink(SerialLinkConfig(port=pty_slave, name="venue_b"), RealtimeClock())
    try:
        applied = {"venue_b": link_settings(link), "venue_a": None, "coordinator": None}
    finally:
        link.close()
    found = device_findings(campaign.venues, campaign.broker, applied)
    assert found["venue_b"]["settings"]["port"] == pty_slave
    assert "low_latency" in found["venue_b"]["settings"]["refused"]
    assert "settings" not in found["venue_a"] and "coordinator" not in found
    assert link_settings(object()) is None  # a link that sets nothing reports nothing


def test_the_serial_settings_survive_the_role_config_json_and_are_checked_there() -> None:
    params = LinkParams(
        name="broker", port="/dev/ttyUSB3", baudrate=115200, flow_control="rtscts",
        parity="odd", stopbits=2, low_latency=False,
    )  # fmt: skip
    spec = BrokerLinkSpec.of("serial", params)
    data = json.loads(json.dumps(config_to_json(spec)))
    back = config_from_json(BrokerLinkSpec, data, "broker.config.json", "link")
    assert back == spec and isinstance(back.settings, SerialLinkConfig)
    assert back.settings.settings() == SerialSettings("rtscts", "odd", 2, False)
    data["settings"]["parity"] = "mark"
    with pytest.raises(ConfigError) as info:
        config_from_json(BrokerLinkSpec, data, "broker.config.json", "link")
    assert "parity" in str(info.value) and "'mark'" in str(info.value)
