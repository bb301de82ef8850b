"""Synthetic cross-venue market: seeded, reproducible quote streams for the feed emulators.

Every venue quotes every asset around one common price path plus its own deviation::

    log P(t)     = log(base_price) + sigma * W(t)               common random walk, per asset
    dev_v(t)     = OU_v(t) + E_v(t)                              venue deviation (bp)
      OU_v       Ornstein-Uhlenbeck: stationary std deviation_sigma_bp, reversion_per_s
      E_v        mispricing episodes: Poisson arrivals (episode_rate_per_s) of jumps of about
                 episode_size_bp with a random sign, decaying at episode_decay_per_s
    mid_v(t)     = P(t) * (1 + dev_v(t) * 1e-4)
    bid/ask      = mid_v * (1 -/+ half_spread_bp * 1e-4), fixed point (PRICE_SCALE)

Random numbers come in fixed blocks whose generator is seeded by ``(seed, stream, asset,
[venue,] block index)``, so a stream depends only on ``(seed, venue, asset)``: two processes (one
per feed device) produce the same common path from the same seed, adding a venue changes no
other venue's quotes, and batches of any size concatenate to the same sequence. No wall clock
is read: ``offset_ns`` is the intended send time relative to the stream start.

Several assets (``n_assets`` > 1): a feed device quotes one asset per tick, in round-robin
(:class:`RoundRobinQuotes`: tick ``k`` quotes asset ``k mod n_assets``), so a venue's message
rate is ``rate_hz`` whatever the number of assets and each asset's process steps at
``rate_hz / n_assets``.

Defaults: two venues at 1 bp half-spread and ~0.5 bp fee each have a ~3 bp dead-band; episodes
(~1/s per venue, ~8 bp, decaying within tens of ms) push the mid difference beyond it in a few
percent of ticks, and the OU noise (0.7 bp std of the difference) almost never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from numba import njit

from arbsphere.firmware_interfaces import messages as dm

#: One synthetic quote of one venue.
QUOTE_DTYPE = np.dtype(
    [
        ("seq", "<u8"),
        ("offset_ns", "<i8"),
        ("bid_px", "<i8"),
        ("ask_px", "<i8"),
        ("bid_size", "<i8"),
        ("ask_size", "<i8"),
    ]
)

#: Ticks per random-number block (a stream's values never depend on how it is batched).
BLOCK = 4096
_STREAM_COMMON = 1
_STREAM_VENUE = 2
_BP = 1e-4


@dataclass(frozen=True)
class MarketConfig:
    """Parameters of the synthetic market (validated on construction)."""

    seed: int = 7
    n_venues: int = 2
    n_assets: int = 1
    rate_hz: float = 2000.0
    base_price: float = 100.0
    vol_bp_per_sqrt_s: float = 20.0
    deviation_sigma_bp: float = 0.5
    reversion_per_s: float = 5.0
    episode_rate_per_s: float = 1.0
    episode_size_bp: float = 8.0
    episode_decay_per_s: float = 40.0
    half_spread_bp: float = 1.0
    size_lots_min: int = 5
    size_lots_max: int = 50

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want_int = f.type in ("int", int)
            ok = isinstance(value, int) if want_int else isinstance(value, int | float)
            if not ok or isinstance(value, bool):
                kind = "an integer" if want_int else "a number"
                raise ValueError(f"MarketConfig.{f.name} must be {kind}, got {value!r}")
            if not want_int and not math.isfinite(value):
                raise ValueError(f"MarketConfig.{f.name} must be finite, got {value!r}")
        self._check("seed", self.seed >= 0, ">= 0")
        self._check("n_venues", 1 <= self.n_venues <= 0xFFFF, "in 1..65535")
        self._check("n_assets", 1 <= self.n_assets <= 0xFFFF, "in 1..65535")
        self._check("rate_hz", 0 < self.rate_hz <= 1e7, "in (0, 1e7]")
        self._check("base_price", 0 < self.base_price <= 1e9, "in (0, 1e9]")
        self._check("vol_bp_per_sqrt_s", self.vol_bp_per_sqrt_s >= 0, ">= 0")
        self._check("deviation_sigma_bp", self.deviation_sigma_bp >= 0, ">= 0")
        self._check("reversion_per_s", self.reversion_per_s > 0, "> 0")
        self._check(
            "episode_rate_per_s",
            0 <= self.episode_rate_per_s < self.rate_hz,
            f">= 0 and below rate_hz ({self.rate_hz})",
        )
        self._check("episode_size_bp", self.episode_size_bp >= 0, ">= 0")
        self._check("episode_decay_per_s", self.episode_decay_per_s > 0, "> 0")
        self._check("half_spread_bp", 0 < self.half_spread_bp < 1000, "in (0, 1000)")
        self._check("size_lots_min", self.size_lots_min >= 1, ">= 1")
        self._check(
            "size_lots_max",
            self.size_lots_max >= self.size_lots_min,
            f">= size_lots_min ({self.size_lots_min})",
        )

    def _check(self, name: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ValueError(f"MarketConfig.{name} = {getattr(self, name)!r}: must be {rule}")

    @property
    def dt_s(self) -> float:
        return 1.0 / self.rate_hz


@njit(cache=True)
def _deviation_path(
    ou: float,
    ep: float,
    a_ou: float,
    b_ou: float,
    a_ep: float,
    eps: np.ndarray,
    jumps: np.ndarray,
    out: np.ndarray,
) -> tuple[float, float]:
    """AR(1) recursions of the OU deviation and the episode component; writes their sum."""
    for i in range(eps.shape[0]):
        ou = a_ou * ou + b_ou * eps[i]
        ep = a_ep * ep + jumps[i]
        out[i] = ou + ep
    return ou, ep


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


class CommonPath:
    """The common log-price path of one asset, generated block by block."""

    def __init__(self, cfg: MarketConfig, asset_id: int) -> None:
        self.cfg = cfg
        self.asset_id = asset_id
        self._level = math.log(cfg.base_price)
        self._block = 0
        self._step = cfg.vol_bp_per_sqrt_s * _BP * math.sqrt(cfg.dt_s)

    def next_block(self) -> np.ndarray:
        """Log prices of the next :data:`BLOCK` ticks."""
        rng = _rng(self.cfg.seed, _STREAM_COMMON, self.asset_id, self._block)
        path = self._level + np.cumsum(rng.standard_normal(BLOCK) * self._step)
        self._level = float(path[-1])
        self._block += 1
        return path


class VenueQuoteStream:
    """Quotes of one venue for one asset: ``next_batch(n)`` continues the same sequence."""

    def __init__(self, cfg: MarketConfig, venue_id: int, asset_id: int = 0) -> None:
        if not 0 <= venue_id < cfg.n_venues:
            raise ValueError(f"venue_id {venue_id} outside 0..{cfg.n_venues - 1} (n_venues)")
        if not 0 <= asset_id < cfg.n_assets:
            raise ValueError(f"asset_id {asset_id} outside 0..{cfg.n_assets - 1} (n_assets)")
        self.cfg = cfg
        self.venue_id = venue_id
        self.asset_id = asset_id
        self._common = CommonPath(cfg, asset_id)
        dt = cfg.dt_s
        self._a_ou = math.exp(-cfg.reversion_per_s * dt)
        self._b_ou = cfg.deviation_sigma_bp * math.sqrt(1.0 - self._a_ou**2)
        self._a_ep = math.exp(-cfg.episode_decay_per_s * dt)
        self._p_episode = cfg.episode_rate_per_s * dt
        self._ou = float(
            _rng(cfg.seed, _STREAM_VENUE, asset_id, venue_id, 2**32).standard_normal()
            * cfg.deviation_sigma_bp
        )  # start in the stationary distribution
        self._ep = 0.0
        self._block = 0
        self._pending = np.zeros(0, QUOTE_DTYPE)
        self._next_seq = 0  # seq of the first row of the next generated block
        self.episodes = 0  # episode jumps generated so far (diagnostics)

    def next_batch(self, n: int) -> np.ndarray:
        """The next ``n`` quotes (a new array of :data:`QUOTE_DTYPE`)."""
        if n < 0:
            raise ValueError(f"batch size must be >= 0, got {n}")
        parts = [self._pending]
        have = len(self._pending)
        while have < n:
            block = self._next_block()
            parts.append(block)
            have += len(block)
        allq = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out, self._pending = allq[:n].copy(), allq[n:]
        return out

    def _next_block(self) -> np.ndarray:
        cfg = self.cfg
        log_p = self._common.next_block()
        rng = _rng(cfg.seed, _STREAM_VENUE, self.asset_id, self.venue_id, self._block)
        eps = rng.standard_normal(BLOCK)
        arrivals = rng.random(BLOCK) < self._p_episode
        sign = np.where(rng.random(BLOCK) < 0.5, -1.0, 1.0)
        size = cfg.episode_size_bp * (0.5 + 0.5 * rng.standard_exponential(BLOCK))
        jumps = np.where(arrivals, sign * size, 0.0)
        bid_size = rng.integers(cfg.size_lots_min, cfg.size_lots_max, BLOCK, endpoint=True)
        ask_size = rng.integers(cfg.size_lots_min, cfg.size_lots_max, BLOCK, endpoint=True)
        dev_bp = np.empty(BLOCK)
        self._ou, self._ep = _deviation_path(
            self._ou, self._ep, self._a_ou, self._b_ou, self._a_ep, eps, jumps, dev_bp
        )
        self.episodes += int(arrivals.sum())
        mid = np.exp(log_p) * (1.0 + dev_bp * _BP) * dm.PRICE_SCALE
        half = cfg.half_spread_bp * _BP
        q = np.empty(BLOCK, QUOTE_DTYPE)
        seq = np.arange(self._next_seq, self._next_seq + BLOCK, dtype=np.uint64)
        q["seq"] = seq
        q["offset_ns"] = np.rint(seq.astype(np.float64) * (1e9 / cfg.rate_hz))
        q["bid_px"] = np.floor(mid * (1.0 - half))
        q["ask_px"] = np.ceil(mid * (1.0 + half))
        q["bid_size"] = bid_size
        q["ask_size"] = ask_size
        self._next_seq += BLOCK
        self._block += 1
        return q


#: One synthetic quote of one venue for one of several assets (:class:`RoundRobinQuotes`).
ASSET_QUOTE_DTYPE = np.dtype([*QUOTE_DTYPE.descr, ("asset_id", "<u2")])


def per_asset_config(cfg: MarketConfig) -> MarketConfig:
    """The market one asset's stream runs on when a venue quotes ``n_assets`` assets in
    round-robin: each asset is quoted every ``n_assets``-th tick, so its price process steps
    at ``rate_hz / n_assets`` (``cfg`` itself for one asset). Raises ``ValueError`` when that
    per-asset rate breaks a rule of the market (e.g. episodes no rarer than quotes)."""
    if cfg.n_assets == 1:
        return cfg
    try:
        return replace(cfg, rate_hz=cfg.rate_hz / cfg.n_assets)
    except ValueError as exc:
        raise ValueError(
            f"with n_assets = {cfg.n_assets} each asset is quoted at rate_hz / n_assets = "
            f"{cfg.rate_hz / cfg.n_assets:g}/s: {exc}"
        ) from exc


class RoundRobinQuotes:
    """Quotes of one venue for every asset, one asset per tick: tick ``k`` quotes asset
    ``k mod n_assets``. The venue's message rate stays ``rate_hz`` whatever the number of
    assets (each asset is quoted at ``rate_hz / n_assets``); every venue quotes the same asset
    at the same tick index, so at any moment the venues' quotes of an asset are equally fresh.

    Tick ``k`` carries ``seq = k`` (one device sequence per venue, across assets) and
    ``offset_ns = k / rate_hz``; its prices are the next quote of its asset's
    :class:`VenueQuoteStream` on :func:`per_asset_config` — the same stream, whatever the
    batching. With one asset this is exactly ``VenueQuoteStream(cfg, venue_id, 0)``."""

    def __init__(self, cfg: MarketConfig, venue_id: int) -> None:
        sub = per_asset_config(cfg)
        self.cfg = cfg
        self.venue_id = venue_id
        self.streams = [VenueQuoteStream(sub, venue_id, a) for a in range(cfg.n_assets)]
        self._next_seq = 0

    def next_batch(self, n: int) -> np.ndarray:
        """The next ``n`` ticks' quotes (a new array of :data:`ASSET_QUOTE_DTYPE`)."""
        if n < 0:
            raise ValueError(f"batch size must be >= 0, got {n}")
        m = self.cfg.n_assets
        seq = np.arange(self._next_seq, self._next_seq + n, dtype=np.uint64)
        assets = (seq % np.uint64(m)).astype(np.int64)
        out = np.empty(n, ASSET_QUOTE_DTYPE)
        for a, stream in enumerate(self.streams):
            rows = np.flatnonzero(assets == a)
            if len(rows):
                sub = stream.next_batch(len(rows))
                for name in ("bid_px", "ask_px", "bid_size", "ask_size"):
                    out[name][rows] = sub[name]
        out["seq"] = seq
        out["offset_ns"] = np.rint(seq.astype(np.float64) * (1e9 / self.cfg.rate_hz))
        out["asset_id"] = assets
        self._next_seq += n
        return out


def quotes_to_ticks(
    quotes: np.ndarray, *, device_id: int, venue_id: int, asset_id: int, start_ns: int
) -> np.ndarray:
    """TICK records for ``quotes``: ``device_seq = seq``, ``intended_send_ns = start_ns +
    offset_ns`` (device clock); ``send_ns`` is left 0 for the sender to stamp."""
    ticks = dm.new_records(dm.MSG_TICK, device_id, len(quotes))
    ticks["venue_id"] = venue_id
    ticks["asset_id"] = asset_id
    ticks["device_seq"] = quotes["seq"]
    ticks["intended_send_ns"] = start_ns + quotes["offset_ns"]
    for name in ("bid_px", "ask_px", "bid_size", "ask_size"):
        ticks[name] = quotes[name]
    return ticks


def config_from_mapping(values: dict[str, Any]) -> MarketConfig:
    """A :class:`MarketConfig` from a mapping (e.g. a campaign's ``[market]`` table); unknown
    keys raise ``ValueError`` naming them."""
    known = {f.name for f in fields(MarketConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown market setting(s) {unknown}; known: {sorted(known)}")
    return MarketConfig(**values)
