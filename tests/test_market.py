"""Synthetic market: reproducible, batch-invariant, common path shared across venues,
episodes beyond the arbitrage dead-band in a few percent of ticks, valid quotes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.market import (
    BLOCK,
    QUOTE_DTYPE,
    MarketConfig,
    RoundRobinQuotes,
    VenueQuoteStream,
    config_from_mapping,
    per_asset_config,
    quotes_to_ticks,
)

SECONDS = 20
DEAD_BAND_BP = 3.0  # 2 x 1 bp half-spread + 2 x 0.5 bp fee


def _mid(q: np.ndarray) -> np.ndarray:
    return (q["bid_px"].astype(np.float64) + q["ask_px"]) / 2


def _diff_bp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ma, mb = _mid(a), _mid(b)
    return (ma - mb) / ((ma + mb) / 2) * 1e4


def _pair(cfg: MarketConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    return VenueQuoteStream(cfg, 0).next_batch(n), VenueQuoteStream(cfg, 1).next_batch(n)


def test_reproducible_across_instances_and_seed_sensitive() -> None:
    cfg = MarketConfig()
    a1 = VenueQuoteStream(cfg, 1).next_batch(5000)
    a2 = VenueQuoteStream(MarketConfig(), 1).next_batch(5000)
    assert a1.tobytes() == a2.tobytes()
    other = VenueQuoteStream(MarketConfig(seed=8), 1).next_batch(5000)
    assert not np.array_equal(a1["bid_px"], other["bid_px"])
    # the number of venues does not change any venue's quotes
    a3 = VenueQuoteStream(MarketConfig(n_venues=5), 1).next_batch(5000)
    assert a1.tobytes() == a3.tobytes()


@pytest.mark.parametrize(("a", "b"), [(1, 1), (3000, 5000), (BLOCK, BLOCK + 7), (0, 9000)])
def test_batch_split_invariance(a: int, b: int) -> None:
    cfg = MarketConfig(seed=3)
    whole = VenueQuoteStream(cfg, 0).next_batch(a + b)
    split = VenueQuoteStream(cfg, 0)
    parts = np.concatenate([split.next_batch(a), split.next_batch(b)])
    assert parts.tobytes() == whole.tobytes()
    assert whole["seq"].tolist() == list(range(a + b))


def test_offsets_follow_the_rate() -> None:
    q = VenueQuoteStream(MarketConfig(rate_hz=3000.0), 0).next_batch(10)
    assert q["offset_ns"].tolist() == [round(i * 1e9 / 3000.0) for i in range(10)]


def test_common_path_shared_exactly_without_deviations() -> None:
    cfg = MarketConfig(seed=11, deviation_sigma_bp=0.0, episode_rate_per_s=0.0)
    a, b = _pair(cfg, 6000)
    assert np.array_equal(_mid(a), _mid(b))
    assert not np.array_equal(a["bid_size"], b["bid_size"])  # venues still differ in size


def test_difference_mean_reverts_while_mids_diffuse() -> None:
    lag1, lag10 = 2000, 20000  # 1 s and 10 s at 2 kHz

    def msd(x: np.ndarray, lag: int) -> float:
        return float(np.mean((x[lag:] - x[:-lag]) ** 2))

    mid_ratios = []
    for seed in range(4):
        a, b = _pair(MarketConfig(seed=seed), SECONDS * 2000)
        d = _diff_bp(a, b)
        assert d.std() < 4.0
        assert msd(d, lag10) / msd(d, lag1) < 2.0  # stationary: no growth with lag
        h = len(d) // 2
        assert d[h:].var() < 4 * d[:h].var() and d[:h].var() < 4 * d[h:].var()
        mid_ratios.append(msd(np.log(_mid(a)), lag10) / msd(np.log(_mid(a)), lag1))
    assert float(np.mean(mid_ratios)) > 4.0  # a random walk: ~10


def test_volatility_calibrated() -> None:
    # episodes off: tick log-returns are the common walk plus tiny OU increments
    cfg = MarketConfig(seed=5, episode_rate_per_s=0.0)
    q = VenueQuoteStream(cfg, 0).next_batch(SECONDS * 2000)
    step_bp = np.diff(np.log(_mid(q))) * 1e4
    expected = cfg.vol_bp_per_sqrt_s * math.sqrt(1 / cfg.rate_hz)
    assert step_bp.std() == pytest.approx(expected, rel=0.02)
    assert abs(step_bp.mean()) < 4 * expected / math.sqrt(len(step_bp))


def test_episodes_beyond_dead_band_a_few_percent() -> None:
    cfg = MarketConfig(seed=2)
    sa, sb = VenueQuoteStream(cfg, 0), VenueQuoteStream(cfg, 1)
    n = SECONDS * 2000
    d = _diff_bp(sa.next_batch(n), sb.next_batch(n))
    beyond = np.abs(d) > DEAD_BAND_BP
    assert 0.01 < beyond.mean() < 0.12
    entries = int(np.sum(beyond[1:] & ~beyond[:-1]))
    assert 1.0 * SECONDS <= entries <= 4.0 * SECONDS  # several opportunities per second
    # episodes arrive at the configured rate (Poisson) over the ticks generated (whole blocks)
    generated_s = BLOCK * math.ceil(n / BLOCK) / cfg.rate_hz
    expected = 2 * cfg.episode_rate_per_s * generated_s
    assert abs(sa.episodes + sb.episodes - expected) < 4 * math.sqrt(expected)
    # without episodes the OU noise alone (0.7 bp std) almost never crosses
    quiet = MarketConfig(seed=2, episode_rate_per_s=0.0)
    dq = _diff_bp(*_pair(quiet, n))
    assert np.mean(np.abs(dq) > DEAD_BAND_BP) < 0.001


def test_quotes_valid() -> None:
    cfg = MarketConfig(seed=4, size_lots_min=2, size_lots_max=9, half_spread_bp=0.01)
    q = VenueQuoteStream(cfg, 1).next_batch(10000)
    assert np.all(q["bid_px"] < q["ask_px"])
    for side in ("bid_size", "ask_size"):
        assert q[side].min() >= 2 and q[side].max() <= 9
        assert set(np.unique(q[side]).tolist()) == set(range(2, 10))
    spread_bp = (q["ask_px"] - q["bid_px"]) / _mid(q) * 1e4
    assert np.allclose(spread_bp, 0.02, atol=3e-6)  # floor/ceil: <= 2 units
    assert abs(_mid(q)[0] / dm.PRICE_SCALE - cfg.base_price) < 0.5


def test_quotes_to_ticks() -> None:
    q = VenueQuoteStream(MarketConfig(), 0).next_batch(3)
    ticks = quotes_to_ticks(q, device_id=9, venue_id=0, asset_id=0, start_ns=1_000)
    assert ticks.dtype == dm.TICK_DTYPE
    assert ticks["intended_send_ns"].tolist() == [1_000, 501_000, 1_001_000]
    mtype, rec = dm.decode(dm.encode(ticks[1:2]))
    assert mtype == dm.MSG_TICK and int(rec["ask_px"][0]) == int(q["ask_px"][1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_hz": 0.0}, r"MarketConfig\.rate_hz = 0\.0: must be in \(0, 1e7\]"),
        ({"n_venues": 0}, r"MarketConfig\.n_venues = 0"),
        ({"half_spread_bp": -1.0}, r"MarketConfig\.half_spread_bp = -1\.0"),
        ({"size_lots_min": 10, "size_lots_max": 5}, r"size_lots_max = 5: must be >= size_lots"),
        ({"episode_rate_per_s": 5000.0}, r"episode_rate_per_s = 5000\.0: must be >= 0 and below"),
        ({"seed": -1}, r"MarketConfig\.seed = -1"),
        ({"vol_bp_per_sqrt_s": "20"}, r"MarketConfig\.vol_bp_per_sqrt_s must be a number"),
        ({"n_assets": 1.5}, r"MarketConfig\.n_assets must be an integer"),
        ({"base_price": float("nan")}, r"MarketConfig\.base_price must be finite"),
    ],
)
def test_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MarketConfig(**kwargs)  # type: ignore[arg-type]


def test_stream_argument_validation() -> None:
    with pytest.raises(ValueError, match=r"venue_id 2 outside 0..1"):
        VenueQuoteStream(MarketConfig(), 2)
    with pytest.raises(ValueError, match=r"asset_id 1 outside 0..0"):
        VenueQuoteStream(MarketConfig(), 0, asset_id=1)
    with pytest.raises(ValueError, match="unknown market setting"):
        config_from_mapping({"volatility": 3})
    assert config_from_mapping({"seed": 3}).seed == 3


# --- several assets: one asset per tick, round-robin ------------------------------------------


def test_round_robin_with_one_asset_is_the_single_asset_stream() -> None:
    cfg = MarketConfig(seed=5)
    rr = RoundRobinQuotes(cfg, 1).next_batch(9000)
    single = VenueQuoteStream(cfg, 1).next_batch(9000)
    for name in QUOTE_DTYPE.names or ():
        assert np.array_equal(rr[name], single[name]), name
    assert (rr["asset_id"] == 0).all()


def test_round_robin_quotes_every_asset_at_the_venue_rate() -> None:
    cfg = MarketConfig(seed=5, n_venues=8, n_assets=16, rate_hz=500.0)
    q = RoundRobinQuotes(cfg, 3).next_batch(5000)
    k = np.arange(5000)
    assert q["seq"].tolist() == k.tolist()  # one device sequence across the assets
    assert q["asset_id"].tolist() == (k % 16).tolist()
    assert np.array_equal(q["offset_ns"], k * 2_000_000)  # 500 ticks/s per venue, any M
    # each asset's quotes are its own stream, stepping at rate_hz / n_assets
    sub = per_asset_config(cfg)
    assert sub.rate_hz == 500.0 / 16 and sub.n_assets == 16
    for a in (0, 7, 15):
        want = VenueQuoteStream(sub, 3, a).next_batch(len(q[q["asset_id"] == a]))
        assert np.array_equal(q["bid_px"][q["asset_id"] == a], want["bid_px"]), a
        assert np.array_equal(q["ask_size"][q["asset_id"] == a], want["ask_size"]), a
    # every venue quotes the same asset at the same tick, around the asset's common path
    other = RoundRobinQuotes(cfg, 6).next_batch(5000)
    assert np.array_equal(other["asset_id"], q["asset_id"])
    assert np.abs(_diff_bp(q, other)).max() < 50
    assert not np.array_equal(other["bid_px"], q["bid_px"])


@pytest.mark.parametrize(("a", "b"), [(1, 1), (17, 4000), (BLOCK * 16 + 3, 5)])
def test_round_robin_batch_split_invariance(a: int, b: int) -> None:
    cfg = MarketConfig(seed=3, n_assets=16, rate_hz=2000.0)
    whole = RoundRobinQuotes(cfg, 0).next_batch(a + b)
    split = RoundRobinQuotes(cfg, 0)
    assert np.concatenate([split.next_batch(a), split.next_batch(b)]).tobytes() == whole.tobytes()


def test_per_asset_rate_must_stay_above_the_episode_rate() -> None:
    with pytest.raises(ValueError, match=r"rate_hz / n_assets = 0\.5/s.*episode_rate_per_s"):
        RoundRobinQuotes(MarketConfig(n_assets=200, rate_hz=100.0), 0)
