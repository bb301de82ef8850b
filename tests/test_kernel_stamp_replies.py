"""Kernel timestamp replies decoded from recorded bytes, packed here independently from the
kernel's struct layouts (x86-64, little endian): ``struct scm_timestamping`` (three timespecs,
the raw hardware stamp third), error-queue messages (``struct sock_extended_err`` with the
``OPT_ID`` in ``ee_data``, then an offender ``sockaddr_in``), and the PTP clock's
``PTP_SYS_OFFSET_EXTENDED`` / ``PTP_SYS_OFFSET`` replies."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from arbsphere.adapters.phc_clock import (
    PTP_SYS_OFFSET,
    PTP_SYS_OFFSET_EXTENDED,
    fd_to_clockid,
    narrowest,
    parse_sys_offset,
    parse_sys_offset_extended,
)
from arbsphere.adapters.tx_timestamps import parse_tx_stamp
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces.kernel_timestamps import (
    kernel_rx_stamp,
    kernel_rx_stamps,
    parse_scm_timestamping,
)

SEC = 1_000_000_000
SOL_IP, IP_RECVERR, SOL_IPV6, IPV6_RECVERR = 0, 11, 41, 25
SCM_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD on x86-64
ORIGIN_ICMP, ORIGIN_TIMESTAMPING = 2, 4


def scm_timestamping(sw: tuple[int, int], hw: tuple[int, int]) -> bytes:
    """struct scm_timestamping { struct timespec ts[3]; }: software, legacy (zero), hardware."""
    return struct.pack("<qqqqqq", sw[0], sw[1], 0, 0, hw[0], hw[1])


def extended_err(ee_errno: int, origin: int, info: int, data: int) -> bytes:
    """struct sock_extended_err (16 bytes) and the zeroed sockaddr_in the kernel appends."""
    return struct.pack("<IBBBBII", ee_errno, origin, 0, 0, 0, info, data) + bytes(16)


def test_a_hardware_receive_stamp_is_the_third_timespec() -> None:
    data = scm_timestamping((1_700_000_000, 123_456_789), (37, 5))
    assert parse_scm_timestamping(data) == (1_700_000_000 * SEC + 123_456_789, 37 * SEC + 5)
    anc = [(socket.SOL_SOCKET, SCM_TIMESTAMPING, data)]
    assert kernel_rx_stamps(anc) == (1_700_000_000 * SEC + 123_456_789, 37 * SEC + 5)
    # the software-only reader still sees the first timespec
    assert kernel_rx_stamp(anc) == 1_700_000_000 * SEC + 123_456_789


def test_a_receive_stamp_without_one_kind_reads_zero_for_it() -> None:
    hw_only = scm_timestamping((0, 0), (12, 34))
    assert parse_scm_timestamping(hw_only) == (0, 12 * SEC + 34)
    assert kernel_rx_stamps([(socket.SOL_SOCKET, SCM_TIMESTAMPING, hw_only)]) == (0, 12 * SEC + 34)
    # another control message, or none at all
    assert kernel_rx_stamps([(SOL_IP, 8, b"\0" * 12)]) == (0, 0)
    assert kernel_rx_stamps([]) == (0, 0)
    # a truncated control message gives what it holds
    assert parse_scm_timestamping(struct.pack("<qq", 5, 6)) == (5 * SEC + 6, 0)
    assert parse_scm_timestamping(b"\1\2\3") == (0, 0)


def test_an_error_queue_transmit_stamp_with_its_opt_id() -> None:
    anc = [
        (SOL_IP, IP_RECVERR, extended_err(errno.ENOMSG, ORIGIN_TIMESTAMPING, 0, 41)),
        (socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping((1_700_000_001, 7), (0, 0))),
    ]
    assert parse_tx_stamp(anc) == (41, 1_700_000_001 * SEC + 7, 0)
    # the order of the two control messages does not matter; IPv6 sockets report on SOL_IPV6
    v6 = [anc[1], (SOL_IPV6, IPV6_RECVERR, anc[0][2])]
    assert parse_tx_stamp(v6) == (41, 1_700_000_001 * SEC + 7, 0)
    # a hardware transmit stamp (SCM_TSTAMP_SND too: ts[2] set), id at the top of the u32 range
    hw = [
        (SOL_IP, IP_RECVERR, extended_err(errno.ENOMSG, ORIGIN_TIMESTAMPING, 0, 0xFFFF_FFFF)),
        (socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping((0, 0), (99, 1))),
    ]
    assert parse_tx_stamp(hw) == (0xFFFF_FFFF, 0, 99 * SEC + 1)


def test_error_queue_messages_that_are_not_send_stamps_are_none() -> None:
    stamp = (socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping((5, 0), (0, 0)))
    icmp = (SOL_IP, IP_RECVERR, extended_err(errno.ECONNREFUSED, ORIGIN_ICMP, 0, 0))
    sched = (SOL_IP, IP_RECVERR, extended_err(errno.ENOMSG, ORIGIN_TIMESTAMPING, 1, 3))
    snd = (SOL_IP, IP_RECVERR, extended_err(errno.ENOMSG, ORIGIN_TIMESTAMPING, 0, 3))
    assert parse_tx_stamp([icmp]) is None
    assert parse_tx_stamp([sched, stamp]) is None  # SCM_TSTAMP_SCHED: never asked
    assert parse_tx_stamp([snd]) is None  # no stamp with it
    assert parse_tx_stamp([stamp]) is None  # no id with it
    zero = (socket.SOL_SOCKET, SCM_TIMESTAMPING, scm_timestamping((0, 0), (0, 0)))
    assert parse_tx_stamp([snd, zero]) is None
    short = (SOL_IP, IP_RECVERR, extended_err(errno.ENOMSG, ORIGIN_TIMESTAMPING, 0, 3)[:12])
    assert parse_tx_stamp([short, stamp]) is None


def clock_time(ns: int) -> bytes:
    """struct ptp_clock_time { __s64 sec; __u32 nsec; __u32 reserved; }"""
    return struct.pack("<qII", ns // SEC, ns % SEC, 0)


def extended_reply(samples: list[tuple[int, int, int]]) -> bytes:
    """struct ptp_sys_offset_extended: n_samples, rsv[3], ts[25][3] (unused rows zero)."""
    body = b"".join(clock_time(t) for s in samples for t in s)
    return struct.pack("<I3I", len(samples), 0, 0, 0) + body + bytes(16 * 3 * (25 - len(samples)))


def sys_offset_reply(stamps: list[int]) -> bytes:
    """struct ptp_sys_offset: n_samples, rsv[3], ts[51] interleaved sys, phc, ..., sys."""
    n = (len(stamps) - 1) // 2
    body = b"".join(clock_time(t) for t in stamps)
    return struct.pack("<I3I", n, 0, 0, 0) + body + bytes(16 * (51 - len(stamps)))


def test_the_ptp_ioctl_numbers_are_the_kernels() -> None:
    # _IOWR('=', 9, 1216) and _IOW('=', 5, 832), as strace prints them
    assert PTP_SYS_OFFSET_EXTENDED == 0xC4C03D09
    assert PTP_SYS_OFFSET == 0x43403D05
    assert fd_to_clockid(3) == -29  # ((~3) << 3) | 3


def test_a_sys_offset_extended_reply_and_its_narrowest_sandwich() -> None:
    base = 1_765_000_000 * SEC
    samples = [
        (base, base + 37 * SEC + 1_000, base + 900),  # 900 ns wide
        (base + 5_000, base + 37 * SEC + 5_400, base + 5_300),  # 300 ns wide: the best
        (base + 9_000, base + 37 * SEC + 9_700, base + 9_800),
    ]
    reply = extended_reply(samples)
    assert len(reply) == 1216
    assert parse_sys_offset_extended(reply) == samples
    best = narrowest(samples, "x")
    # phc - midpoint of the 300 ns sandwich, within half its width
    assert best.offset_ns == (base + 37 * SEC + 5_400) - (base + 5_150) == 37 * SEC + 250
    assert best.half_width_ns == 150 and best.at_ns == base + 5_150


def test_a_sys_offset_reply_interleaves_system_and_phc() -> None:
    base = 1_765_000_000 * SEC
    stamps = [base, base + 2 * SEC + 400, base + 1_000, base + 2 * SEC + 1_300, base + 1_600]
    reply = sys_offset_reply(stamps)
    assert len(reply) == 832
    assert parse_sys_offset(reply) == [
        (base, base + 2 * SEC + 400, base + 1_000),
        (base + 1_000, base + 2 * SEC + 1_300, base + 1_600),
    ]


def test_malformed_ptp_replies_are_refused() -> None:
    with pytest.raises(LinkError, match="reply of 100 bytes"):
        parse_sys_offset_extended(bytes(100))
    with pytest.raises(LinkError, match="n_samples 0"):
        parse_sys_offset_extended(bytes(1216))
    with pytest.raises(LinkError, match="n_samples 26"):
        parse_sys_offset(struct.pack("<I", 26) + bytes(828))
    with pytest.raises(LinkError, match="before <= after"):
        narrowest([(10, 5, 9)], "PTP_SYS_OFFSET")
