"""Which stamps a UDP link takes: ``timestamping`` and ``hw_config`` against a NIC's recorded
answers (an i210-like NIC answered by an injected ioctl, byte for byte as the kernel would), the
PHC conversion on recorded ``PTP_SYS_OFFSET*`` replies, and the real calls on loopback (software
stamps only: "hardware" fails as documented, "auto" falls back and says why)."""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
from typing import Any

import pytest
from test_kernel_stamp_replies import (
    SCM_TIMESTAMPING,
    SEC,
    extended_reply,
    scm_timestamping,
    sys_offset_reply,
)

from arbsphere.adapters.link_timestamping import LinkTimestamping, StampSettings
from arbsphere.adapters.nic_timestamping import (
    ETHTOOL_GET_TS_INFO,
    SIOCETHTOOL,
    SIOCGHWTSTAMP,
    SIOCSHWTSTAMP,
    parse_ts_info,
    ts_info,
)
from arbsphere.adapters.phc_clock import (
    METHOD_CLOCK_GETTIME,
    METHOD_EXTENDED,
    METHOD_SYS_OFFSET,
    PTP_SYS_OFFSET,
    PTP_SYS_OFFSET_EXTENDED,
    PhcConversion,
    PhcReader,
)
from arbsphere.adapters.timestamp_mode import plan_timestamping, timestamp_mode_possible
from arbsphere.adapters.udp_link import UdpFeedLink, UdpLinkConfig
from arbsphere.clock import RealtimeClock
from arbsphere.errors import LinkError
from arbsphere.testing import StepClock

#: an i210's ETHTOOL_GET_TS_INFO: TX/RX hardware and software, SOFTWARE, RAW_HARDWARE;
#: /dev/ptp0; tx OFF, ON; rx NONE, ALL
I210 = struct.pack("<IIiI12xI12x", ETHTOOL_GET_TS_INFO, 0x5F, 0, 0b11, 0b11)
#: the same NIC offering only PTP v2 event filters (NONE, PTP_V2_EVENT)
PTP_ONLY = struct.pack("<IIiI12xI12x", ETHTOOL_GET_TS_INFO, 0x5F, 0, 0b11, 1 | (1 << 12))


def hwtstamp(tx_type: int, rx_filter: int) -> bytes:
    """struct hwtstamp_config { int flags; int tx_type; int rx_filter; }"""
    return struct.pack("<iii", 0, tx_type, rx_filter)


class FakeNic:
    """An ioctl function answering for one NIC with recorded replies, written through the
    ifreq's ``ifr_data`` pointer as the kernel writes them; every request is kept.
    ``config`` None: the driver has no hardware-stamp configuration (``EOPNOTSUPP``)."""

    def __init__(self, ts_reply: bytes, config: bytes | None) -> None:
        self.ts_reply = ts_reply
        self.config = config
        self.requests: list[int] = []
        self.set_to: list[tuple[int, int, int]] = []

    def __call__(self, fd: int, request: int, arg: Any) -> Any:
        _name, ptr = struct.unpack("16sP16x", arg)
        self.requests.append(request)
        if request == SIOCETHTOOL:
            ctypes.memmove(ptr, self.ts_reply, len(self.ts_reply))
        elif request == SIOCGHWTSTAMP:
            if self.config is None:
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            ctypes.memmove(ptr, self.config, 12)
        elif request == SIOCSHWTSTAMP:
            asked = struct.unpack("<iii", ctypes.string_at(ptr, 12))
            self.set_to.append(asked)
            self.config = hwtstamp(asked[1], asked[2])  # the driver sets what was asked
            ctypes.memmove(ptr, self.config, 12)
        else:
            raise OSError(errno.ENOTTY, "unexpected request")
        return arg


class FakePtp:
    """An ioctl function answering ``PTP_SYS_OFFSET_EXTENDED`` (or, when ``extended`` is
    false, refusing it with ENOTTY and answering ``PTP_SYS_OFFSET``) with a recorded reply whose
    PHC runs ``offset_ns`` ahead, moving by ``drift_ns`` per call."""

    def __init__(self, offset_ns: int, *, drift_ns: int = 0, extended: bool = True) -> None:
        self.offset_ns = offset_ns
        self.drift_ns = drift_ns
        self.extended = extended
        self.calls = 0
        self.sys_ns = 1_765_000_000 * SEC

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        self.calls += 1
        t = self.sys_ns + self.calls * 100_000_000
        off = self.offset_ns + (self.calls - 1) * self.drift_ns
        if request == PTP_SYS_OFFSET_EXTENDED and self.extended:
            # three samples, the second the narrowest (200 ns)
            samples = [
                (t, t + off + 400, t + 800),
                (t + 1_000, t + off + 1_100, t + 1_200),
                (t + 2_000, t + off + 2_300, t + 2_600),
            ]
            buf[:] = extended_reply(samples)
        elif request == PTP_SYS_OFFSET and not self.extended:
            buf[:] = sys_offset_reply([t, t + off + 300, t + 600])
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        return 0


def test_which_modes_an_interface_allows_and_why() -> None:
    i210 = parse_ts_info("enp3s0", I210)
    assert timestamp_mode_possible(i210, "hardware") == (
        True, "hardware stamps on enp3s0, PHC /dev/ptp0")  # fmt: skip
    assert timestamp_mode_possible(i210, "auto")[0]
    lo = ts_info("lo")  # the real call: software stamps only
    ok, why = timestamp_mode_possible(lo, "hardware")
    assert not ok
    assert why.startswith("lo: no hardware receive stamps (ETHTOOL_GET_TS_INFO reports "
                          "so_timestamping [TX_SOFTWARE, RX_SOFTWARE, SOFTWARE]")  # fmt: skip
    assert timestamp_mode_possible(lo, "auto") == (True, f"software: {why}")
    assert timestamp_mode_possible(lo, "software")[0]
    ok, why = timestamp_mode_possible(parse_ts_info("eth1", PTP_ONLY), "hardware")
    assert not ok and "no receive filter stamps every packet" in why and "PTP_V2_EVENT" in why
    no_phc = struct.pack("<IIiI12xI12x", ETHTOOL_GET_TS_INFO, 0x5F, -1, 0b11, 0b11)
    ok, why = timestamp_mode_possible(parse_ts_info("eth2", no_phc), "hardware")
    assert not ok and "no PTP hardware clock" in why
    assert timestamp_mode_possible(None, "hardware")[0] is False
    unknown = "no single interface is known for the link, so no hardware stamps"
    assert timestamp_mode_possible(None, "auto") == (True, f"software: {unknown}")
    assert timestamp_mode_possible(i210, "best")[0] is False


def test_the_plan_respects_a_configuration_someone_else_set() -> None:
    i210 = parse_ts_info("enp3s0", I210)
    off = None  # a driver answer of "not configured" reads as tx OFF, rx NONE below
    from arbsphere.adapters.nic_timestamping import parse_hwtstamp_config as cfg

    none = cfg("enp3s0", hwtstamp(0, 0))
    with pytest.raises(
        LinkError,
        match=r"venue_a: timestamping = 'hardware': hardware stamps "
        r"are not switched on .* on enp3s0 \(SIOCGHWTSTAMP: tx OFF, rx NONE\); "
        r'.*hwstamp_ctl .* or let the rig set them with hw_config = "set"',
    ):
        plan_timestamping("venue_a", "enp3s0", i210, none, "hardware", "keep")  # fmt: skip
    auto = plan_timestamping("venue_a", "enp3s0", i210, off, "auto", "keep")
    assert auto.rx == "software" and auto.reason.startswith("software: hardware stamps are not")
    assert auto.set_config is None
    by_rig = plan_timestamping("venue_a", "enp3s0", i210, none, "hardware", "set")
    assert (by_rig.rx, by_rig.set_config, by_rig.tx_hardware) == ("hardware", ("ON", "ALL"), True)
    # ptp4l set a PTP-only filter: "keep" does not touch it (and cannot stamp the datagrams)
    ptp4l = cfg("enp3s0", hwtstamp(1, 12))
    with pytest.raises(LinkError, match="tx ON, rx PTP_V2_EVENT"):
        plan_timestamping("venue_a", "enp3s0", i210, ptp4l, "hardware", "keep")
    assert plan_timestamping("b", "enp3s0", i210, ptp4l, "hardware", "set").set_config == (
        "ON", "ALL")  # fmt: skip
    # already on for every packet: used as it is, nothing set
    on = plan_timestamping("b", "enp3s0", i210, cfg("enp3s0", hwtstamp(1, 1)), "auto", "keep")
    assert (on.rx, on.set_config, on.tx_hardware) == ("hardware", None, True)
    rx_only = plan_timestamping("b", "enp3s0", i210, cfg("enp3s0", hwtstamp(0, 1)), "auto", "keep")
    assert rx_only.rx == "hardware" and not rx_only.tx_hardware
    with pytest.raises(LinkError, match="hw_config 'write'"):
        plan_timestamping("b", "enp3s0", i210, None, "auto", "write")


def _open(nic: FakeNic, mode: str, hw_config: str, ptp: FakePtp | None = None) -> Any:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    fake_ptp = ptp or FakePtp(37 * SEC)

    def opener(path: str) -> PhcReader:
        return PhcReader(path, fd=-1, ioctl=fake_ptp)

    try:
        return sock, LinkTimestamping.open(
            sock, "venue_a", "enp3s0", StepClock(1_000), StampSettings(mode, hw_config),
            ioctl=nic, phc_opener=opener,
        )  # fmt: skip
    except BaseException:
        sock.close()
        raise


def test_keep_never_issues_siocshwtstamp() -> None:
    nic = FakeNic(I210, hwtstamp(0, 0))
    with pytest.raises(LinkError, match="not switched on"):
        _open(nic, "hardware", "keep")
    sock, auto = _open(nic, "auto", "keep")
    sock.close()
    assert auto.rx_source == "kernel-software" and auto.tx_source == "kernel-software"
    assert auto.report()["reason"].startswith("software: hardware stamps are not switched on")
    assert SIOCSHWTSTAMP not in nic.requests and nic.set_to == []
    assert nic.requests.count(SIOCGHWTSTAMP) == 2  # read, both times
    # "software" does not even ask the NIC
    quiet = FakeNic(I210, hwtstamp(0, 0))
    sock, sw = _open(quiet, "software", "set")
    sock.close()
    assert quiet.requests == [] and sw.rx_source == "kernel-software"


def test_set_configures_the_nic_once_and_records_what_it_replaced() -> None:
    nic = FakeNic(I210, hwtstamp(0, 0))
    sock, ts = _open(nic, "hardware", "set")
    try:
        assert nic.set_to == [(0, 1, 1)]  # flags 0, HWTSTAMP_TX_ON, HWTSTAMP_FILTER_ALL
        assert nic.requests.count(SIOCSHWTSTAMP) == 1
        report = ts.report()
        assert (report["rx"], report["tx"]) == ("hardware", "hardware")
        assert report["hw_config_set"] == {
            "set": ["ON", "ALL"],
            "driver_set": {"interface": "enp3s0", "flags": 0, "tx_type": "ON", "rx_filter": "ALL"},
            "replaced": {"interface": "enp3s0", "flags": 0, "tx_type": "OFF", "rx_filter": "NONE"},
        }
        assert report["phc"]["method"] == METHOD_EXTENDED
        # the narrowest sandwich is 200 ns wide; the drift over the first 100 ms interval is
        # the assumed 100 ppm until a second measurement: 100 + 10_000 ns
        assert report["rx_uncertainty_ns"] == report["tx_uncertainty_ns"] == 10_100
    finally:
        ts.close()
        sock.close()


def test_hardware_receive_stamps_are_converted_and_a_missing_one_falls_back() -> None:
    nic = FakeNic(I210, hwtstamp(1, 1))  # switched on by someone else: used as it is
    sock, ts = _open(nic, "hardware", "keep")
    try:
        assert nic.set_to == []
        offset = 37 * SEC  # PHC minus the system midpoint of the narrowest sample
        assert ts.phc.offset_ns == offset
        sw = (1_765_000_000, 500)
        phc_ns = 1_765_000_037 * SEC + 900
        anc = [(socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping(sw, divmod(phc_ns, SEC)))]
        assert ts.rx_stamp(anc, 1) == phc_ns - offset
        assert ts.rx_source == "hardware" and ts.counts["rx_hw_missing"] == 0
        # a datagram without a hardware stamp (not through the NIC): software from then on
        sw_only = [(socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping(sw, (0, 0)))]
        assert ts.rx_stamp(sw_only, 1) == sw[0] * SEC + sw[1]
        assert ts.rx_stamp(anc, 1) == sw[0] * SEC + sw[1]  # never a mix
        assert ts.rx_source == "kernel-software" and ts.counts["rx_hw_missing"] == 2
        # no stamp at all: user-space from then on
        assert ts.rx_stamp([], 77) == 77 and ts.rx_source == "user-space"
        assert ts.counts["rx_stamp_fallbacks"] == 1
    finally:
        ts.close()
        sock.close()


def test_the_phc_reader_falls_back_through_the_kernels_methods() -> None:
    old = PhcReader("/dev/ptp3", fd=-1, ioctl=FakePtp(5 * SEC, extended=False))
    m = old.measure()
    assert (m.method, m.offset_ns, m.half_width_ns) == (METHOD_SYS_OFFSET, 5 * SEC, 300)

    def refuse(fd: int, request: int, buf: bytearray) -> int:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    wide = [0, 9 * SEC + 5_000, 10_000]  # 10 µs sandwiches: never the narrowest
    reads = iter([1_000, 9 * SEC + 1_400, 1_600, 2_000, 9 * SEC + 2_050, 2_100] + wide * 3)
    gettime_reader = PhcReader("/dev/ptp3", fd=-1, ioctl=refuse, gettime=lambda clk: next(reads))
    m = gettime_reader.measure()
    assert (m.method, m.offset_ns, m.half_width_ns) == (METHOD_CLOCK_GETTIME, 9 * SEC, 50)

    def broken(fd: int, request: int, buf: bytearray) -> int:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(LinkError, match=r"/dev/ptp3: PTP_SYS_OFFSET_EXTENDED failed: .*EIO|"
                       r"/dev/ptp3: PTP_SYS_OFFSET_EXTENDED failed"):  # fmt: skip
        PhcReader("/dev/ptp3", fd=-1, ioctl=broken).measure()
    with pytest.raises(LinkError, match="cannot open the PTP hardware clock /dev/ptp-none"):
        PhcReader("/dev/ptp-none")


def test_the_conversion_is_re_measured_and_its_uncertainty_includes_the_drift() -> None:
    clock = StepClock(1_000)
    ptp = FakePtp(2 * SEC, drift_ns=300)  # the PHC gains 300 ns per 100 ms: 3 ppm
    conv = PhcConversion(PhcReader("/dev/ptp0", fd=-1, ioctl=ptp), clock,
                         interval_ns=100_000_000, assumed_drift_ppm=100.0)  # fmt: skip
    assert conv.offset_ns == 2 * SEC and conv.uncertainty_ns == 100 + 10_000
    assert not conv.refresh(clock.now_ns() + 99_000_000)  # not due yet
    assert conv.refresh(clock.now_ns() + 100_000_000)
    assert conv.offset_ns == 2 * SEC + 300 and conv.drift_ppm == pytest.approx(3.0)
    assert conv.to_rig(5 * SEC) == 5 * SEC - (2 * SEC + 300)
    # the run's largest bound is kept (the first interval's, with the assumed drift)
    assert conv.uncertainty_ns == 10_100
    assert conv.summary()["measurements"] == 2


def test_on_loopback_hardware_fails_as_documented_and_auto_falls_back() -> None:
    clock = RealtimeClock()
    with pytest.raises(LinkError) as err:
        UdpFeedLink(UdpLinkConfig(name="venue_a", timestamping="hardware"), clock)
    assert str(err.value).startswith(
        "venue_a: timestamping = 'hardware': lo: no hardware receive stamps "
        "(ETHTOOL_GET_TS_INFO reports so_timestamping [TX_SOFTWARE, RX_SOFTWARE, SOFTWARE]"
    )
    link = UdpFeedLink(UdpLinkConfig(name="venue_a", timestamping="auto"), clock)
    try:
        report = link.timestamping_report()
        assert (report["rx"], report["tx"], report["interface"]) == (
            "kernel-software", "kernel-software", "lo")  # fmt: skip
        assert report["reason"].startswith("software: lo: no hardware receive stamps")
        assert report["rx_uncertainty_ns"] == 0 and report["phc"] is None
    finally:
        link.close()
    # a wildcard bind names no interface: hardware cannot be had, auto says why
    with pytest.raises(LinkError, match="no single interface is known"):
        UdpFeedLink(UdpLinkConfig(bind_host="0.0.0.0", timestamping="hardware"), clock)
    software = UdpFeedLink(UdpLinkConfig(timestamping="software"), clock)
    try:
        assert software.timestamping_report()["reason"].startswith("software stamps asked")
    finally:
        software.close()


class RefusingNic(FakeNic):
    """As :class:`FakeNic`, refusing ``refused`` with ``errno_``."""

    def __init__(self, refused: int, errno_: int) -> None:
        super().__init__(I210, hwtstamp(0, 0))
        self.refused = refused
        self.errno_ = errno_

    def __call__(self, fd: int, request: int, arg: Any) -> Any:
        if request == self.refused:
            self.requests.append(request)
            raise OSError(self.errno_, errno.errorcode[self.errno_])
        return super().__call__(fd, request, arg)


def test_what_the_nic_or_its_clock_refuses_fails_hardware_and_turns_auto_to_software() -> None:
    no_ethtool = RefusingNic(SIOCETHTOOL, errno.EOPNOTSUPP)
    with pytest.raises(LinkError, match="venue_a: timestamping = 'hardware': enp3s0: "
                       "ETHTOOL_GET_TS_INFO failed"):  # fmt: skip
        _open(no_ethtool, "hardware", "keep")
    sock, ts = _open(no_ethtool, "auto", "keep")
    sock.close()
    assert ts.report()["reason"].startswith("software: enp3s0: ETHTOOL_GET_TS_INFO failed")
    not_root = RefusingNic(SIOCSHWTSTAMP, errno.EPERM)
    with pytest.raises(LinkError, match=r"enp3s0: SIOCSHWTSTAMP \(tx ON, rx ALL\) failed"):
        _open(not_root, "hardware", "set")
    sock, ts = _open(not_root, "auto", "set")
    sock.close()
    assert ts.rx_source == "kernel-software" and "SIOCSHWTSTAMP" in ts.report()["reason"]
    # the PTP clock cannot be read: nothing was set on the NIC (the clock is opened first)
    dead_clock = FakeNic(I210, hwtstamp(0, 0))

    def refuse(fd: int, request: int, buf: bytearray) -> int:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(LinkError, match="/dev/ptp0: no way to read the PHC"):
            LinkTimestamping.open(
                sock, "venue_a", "enp3s0", StepClock(1), StampSettings("hardware", "set"),
                ioctl=dead_clock,
                phc_opener=lambda path: PhcReader(path, fd=-1, ioctl=refuse,
                                                  gettime=lambda clk: _refuse_gettime()),
            )  # fmt: skip
    finally:
        sock.close()
    assert dead_clock.set_to == []


def _refuse_gettime() -> int:
    raise OSError(errno.EINVAL, "Invalid argument")
