"""The SDK's public API: every exported name documented (as pdoc sees it), the API reference
builds offline, and the emulators are built on the very objects the SDK exports."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pdoc.doc
import pytest

import arbsphere.sdk as sdk

ROOT = Path(__file__).resolve().parents[1]


def undocumented(module: types.ModuleType) -> list[str]:
    """Names in ``module.__all__`` without a docstring in pdoc's model, and the public methods
    without one of the classes it exports (their own, not inherited from elsewhere: an
    exception's, an enum's)."""
    mod = pdoc.doc.Module(module)
    missing: list[str] = []
    for name in module.__all__:
        member = mod.get(name)
        if member is None or not member.docstring.strip():
            missing.append(name)
            continue
        ours = getattr(member.obj, "__module__", "").startswith(("arbsphere", module.__name__))
        if isinstance(member, pdoc.doc.Class) and ours:
            missing += [f"{name}.{m.name}" for m in member.own_members
                        if isinstance(m, pdoc.doc.Function) and not m.name.startswith("_")
                        and not m.docstring.strip()]  # fmt: skip
    return missing


def test_every_public_name_of_the_sdk_has_a_docstring() -> None:
    assert sdk.__all__ and sorted(set(sdk.__all__)) == sorted(sdk.__all__)
    assert undocumented(sdk) == []


def test_the_docstring_check_finds_an_undocumented_name() -> None:
    fake = types.ModuleType("fake_sdk", "A fake SDK.")
    exec(
        "def documented():\n    'Does a thing.'\n"
        "def bare():\n    pass\n"
        "class Thing:\n    'A thing.'\n    def run(self):\n        pass\n",
        fake.__dict__,
    )
    fake.__all__ = ["documented", "bare", "Thing"]  # type: ignore[attr-defined]
    sys.modules["fake_sdk"] = fake
    try:
        assert undocumented(fake) == ["bare", "Thing.run"]
    finally:
        del sys.modules["fake_sdk"]


def test_the_api_reference_builds_offline_with_every_public_name(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    page = (tmp_path / "arbsphere" / "sdk.html").read_text(encoding="utf-8")
    sections = set(re.findall(r'id="([A-Za-z_][\w.]*)"', page))
    assert set(sdk.__all__) <= sections
    assert "DeviceLoop.poll" in sections and "SyncResponder.on_message" in sections
    # nothing the page loads comes from the network
    assert not re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="https?://', page)


def test_the_emulators_are_built_on_the_sdk_objects() -> None:
    from arbsphere.firmware_interfaces.emulators import (
        broker_serial,
        broker_udp,
        feed_serial,
        feed_session,
        feed_udp,
        sync_responder,
    )

    assert feed_udp.SyncResponder is sdk.SyncResponder
    assert feed_serial.SyncResponder is sdk.SyncResponder
    assert broker_udp.SyncResponder is sdk.SyncResponder
    assert broker_serial.SyncResponder is sdk.SyncResponder
    assert feed_session.StartHandshake is sdk.StartHandshake
    assert sync_responder.StartHandshake is sdk.StartHandshake
    for device in (feed_udp, feed_serial, broker_udp, broker_serial):
        assert device.run_device is sdk.run_device
        assert device.ConfigReader is sdk.ConfigReader
    assert feed_udp.GapDetector is broker_udp.GapDetector is sdk.GapDetector
    assert feed_udp.pack_datagram is broker_udp.pack_datagram is sdk.pack_datagram
    assert feed_serial.encode_frame is sdk.encode_frame
    assert feed_serial.FrameDecoder is broker_serial.FrameDecoder is sdk.FrameDecoder


def test_an_adapter_author_round_trips_a_contract_message_through_the_sdk() -> None:
    registry = sdk.default_registry()
    schema = registry.schema("PlanDelta")
    assert schema.item is not None
    header = np.zeros(1, schema.header.dtype)
    legs = np.zeros(2, schema.item.dtype)
    header["delta_id"], header["n_legs"] = 7, 2
    legs["size_lots"] = [3, -3]
    raw = registry.encode(schema, header, legs, sender_id=5, nonce=11, origin_ts_ns=123)
    msg = registry.decode(raw)
    assert isinstance(msg, sdk.Message) and msg.schema.name == "PlanDelta"
    assert (msg.sender_id, msg.nonce, msg.origin_ts_ns) == (5, 11, 123)
    assert int(msg.header["delta_id"][0]) == 7 and msg.items["size_lots"].tolist() == [3, -3]
    with pytest.raises(sdk.DecodeError):
        registry.decode(raw[:-1])


def test_the_readme_shows_the_example_code_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Writing a device") :]
    (snippet,) = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ")], re.S)
    assert snippet in (ROOT / "examples" / "python_broker_device.py").read_text()
