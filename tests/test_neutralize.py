"""Integer neutralization: exactly neutral, within limits, close to x, deterministic; checked
against a brute-force search for the closest neutral integer point."""

from __future__ import annotations

import itertools

import numpy as np

from arbsphere.coordinator.neutralize import neutralize_lots


def _run(x: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, int]:
    out = np.full(x.shape, 12345, np.int64)
    repaired = int(neutralize_lots(x, limit, out))
    return out, repaired


def _brute_force_l2(x: np.ndarray, limit: np.ndarray) -> float:
    """Smallest Σ (out − x)² over integer neutral points within the limits (one column)."""
    ranges = [range(-int(lim), int(lim) + 1) for lim in limit]
    return min(
        float(((np.array(p) - x) ** 2).sum()) for p in itertools.product(*ranges) if sum(p) == 0
    )


def test_neutral_within_limits_and_deterministic_for_any_input() -> None:
    rng = np.random.default_rng(17)
    for _ in range(1500):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        limit = rng.integers(0, 30, (n, m))
        kind = rng.integers(0, 3)
        if kind == 0:  # converged ADMM: neutral up to float noise
            x = rng.uniform(-1, 1, (n, m)) * limit
            x -= x.mean(axis=0)
            x = np.clip(x, -limit, limit)
        elif kind == 1:  # stopped early: within limits, far from neutral
            x = rng.uniform(-1, 1, (n, m)) * limit
        else:  # garbage in: beyond the limits
            x = rng.normal(0, 100, (n, m))
        out, repaired = _run(x, limit)
        assert out.dtype == np.int64
        assert np.all(out.sum(axis=0) == 0)
        assert np.all(np.abs(out) <= limit)
        again, repaired_again = _run(x.copy(), limit.copy())
        assert np.array_equal(out, again) and repaired == repaired_again
        # Repair count: exactly the assets whose clipped rounding was not already neutral.
        rounded = np.clip(np.round(x), -limit, limit).astype(np.int64)
        assert repaired == int(np.count_nonzero(rounded.sum(axis=0)))
        np.testing.assert_array_equal(out[:, rounded.sum(axis=0) == 0],
                                      rounded[:, rounded.sum(axis=0) == 0])  # fmt: skip
        # Closeness to the input's clipped values: within one lot plus the imbalance to remove.
        xc = np.clip(x, -limit, limit)
        bound = 1.0 + np.abs(xc.sum(axis=0))[None, :] + 1e-9
        assert np.all(np.abs(out - xc) <= bound)


def test_neutral_input_moves_less_than_one_lot() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        n = int(rng.integers(2, 17))
        x = rng.uniform(-20, 20, (n, 1))
        x -= x.mean()
        limit = np.ceil(np.abs(x)).astype(np.int64) + rng.integers(0, 3, (n, 1))
        out, _ = _run(x, limit)
        assert np.abs(out - x).max() < 1.0 + 1e-9


def test_closest_neutral_integer_point_by_brute_force() -> None:
    rng = np.random.default_rng(29)
    for _ in range(300):
        n = int(rng.integers(2, 5))
        limit = rng.integers(0, 4, (n, 1))
        x = rng.uniform(-4, 4, (n, 1))
        if rng.integers(0, 2):
            x = np.clip(x - x.mean(), -limit, limit)
        out, _ = _run(x, limit)
        best = _brute_force_l2(x[:, 0], limit[:, 0])  # distance to x itself, even beyond L
        assert float(((out[:, 0] - x[:, 0]) ** 2).sum()) <= best + 1e-9


def test_no_nonzero_neutral_point_gives_all_zeros_and_is_counted() -> None:
    x = np.array([[3.2, 0.4], [0.0, -2.6], [0.0, 0.0]])
    limit = np.array([[5, 0], [0, 0], [0, 0]])  # asset 0: one venue can trade; asset 1: none
    out, repaired = _run(x, limit)
    assert out.tolist() == [[0, 0], [0, 0], [0, 0]]
    assert repaired == 1  # asset 0 rounded to 3 and had to go flat; asset 1 clipped to 0


def test_largest_remainder_and_venue_index_ties() -> None:
    limit = np.full((3, 1), 10)
    out, repaired = _run(np.array([[2.6], [-1.3], [-1.3]]), limit)  # rounds to +1 net
    assert out.ravel().tolist() == [2, -1, -1] and repaired == 1  # venue 0 rounded up most
    out, _ = _run(np.array([[1.4], [1.4], [-2.0]]), limit)  # rounds to 1 + 1 - 2 = 0
    assert out.ravel().tolist() == [1, 1, -2]
    out, _ = _run(np.array([[1.3], [1.3], [-1.6]]), limit)  # 1 + 1 - 2 = 0 after rounding
    assert out.ravel().tolist() == [1, 1, -2]
    out, _ = _run(np.array([[0.6], [0.6], [-1.2]]), limit)  # 1 + 1 - 1 = +1; tie: venue 0
    assert out.ravel().tolist() == [0, 1, -1]
    out, _ = _run(np.array([[-0.6], [-0.6], [1.2]]), limit)  # mirror image
    assert out.ravel().tolist() == [0, -1, 1]


def test_limit_free_neutralization_is_neutral_and_never_exceeds_the_rounded_magnitude() -> None:
    """Federated mode: the coordinator does not know the limits; every venue's lots stay
    between 0 and round(x_i), so within whatever limit clipped x_i."""
    from arbsphere.coordinator.neutralize import neutralize_within_magnitudes

    rng = np.random.default_rng(5)
    for _ in range(1500):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        limit = rng.integers(0, 30, (n, m))
        x = rng.uniform(-1, 1, (n, m)) * limit
        if rng.integers(0, 2):  # converged: neutral up to float noise
            x -= x.mean(axis=0)
            x = np.clip(x, -limit, limit)
        out = np.full(x.shape, 12345, np.int64)
        neutralize_within_magnitudes(x, out)
        assert (out.sum(axis=0) == 0).all()
        rounded = np.round(x).astype(np.int64)
        assert (np.abs(out) <= np.abs(rounded)).all()
        assert (out * rounded >= 0).all()  # never flips a venue's side
        again = np.zeros_like(out)
        neutralize_within_magnitudes(x, again)
        np.testing.assert_array_equal(out, again)


def test_limit_free_neutralization_of_a_neutral_integer_point_is_the_identity() -> None:
    from arbsphere.coordinator.neutralize import neutralize_within_magnitudes

    x = np.array([[3.0, -2.0], [-1.0, 2.0], [-2.0, 0.0]])
    out = np.zeros((3, 2), np.int64)
    assert neutralize_within_magnitudes(x, out) == 0
    np.testing.assert_array_equal(out, x.astype(np.int64))
    # far from neutral: the heavy side shrinks, the light side is kept
    x = np.array([[10.0], [-2.0]])
    out = np.zeros((2, 1), np.int64)
    assert neutralize_within_magnitudes(x, out) == 1
    np.testing.assert_array_equal(out[:, 0], [2, -2])


def test_fixed_venues_keep_their_lots_and_the_others_offset_them() -> None:
    from arbsphere.coordinator.neutralize import neutralize_around_fixed

    rng = np.random.default_rng(9)
    solved = failed = 0
    for _ in range(1000):
        n, m = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        fixed = np.zeros(n, np.bool_)
        fixed[rng.integers(0, n)] = True
        lots = rng.integers(-5, 6, (n, m))
        x = rng.uniform(-30, 30, (n, m))
        out = np.zeros((n, m), np.int64)
        if neutralize_around_fixed(x, fixed, lots, out) < 0:
            # refused only when the live venues' x cannot cover the fixed lots' offset
            goal = -lots[fixed].sum(axis=0)
            live_x = x[~fixed]
            pos = np.where(live_x > 0, live_x, 0).sum(axis=0)
            neg = np.where(live_x < 0, -live_x, 0).sum(axis=0)
            assert ((goal > pos - 1) | (-goal > neg - 1)).any()
            failed += 1
            continue
        solved += 1
        assert (out.sum(axis=0) == 0).all()
        np.testing.assert_array_equal(out[fixed], lots[fixed])
        live = ~fixed
        rounded = np.round(x[live]).astype(np.int64)
        assert (np.abs(out[live]) <= np.abs(rounded)).all() and (out[live] * rounded >= 0).all()
    assert solved > 700 and failed > 0
    x = np.array([[0.0], [0.0], [0.0]])  # nobody live can offset venue 0's 3 lots
    assert (
        neutralize_around_fixed(
            x, np.array([True, False, False]), np.array([[3], [0], [0]]), np.zeros((3, 1), np.int64)
        )
        == -1
    )
