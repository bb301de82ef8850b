"""NIC timestamping capabilities: recorded kernel replies decoded, and the real ioctls on this
machine's interfaces (loopback: software stamps only, no PHC, no hardware configuration)."""

from __future__ import annotations

import struct

import pytest

from arbsphere.adapters.nic_timestamping import (
    ETHTOOL_GET_TS_INFO,
    hwtstamp_config,
    parse_hwtstamp_config,
    parse_ts_info,
    ts_info,
)
from arbsphere.errors import LinkError


def _ts_reply(so_ts: int, phc: int, tx_types: int, rx_filters: int) -> bytes:
    return struct.pack("=IIiI12xI12x", ETHTOOL_GET_TS_INFO, so_ts, phc, tx_types, rx_filters)


def test_a_recorded_ptp_nic_reply_decodes_to_hardware_receive_stamps() -> None:
    # an i210's reply: TX/RX hardware and software, SOFTWARE, RAW_HARDWARE; /dev/ptp0;
    # tx OFF, ON; rx NONE, ALL
    info = parse_ts_info("enp3s0", _ts_reply(0x5F, 0, 0b11, 0b11))
    assert info.flags == ("TX_HARDWARE", "TX_SOFTWARE", "RX_HARDWARE", "RX_SOFTWARE",
                          "SOFTWARE", "RAW_HARDWARE")  # fmt: skip
    assert info.phc_index == 0 and info.tx_type_names == ("OFF", "ON")
    assert info.rx_filter_names == ("NONE", "ALL")
    assert info.hardware_rx and info.software_rx
    # a PTP-only filter set still stamps (the rig's clock-sync traffic is not PTP, but the
    # capability is the NIC's); only NONE means no hardware receive stamps
    ptp_only = parse_ts_info("eth1", _ts_reply(0x5F, 1, 0b11, (1 << 0) | (1 << 12)))
    assert ptp_only.rx_filter_names == ("NONE", "PTP_V2_EVENT") and ptp_only.hardware_rx
    none = parse_ts_info("eth2", _ts_reply(0x5F, 1, 0b11, 1))
    assert not none.hardware_rx


def test_a_software_only_reply_and_unknown_bits() -> None:
    info = parse_ts_info("veth0", _ts_reply(26 | (1 << 30), -1, 0, 0))
    assert info.flags == ("TX_SOFTWARE", "RX_SOFTWARE", "SOFTWARE", "BIT30")
    assert info.phc_index is None and not info.hardware_rx and info.software_rx
    assert info.to_json()["so_timestamping"] == ["TX_SOFTWARE", "RX_SOFTWARE", "SOFTWARE", "BIT30"]


def test_malformed_replies_are_refused_naming_the_interface() -> None:
    with pytest.raises(LinkError, match="eth0: ethtool_ts_info reply of 40 bytes"):
        parse_ts_info("eth0", bytes(40))
    with pytest.raises(LinkError, match="eth0: ethtool reply for command 0x42"):
        parse_ts_info("eth0", struct.pack("=IIiI12xI12x", 0x42, 0, -1, 0, 0))
    with pytest.raises(LinkError, match="hwtstamp_config reply of 8 bytes"):
        parse_hwtstamp_config("eth0", bytes(8))


def test_a_recorded_hwtstamp_config_decodes() -> None:
    cfg = parse_hwtstamp_config("enp3s0", struct.pack("=iii", 0, 1, 12))
    assert (cfg.tx_type, cfg.rx_filter) == ("ON", "PTP_V2_EVENT")
    assert parse_hwtstamp_config("x", struct.pack("=iii", 0, 7, 99)).rx_filter == "UNKNOWN(99)"


def test_loopback_reports_software_stamps_and_no_hardware_configuration() -> None:
    info = ts_info("lo")
    assert info.software_rx and not info.hardware_rx and info.phc_index is None
    assert hwtstamp_config("lo") is None  # EOPNOTSUPP: no hardware stamping to read


def test_an_unknown_interface_is_named() -> None:
    with pytest.raises(LinkError, match="nosuchif0: ETHTOOL_GET_TS_INFO failed"):
        ts_info("nosuchif0")
    with pytest.raises(LinkError, match="interface name"):
        ts_info("x" * 16)
