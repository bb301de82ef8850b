"""The campaign's ``timestamping`` and ``hw_config`` keys: defaults, validation naming file and
key, serial links refused hardware stamps, and the values carried to the adapters' links."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbsphere.adapters.links import LinkParams
from arbsphere.adapters.udp_link import UdpBrokerLinkConfig, UdpLinkConfig
from arbsphere.errors import ConfigError
from arbsphere.rig.config import Campaign, load_campaign

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()
VENUE_A = "[venues.venue_a]\n"
VENUE_B = "[venues.venue_b]\n"
BROKER = "[broker]\n"


def _load(tmp_path: Path, text: str) -> tuple[Path, Campaign]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path, load_campaign(path)


def _refused(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    return path, str(info.value)


def test_defaults_are_auto_and_keep() -> None:
    c = load_campaign(ROOT / "campaigns" / "loopback.toml")
    assert [(v.timestamping, v.hw_config) for v in c.venues] == [("auto", "keep")] * 2
    assert (c.broker.timestamping, c.broker.hw_config) == ("auto", "keep")
    assert c.resolved()["broker"]["timestamping"] == "auto"


def test_the_keys_are_read_and_carried_to_the_links(tmp_path: Path) -> None:
    assert VENUE_A in LOOPBACK and BROKER in LOOPBACK
    text = LOOPBACK.replace(VENUE_A, VENUE_A + 'timestamping = "hardware"\nhw_config = "set"\n')
    text = text.replace(BROKER, BROKER + 'timestamping = "software"\n')
    _path, c = _load(tmp_path, text)
    venue, broker = c.venues[0], c.broker
    assert (venue.timestamping, venue.hw_config) == ("hardware", "set")
    assert (broker.timestamping, broker.hw_config) == ("software", "keep")
    params = LinkParams(name="venue_a", timestamping="hardware", hw_config="set")
    assert UdpLinkConfig.from_params(params).stamps().timestamping == "hardware"
    assert UdpBrokerLinkConfig.from_params(params).hw_config == "set"


@pytest.mark.parametrize(
    ("table", "line", "key", "fragment"),
    [
        (VENUE_A, 'timestamping = "best"', "venues.venue_a.timestamping",
         "must be one of software, hardware, auto (value 'best')"),
        (BROKER, 'hw_config = "overwrite"', "broker.hw_config",
         "must be one of keep, set (value 'overwrite')"),
        (BROKER, "timestamping = true", "broker.timestamping", "must be a non-empty string"),
        (VENUE_B, 'timestamping = "hardware"', "venues.venue_b.timestamping",
         "hardware stamps are a UDP link's; link 'serial' stamps in user space"),
        (VENUE_B, 'hw_config = "set"', "venues.venue_b.hw_config",
         "only a UDP link sets a NIC's hardware stamping"),
    ],
)  # fmt: skip
def test_bad_values_name_file_and_key(
    tmp_path: Path, table: str, line: str, key: str, fragment: str
) -> None:
    path, message = _refused(tmp_path, LOOPBACK.replace(table, f"{table}{line}\n"))
    assert message.startswith(f"{path}: key '{key}'"), message
    assert fragment in message
