"""Campaign configuration: validation errors name file, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbsphere.errors import ConfigError, ContractVersionError
from arbsphere.rig.config import load_campaign

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_default_campaign_loads() -> None:
    c = load_campaign(ROOT / "campaigns" / "loopback.toml")
    assert [v.name for v in c.venues] == ["venue_a", "venue_b"]
    assert [v.link for v in c.venues] == ["udp", "serial"]
    assert c.n_ticks == 50_000  # (5 s warm-up + 20 s) x 2000/s per venue
    assert c.warmup_s == 5.0 and c.clock_sync.rate_hz == 32.0
    assert c.resolved()["venues"][0]["name"] == "venue_a"


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ("rate_hz = 2000", "rate_hz = -5", "campaign.rate_hz", "must be in"),
        ("rate_hz = 2000", 'rate_hz = "fast"', "campaign.rate_hz", "must be a number"),
        ("seed = 7 ", "sede = 7 ", "campaign.sede", "unknown key"),
        (
            'link = "udp"                 #',
            'link = "carrier-pigeon" #',
            "venues.venue_a.link",
            "unknown link 'carrier-pigeon': must be one of the registered links udp, serial",
        ),
        ("alpha = 1.0 ", "alpha = 2.5 ", "coordinator.admm.alpha", "must be in"),
        (
            "alpha = 1.0 ",
            "keep_rho = 1\nalpha = 1.0 ",
            "coordinator.admm.keep_rho",
            "must be true or false",
        ),
        (
            "min_delta_lots = 1",
            "min_delta_lots = 1\nmax_batch = 0",
            "coordinator.max_batch",
            "must be",
        ),
        ("half_spread_bp = 1.0", "half_spread_bp = -1.0", "market", "invalid market"),
        (
            "[broker.fills]",
            "[broker.impairment]\nto_rig = { loss = 1.5 }\n\n[broker.fills]",
            "broker.impairment.to_rig.loss",
            "1.5",
        ),
        (
            "baudrate = 921600",
            "baudrate = 921600\nimpairment = { to_device = { delay_us = -3 } }",
            "venues.venue_b.impairment.to_device.delay_us",
            "-3",
        ),
        (
            "[coordinator]",
            "[clock_sync]\nwindow_ns = -1\n[coordinator]",
            "clock_sync.window_ns",
            ">",
        ),
        (
            'port = "pty"',
            'port = "pty"\nclock = { steps = [[1.0, 1.5]] }',
            "venues.venue_b.clock.steps[0]",
            "delta_ns",
        ),
    ],
)
def test_bad_values_name_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, fragment: str
) -> None:
    assert old in LOOPBACK
    path = _write(tmp_path, LOOPBACK.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: key '{key}'"), msg
    assert fragment in msg


BROKER_UDP = 'link = "udp"\ndevice = "emulator"\ndevice_host'


def _without_fills(text: str) -> str:
    """The campaign without the broker emulator's fill policy (fill_mode and [broker.fills])."""
    lines = text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith("[broker.fills]"):
            skipping = True
            continue
        if skipping and line.startswith("["):
            skipping = False
        if skipping or line.startswith("fill_mode ="):
            continue
        out.append(line)
    return "".join(out)


def test_a_hardware_device_refuses_emulator_only_keys_and_port_0(tmp_path: Path) -> None:
    hw_udp = _without_fills(LOOPBACK.replace(BROKER_UDP, 'link = "udp"\ndevice = "hardware"\n'
                                             'device_host'))  # fmt: skip
    path = _write(tmp_path, hw_udp)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'broker.device_port'"), info.value
    assert "a hardware broker listens on a fixed port" in str(info.value)
    fixed = hw_udp.replace("device_port = 0", "device_port = 4100")
    assert load_campaign(_write(tmp_path, fixed)).broker.device_port == 4100
    venue = 'device = "emulator"\nbind_host = "127.0.0.1"\nbind_port = 0'
    assert venue in fixed
    hw_venue = fixed.replace(
        venue, 'device = "hardware"\nbind_host = "127.0.0.1"\nbind_port = 0', 1
    )
    path = _write(tmp_path, hw_venue)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'venues.venue_a.bind_port'"), info.value
    on_port = hw_venue.replace("bind_port = 0", "bind_port = 4200\noutage_s = [1, 2]", 1)
    path = _write(tmp_path, on_port)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'venues.venue_a.outage_s'"), info.value
    ok = load_campaign(_write(tmp_path, on_port.replace("\noutage_s = [1, 2]", "", 1)))
    assert (ok.venues[0].device, ok.venues[0].bind_port) == ("hardware", 4200)


def test_a_serial_broker_loads_and_its_port_follows_the_device(tmp_path: Path) -> None:
    assert BROKER_UDP in LOOPBACK
    serial = LOOPBACK.replace(BROKER_UDP, 'link = "serial"\ndevice = "emulator"\ndevice_host')
    broker = load_campaign(_write(tmp_path, serial)).broker
    assert (broker.link, broker.port, broker.baudrate) == ("serial", "pty", 921_600)
    hardware = serial.replace('device = "emulator"\ndevice_host', 'device = "hardware"\n'
                              'port = "/dev/ttyUSB3"\nbaudrate = 115200\ndevice_host')  # fmt: skip
    # the fill policy is the emulator's: a hardware broker's table may not carry it
    path = _write(tmp_path, hardware)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'broker.fill_mode'"), info.value
    assert 'only an emulated device has this; the device is "hardware"' in str(info.value)
    hardware = _without_fills(hardware)
    broker = load_campaign(_write(tmp_path, hardware)).broker
    assert (broker.device, broker.port, broker.baudrate) == ("hardware", "/dev/ttyUSB3", 115200)
    # a hardware serial device needs its port's path; an emulated one is wired through a pty
    for text in (hardware.replace('port = "/dev/ttyUSB3"\n', ""),
                 serial.replace("device_host", 'port = "/dev/ttyUSB3"\ndevice_host')):  # fmt: skip
        path = _write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_campaign(path)
        assert str(info.value).startswith(f"{path}: key 'broker.port'"), info.value
        assert "wired through a pty" in str(info.value)


def test_broker_link_names_the_registered_links_and_what_a_serial_one_cannot_do(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, LOOPBACK.replace(BROKER_UDP, 'link = "can"\ndevice = "emulator"'
                                                         "\ndevice_host"))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value) == (
        f"{path}: key 'broker.link': unknown link 'can': must be one of the registered links "
        "udp, serial (arbsphere/adapters/backends.py)"
    )
    impaired = LOOPBACK.replace(BROKER_UDP, 'link = "serial"\ndevice = "emulator"\ndevice_host')
    impaired = impaired.replace("[broker.fills]", "[broker.impairment]\nto_rig = { loss = 0.1 }"
                                "\n\n[broker.fills]")  # fmt: skip
    path = _write(tmp_path, impaired)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'broker.impairment'"), info.value
    assert "UDP relay" in str(info.value)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="campaign file not found"):
        load_campaign(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_campaign(_write(tmp_path, "[campaign\n"))


def test_incompatible_schema_versions_refused(tmp_path: Path) -> None:
    text = LOOPBACK.replace(
        "[venues.venue_b]\n",
        "[venues.venue_b.schemas]\nVenueQuote = 1\nSharedSignals = 1\nLocalSolution = 1\n"
        "DualVariables = 1\n\n[venues.venue_b]\n",
    )
    path = _write(tmp_path, text)
    with pytest.raises(ContractVersionError) as info:
        load_campaign(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: key 'adapters.venue_b.schemas.DualVariables'"), msg
    assert "adapter 'venue_b' speaks DualVariables v1 but graph 'toyPair' requires v3" in msg


def test_declared_versions_checked_against_graph(tmp_path: Path) -> None:
    partial = LOOPBACK.replace(
        "[broker.fills]", "[broker.schemas]\nPlanDelta = 2\n\n[broker.fills]"
    )
    with pytest.raises(
        ContractVersionError, match="adapter 'broker' does not declare schema ExecutionReport"
    ):
        load_campaign(_write(tmp_path, partial))
    wrong = partial.replace(
        "PlanDelta = 2\n",
        "PlanDelta = 2\nExecutionReport = 3\nPlanSnapshot = 1\nReplicaStatus = 1\n",
    )
    with pytest.raises(ContractVersionError) as info:
        load_campaign(_write(tmp_path, wrong))
    assert "adapter 'broker' speaks ExecutionReport v3" in str(info.value)


def test_readme_error_example_matches_the_code(tmp_path: Path) -> None:
    """The README quotes this refusal; keep the quote true."""
    text = LOOPBACK.replace(
        "[venues.venue_b]\n",
        "[venues.venue_b.schemas]\nVenueQuote = 1\nSharedSignals = 1\nLocalSolution = 1\n"
        "DualVariables = 1\n\n[venues.venue_b]\n",
    )
    with pytest.raises(ContractVersionError) as info:
        load_campaign(_write(tmp_path, text))
    readme = " ".join((ROOT / "README.md").read_text().split())
    tail = str(info.value).split(": key ", 1)[1]  # the part after the (temporary) file name
    assert f"key {tail}" in readme


def test_secure_aggregation_refuses_a_limit_beyond_its_fixed_point(tmp_path: Path) -> None:
    text = Path("campaigns/loopback.toml").read_text()
    bad = text.replace("position_limit_lots = 100", "position_limit_lots = 2000000", 1)
    path = tmp_path / "c.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match=r"venues\.venue_a\.position_limit_lots"):
        load_campaign(path)
    clear = bad.replace('contract_graph = "toyPair"', 'contract_graph = "toyPairClear"', 1)
    path.write_text(clear + "\n[security]\nsecure_aggregation = false\n")
    assert load_campaign(path).venues[0].position_limit_lots == 2_000_000


@pytest.mark.parametrize(
    ("journal", "fragment"),
    [
        ("interleave_ms = 50", "at least 200"),
        ("interleave_ms = 1000\nenabled = false", "needs the journal enabled"),
        ("interleave_ms = -1", "must be in"),
    ],
)
def test_recorder_interleaving_is_validated(tmp_path: Path, journal: str, fragment: str) -> None:
    central = (ROOT / "campaigns" / "loopback-central.toml").read_text()
    path = _write(tmp_path, f"{central}\n[journal]\n{journal}\n")
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert str(info.value).startswith(f"{path}: key 'journal.interleave_ms'")
    assert fragment in str(info.value)
    ok = load_campaign(_write(tmp_path, f"{central}\n[journal]\ninterleave_ms = 1000\n"))
    assert ok.journal.interleave_ms == 1000.0
    # federated rounds are journaled by another path: refused there
    path = _write(tmp_path, f"{LOOPBACK}\n[journal]\ninterleave_ms = 1000\n")
    with pytest.raises(ConfigError, match="coordination = 'central'"):
        load_campaign(path)


# --- scale: any number of venues, several assets ----------------------------------------------
SCALE = (ROOT / "campaigns" / "loopback-8x16.toml").read_text()


def _udp_venue(name: str, venue_id: int) -> str:
    return f'\n[venues.{name}]\nvenue_id = {venue_id}\nlink = "udp"\n'


def _with_venues(text: str, n: int) -> str:
    """``text`` (the 8 x 16 campaign) with venues v08.. added up to ``n`` venues."""
    return text + "".join(_udp_venue(f"v{i:02d}", i) for i in range(8, n))


def test_scale_campaign_loads_every_venue_and_asset() -> None:
    c = load_campaign(ROOT / "campaigns" / "loopback-8x16.toml")
    assert [v.name for v in c.venues] == [f"venue_{x}" for x in "abcdefgh"]
    assert [v.venue_id for v in c.venues] == list(range(8))
    assert c.n_assets == 16 and c.contract_graph == "toyPair"
    assert c.coordinator.coordination == "federated" and c.security.secure_aggregation
    assert len(c.venues) * c.rate_hz == 4000  # the default campaign's 2 x 2,000 ticks/s
    assert c.resolved()["market"]["values"]["n_assets"] == 16
    # the default campaign is unchanged: one asset
    assert load_campaign(ROOT / "campaigns" / "loopback.toml").n_assets == 1


def test_sixteen_venues_under_secure_aggregation_load(tmp_path: Path) -> None:
    assert len(load_campaign(_write(tmp_path, _with_venues(SCALE, 16))).venues) == 16


def test_seventeen_venues_under_secure_aggregation_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, _with_venues(SCALE, 17))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    assert info.value.file == str(path) and info.value.key == "venues"
    msg = str(info.value)
    assert msg.startswith(f"{path}: key 'venues'"), msg
    assert "17 venues" in msg and "at most 16" in msg and "secure_aggregation" in msg
    # without secure aggregation (the clear graph) nothing else limits it to 16
    clear = _with_venues(SCALE, 17).replace('"toyPair"', '"toyPairClear"', 1)
    clear += "\n[security]\nsecure_aggregation = false\n"
    assert len(load_campaign(_write(tmp_path, clear)).venues) == 17


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0", "must be in [1, 256]"), ("257", "must be in [1, 256]"), ("2.5", "must be an integer")],
)
def test_n_assets_out_of_range_refused_naming_the_key(
    tmp_path: Path, value: str, fragment: str
) -> None:
    path = _write(tmp_path, SCALE.replace("n_assets = 16 ", f"n_assets = {value} "))
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")) as info:
        load_campaign(path)
    assert info.value.file == str(path) and info.value.key == "market.n_assets"


def test_n_assets_too_many_for_the_rate_refused(tmp_path: Path) -> None:
    """Each asset is quoted at rate_hz / n_assets: that rate must still exceed the market's
    mispricing episode rate (the market's own rule, per asset)."""
    text = SCALE.replace("n_assets = 16 ", "n_assets = 200 ").replace(
        "rate_hz = 500 ", "rate_hz = 150 "
    )
    with pytest.raises(ConfigError, match=r"rate_hz / n_assets = 0\.75/s") as info:
        load_campaign(_write(tmp_path, text))
    assert info.value.key == "market.n_assets"


def test_a_venue_of_any_name_takes_the_graphs_venue_role(tmp_path: Path) -> None:
    text = SCALE.replace("[venues.venue_h]", "[venues.lab_nic_7]")
    c = load_campaign(_write(tmp_path, text))
    assert c.venues[-1].name == "lab_nic_7"
    # a declared version is checked against the venue role like any adapter's
    bad = text.replace(
        "[venues.lab_nic_7]",
        "[venues.lab_nic_7.schemas]\nVenueQuote = 1\nSharedSignals = 1\nSignalShare = 1\n"
        "LocalSolution = 2\nDualVariables = 2\n\n[venues.lab_nic_7]",
    )
    with pytest.raises(ContractVersionError) as info:
        load_campaign(_write(tmp_path, bad))
    assert info.value.key == "adapters.lab_nic_7.schemas.DualVariables"
