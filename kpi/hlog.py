"""HdrHistogram interval log (``latency.hlog``): writer with one ``Tag=`` per stage, and reader.

The file follows the format of the reference implementations (Java ``HistogramLogWriter`` /
``HistogramLogReader``, JS ``hdr-histogram-js``, Python ``hdrh.log.HistogramLogReader``),
log format version 1.3::

    #<optional comment>
    #[Histogram log format version 1.3]
    #[StartTime: 1700000000.000 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]
    #[BaseTime: 1700000000.000 (seconds since epoch)]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    Tag=tick_to_trade,0.000,1.000,0.123,HISTFAAAA...

Units. Values are recorded in **nanoseconds**. Interval timestamps are seconds relative to
``BaseTime`` (= ``StartTime``), printed ``%.3f`` as the Java writer does. ``Interval_Max`` is
the histogram's max value (highest equivalent value) divided by ``max_value_unit_ratio``,
default 1e6 as in Java's ``HistogramLogWriter`` -- i.e. **milliseconds** for our ns values.
It is informational only: readers take every value from the compressed histogram (encoded by
``hdrh``'s own ``encode()``, V2 compressed format, 64-bit counts).

We write the lines ourselves because ``hdrh.log.HistogramLogWriter`` writes no ``Tag=`` field
and its ``output_start_time`` raises. Tags must not contain ``,`` or whitespace (the reference
readers split on them).
"""

from __future__ import annotations

import binascii
import math
import re
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TextIO

from hdrh.codec import HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

from arbsphere.errors import DecodeError

from .hdr import HdrRecorder

__all__ = [
    "LEGEND",
    "LOG_FORMAT_VERSION",
    "IntervalLogWriter",
    "LogInterval",
    "merge_by_tag",
    "read_interval_log",
]

LOG_FORMAT_VERSION = "1.3"
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
_BAD_TAG = re.compile(r"[,\s]")
_START_TIME = re.compile(r"#\[StartTime: *([-+0-9.eE]+)[ \]]")
_BASE_TIME = re.compile(r"#\[BaseTime: *([-+0-9.eE]+)[ \]]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_ONE_YEAR_S = 365 * 24 * 3600.0


class LogInterval(NamedTuple):
    """One interval line: tag ('' if untagged), start (s after StartTime), length (s), counts."""

    tag: str
    start_s: float
    length_s: float
    histogram: HdrHistogram


def _check_seconds(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return v


class IntervalLogWriter:
    """Writes the header at construction, then one ``Tag=`` line per :meth:`write_interval`."""

    def __init__(
        self,
        path: Path,
        start_time_s: float,
        comment: str | None = None,
        max_value_unit_ratio: float = 1e6,
    ) -> None:
        start = _check_seconds("start_time_s", start_time_s)
        if comment is not None and ("\n" in comment or "\r" in comment):
            raise ValueError(f"comment must be a single line, got {comment!r}")
        if not max_value_unit_ratio > 0.0:
            raise ValueError(f"max_value_unit_ratio must be > 0, got {max_value_unit_ratio!r}")
        self.path = Path(path)
        self.max_value_unit_ratio = float(max_value_unit_ratio)
        human = datetime.fromtimestamp(start, tz=UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
        self._file: TextIO | None = open(  # noqa: SIM115 - closed by close()/__exit__
            self.path, "w", encoding="ascii", newline="\n", buffering=1
        )
        if comment is not None:
            self._file.write(f"#{comment}\n")
        self._file.write(f"#[Histogram log format version {LOG_FORMAT_VERSION}]\n")
        self._file.write(f"#[StartTime: {start:.3f} (seconds since epoch), {human}]\n")
        self._file.write(f"#[BaseTime: {start:.3f} (seconds since epoch)]\n")
        self._file.write(LEGEND + "\n")

    def write_interval(
        self,
        tag: str,
        start_offset_s: float,
        length_s: float,
        recorder_or_hist: HdrRecorder | HdrHistogram,
    ) -> None:
        """Append one interval of ``tag`` starting ``start_offset_s`` after the start time."""
        if self._file is None:
            raise ValueError(f"interval log {self.path} is closed")
        if not isinstance(tag, str) or not tag or _BAD_TAG.search(tag):
            raise ValueError(f"tag must be non-empty without ',' or whitespace, got {tag!r}")
        start = _check_seconds("start_offset_s", start_offset_s)
        length = _check_seconds("length_s", length_s)
        if isinstance(recorder_or_hist, HdrRecorder):
            hist = recorder_or_hist.to_hdrh()
        elif isinstance(recorder_or_hist, HdrHistogram):
            hist = recorder_or_hist
        else:
            raise TypeError(
                "expected an HdrRecorder or hdrh HdrHistogram, got "
                f"{type(recorder_or_hist).__name__}"
            )
        interval_max = hist.get_max_value() / self.max_value_unit_ratio
        blob = hist.encode().decode("ascii")
        self._file.write(f"Tag={tag},{start:.3f},{length:.3f},{interval_max:.3f},{blob}\n")

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> IntervalLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _decode_histogram(blob: str, offset: int, line_no: int) -> HdrHistogram:
    if not _BASE64.fullmatch(blob):
        raise DecodeError("bad_histogram", offset, f"line {line_no}: blob is not base64")
    try:
        return HdrHistogram.decode(blob.encode("ascii"))
    except (
        ValueError,
        TypeError,
        AssertionError,
        zlib.error,
        binascii.Error,
        HdrCookieException,
        HdrLengthException,
    ) as exc:
        detail = f"line {line_no}: cannot decode histogram: {type(exc).__name__}: {exc}"
        raise DecodeError("bad_histogram", offset, detail) from exc


def _parse_float(text: str, what: str, offset: int, line_no: int) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        detail = f"line {line_no}: {what} {text!r} is not a number"
        raise DecodeError("bad_number", offset, detail) from exc
    if not math.isfinite(value):
        raise DecodeError("bad_number", offset, f"line {line_no}: {what} {text!r} is not finite")
    return value


def read_interval_log(path: Path) -> list[LogInterval]:
    """Every interval of an interval log, in file order; DecodeError names line and offset.

    ``start_s`` is relative to the log's ``StartTime`` (absolute time = BaseTime + timestamp;
    missing StartTime/BaseTime are deduced as the reference readers do).
    """
    raw = Path(path).read_bytes()
    start_time: float | None = None
    base_time: float | None = None
    intervals: list[LogInterval] = []
    offset = 0
    for line_no, raw_line in enumerate(raw.splitlines(keepends=True), start=1):
        line_offset = offset
        offset += len(raw_line)
        try:
            line = raw_line.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            detail = f"line {line_no}: non-ASCII byte"
            raise DecodeError("bad_text", line_offset + exc.start, detail) from exc
        if not line.strip() or line == LEGEND:
            continue
        if line.startswith("#"):
            for prefix, pattern in (("#[StartTime:", _START_TIME), ("#[BaseTime:", _BASE_TIME)):
                if line.startswith(prefix):
                    match = pattern.match(line)
                    if match is None:
                        detail = f"line {line_no}: malformed {prefix[2:-1]} line {line!r}"
                        raise DecodeError("bad_header", line_offset, detail)
                    value = _parse_float(match.group(1), prefix[2:-1], line_offset, line_no)
                    if prefix == "#[StartTime:":
                        start_time = value
                    else:
                        base_time = value
            continue
        tag = ""
        body = line
        if line.startswith("Tag="):
            comma = line.find(",")
            tag = line[4:comma] if comma >= 0 else line[4:]
            if comma < 0 or not tag or _BAD_TAG.search(tag):
                raise DecodeError("bad_tag", line_offset, f"line {line_no}: bad tag in {line!r}")
            body = line[comma + 1 :]
        fields = body.split(",")
        if len(fields) != 4:
            detail = f"line {line_no}: expected 4 fields after the tag, got {len(fields)}"
            raise DecodeError("bad_interval", line_offset, detail)
        stamp = _parse_float(fields[0], "StartTimestamp", line_offset, line_no)
        length = _parse_float(fields[1], "Interval_Length", line_offset, line_no)
        _parse_float(fields[2], "Interval_Max", line_offset, line_no)
        hist = _decode_histogram(fields[3], line_offset + len(line) - len(fields[3]), line_no)
        if start_time is None:
            start_time = stamp
        if base_time is None:
            base_time = start_time if stamp < start_time - _ONE_YEAR_S else 0.0
        if tag:
            hist.set_tag(tag)
        intervals.append(LogInterval(tag, base_time + stamp - start_time, length, hist))
    return intervals


def merge_by_tag(intervals: Iterable[LogInterval]) -> dict[str, HdrHistogram]:
    """Sum of all intervals per tag (a new histogram per tag; inputs are left unchanged)."""
    merged: dict[str, HdrHistogram] = {}
    for interval in intervals:
        src = interval.histogram
        if interval.tag not in merged:
            merged[interval.tag] = HdrHistogram(
                src.lowest_trackable_value, src.highest_trackable_value, src.significant_figures
            )
        merged[interval.tag].add(src)
    return merged
