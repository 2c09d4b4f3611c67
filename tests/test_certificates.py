"""Tests of smoothcert.certificates against exhaustive enumeration and big-integer references."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest
from statsmodels.stats.proportion import proportion_confint

from smoothcert.certificates import (
    certify_counts,
    check_ablation_size,
    check_alpha,
    class_bounds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    delta,
    log_binom_ratio,
    max_certifiable_radius,
    radius_cor1,
    radius_cor2,
    radius_jia,
    radius_jia_topk,
)

# ----------------------------------------------------------------------------- references


def ref_delta(rho: int, d: int, k: int) -> Fraction:
    """Theorem 1 with big integers."""
    return 1 - Fraction(math.comb(d - rho, k), math.comb(d, k))


def ref_radius(holds, d: int, k: int) -> float:
    """Largest rho >= 0 with holds(Delta(rho)) by a linear scan in exact arithmetic, NaN if none."""
    rho = -1
    while rho + 1 <= d and holds(ref_delta(rho + 1, d, k)):
        rho += 1
    return float(rho) if rho >= 0 else math.nan


def ref_cor1(p: float, d: int, k: int) -> float:
    return ref_radius(lambda dlt: Fraction(p) - dlt > Fraction(1, 2), d, k)


def ref_cor2(pa: float, pb: float, d: int, k: int) -> float:
    return ref_radius(lambda dlt: Fraction(pa) - dlt > Fraction(pb) + dlt, d, k)


def ref_jia_topk(pl: float, others: list[float], d: int, k: int, top: int) -> float:
    big_n = math.comb(d, k)
    label = Fraction(math.ceil(Fraction(pl) * big_n), big_n)
    rounded = sorted((Fraction(math.floor(Fraction(q) * big_n), big_n) for q in others), reverse=True)[:top]

    def holds(dlt: Fraction) -> bool:
        return any(
            label - dlt > (min(sum(rounded[top - t :]), 1 - label) + dlt) / t for t in range(1, top + 1)
        )

    return ref_radius(holds, d, k)


def same(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True))


SIZES = [(6, 2), (10, 3), (20, 1), (64, 5), (784, 45), (1024, 75)]


# ----------------------------------------------------------------------------- (a) Theorem 1


def ablation_probabilities(table: np.ndarray, images: np.ndarray, k: int, levels: int) -> np.ndarray:
    """Exact vote counts (images, classes) of a lookup-table base classifier over every k-subset.

    An ablated input is coded in base ``levels + 1`` with digit ``levels`` for NULL.
    """
    d = images.shape[1]
    weights = (levels + 1) ** np.arange(d)
    votes = np.zeros((len(images), table.max() + 1), dtype=np.int64)
    for kept in itertools.combinations(range(d), k):
        mask = np.zeros(d, dtype=bool)
        mask[list(kept)] = True
        codes = (np.where(mask, images, levels) * weights).sum(1)
        np.add.at(votes, (np.arange(len(images)), table[codes]), 1)
    return votes


@pytest.mark.parametrize("seed", range(3))
def test_theorem1_holds_for_every_pair_of_images(seed: int) -> None:
    d, k, levels, classes = 6, 3, 3, 3
    rng = np.random.default_rng(seed)
    table = rng.integers(0, classes, (levels + 1) ** d)
    images = np.array(list(itertools.product(range(levels), repeat=d)))
    votes = ablation_probabilities(table, images, k, levels)
    big_n = math.comb(d, k)
    assert (votes.sum(1) == big_n).all()

    dist = (images[:, None, :] != images[None, :, :]).sum(-1)
    change = np.abs(votes[:, None, :] - votes[None, :, :]).max(-1)  # in units of 1/N
    for rho in range(d + 1):
        worst = change[dist <= rho].max()
        assert worst <= big_n - math.comb(d - rho, k)  # exact Theorem 1
        assert worst / big_n <= delta(rho, d, k) + 1e-12


@pytest.mark.parametrize(("d", "k"), [(6, 3), (7, 2), (5, 1)])
def test_theorem1_is_attained(d: int, k: int) -> None:
    # f = 1 if a retained pixel is 1, else 0: p_1(x') - p_1(x) = P(T meets the changed pixels).
    levels = 2
    digits = np.array(list(itertools.product(range(levels + 1), repeat=d)))  # digit 2 = NULL
    table = np.zeros((levels + 1) ** d, dtype=int)
    table[(digits * (levels + 1) ** np.arange(d)).sum(1)] = (digits == 1).any(1)
    for rho in range(d + 1):
        x, x_adv = np.zeros(d, dtype=int), (np.arange(d) < rho).astype(int)
        votes = ablation_probabilities(table, np.stack([x, x_adv]), k, levels)
        big_n = math.comb(d, k)
        assert votes[1, 1] - votes[0, 1] == big_n - math.comb(d - rho, k)
        assert math.isclose((votes[1, 1] - votes[0, 1]) / big_n, delta(rho, d, k), rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize(("d", "k", "probs"), [(8, 2, [0.75, 0.1, 0.1, 0.05]), (10, 1, [0.45, 0.4, 0.1, 0.05])])
def test_certificates_hold_for_every_perturbation(d: int, k: int, probs: list[float]) -> None:
    # End to end on a tiny domain: with exact p's as bounds, every x' within the certified radius
    # keeps the certified class (strictly) on top, or the label among the top `top` classes.
    levels, classes = 2, len(probs)
    rng = np.random.default_rng(d)
    table = rng.choice(classes, (levels + 1) ** d, p=probs)
    images = np.array(list(itertools.product(range(levels), repeat=d)))
    votes = ablation_probabilities(table, images, k, levels)
    big_n = math.comb(d, k)
    p_down = np.nextafter(votes / big_n, 0.0)  # valid lower bounds
    p_up = np.nextafter(votes / big_n, 1.0)  # valid upper bounds
    dist = (images[:, None, :] != images[None, :, :]).sum(-1)
    largest = 0.0

    top_class = votes.argmax(1)
    rows = np.arange(len(images))
    pb = np.where(np.arange(classes) == top_class[:, None], -np.inf, p_up).max(1)
    for radius_fn in (radius_cor2, radius_jia, lambda pa, _, d, k: radius_cor1(pa, d, k)):
        radius = radius_fn(p_down[rows, top_class], pb, d, k)
        for i in np.flatnonzero(~np.isnan(radius)):
            near = votes[dist[i] <= radius[i]]
            rivals = np.delete(near, top_class[i], axis=1)
            assert (near[:, top_class[i]] > rivals.max(1)).all()
        largest = max(largest, np.nanmax(radius, initial=-1))

    for label, top in itertools.product((0, 1), (1, 2)):
        radius = radius_jia_topk(p_down[:, label], np.delete(p_up, label, axis=1), d, k, top)
        for i in np.flatnonzero(~np.isnan(radius)):
            near = votes[dist[i] <= radius[i]]
            beating = (np.delete(near, label, axis=1) >= near[:, [label]]).sum(1)
            assert (beating < top).all()
        largest = max(largest, np.nanmax(radius, initial=-1))
    assert largest >= 2  # the test exercises non-trivial radii


# ----------------------------------------------------------------------------- (b) Delta and radii


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sampled_from(SIZES + [(50176, 1000)]), st.data())
def test_delta_and_log_ratio_match_fractions(size: tuple[int, int], data) -> None:
    d, k = size
    rho = data.draw(st.integers(0, d))
    exact = ref_delta(rho, d, k)
    assert math.isclose(float(delta(rho, d, k)), float(exact), rel_tol=1e-12, abs_tol=1e-14)
    ratio = 1 - exact
    expected = -math.inf if ratio == 0 else math.log(ratio.numerator) - math.log(ratio.denominator)
    got = float(log_binom_ratio(rho, d, k))
    assert got == expected or math.isclose(got, expected, rel_tol=1e-10, abs_tol=1e-12)


def test_delta_is_vectorised_and_monotone() -> None:
    d, k = 784, 45
    values = delta(np.arange(d + 1), d, k)
    assert values.shape == (d + 1,)
    assert values[0] == 0.0 and (values[d - k + 1 :] == 1.0).all()
    assert (np.diff(values) >= 0).all()


def near_threshold_p(rng: np.random.Generator, d: int, k: int, base: Fraction, count: int) -> np.ndarray:
    """Floats at and one ulp around ``base + Delta(rho)`` for random rho: stress the exact fallback."""
    values = []
    for rho in rng.integers(0, d - k + 1, count):
        t = float(base + ref_delta(int(rho), d, k))
        values += [t, np.nextafter(t, 0.0), np.nextafter(t, 2.0)]
    return np.clip(values, 0.0, 1.0)


@pytest.mark.parametrize(("d", "k"), SIZES)
def test_radius_cor1_matches_exact_reference(d: int, k: int) -> None:
    rng = np.random.default_rng(d * 1000 + k)
    p = np.concatenate([rng.uniform(0.4, 1.0, 60), near_threshold_p(rng, d, k, Fraction(1, 2), 15), [0.0, 0.5, 1.0]])
    p = p[p <= 1.0]
    got = radius_cor1(p, d, k)
    assert same(got, [ref_cor1(float(x), d, k) for x in p])


def test_radius_cor1_is_strict_at_exact_thresholds() -> None:
    # k = 1: Delta(rho) = rho / d, so 0.5 + rho / d is exactly representable for d = 2^m.
    for d in (8, 16, 64):
        rho = np.arange(1, d // 2)
        assert same(radius_cor1(0.5 + rho / d, d, 1), rho - 1)
        assert same(radius_cor1(np.nextafter(0.5 + rho / d, 1.0), d, 1), rho)


@pytest.mark.parametrize(("d", "k"), SIZES)
def test_radius_cor2_and_jia_match_exact_reference(d: int, k: int) -> None:
    rng = np.random.default_rng(d + 7 * k)
    pa = rng.uniform(0.2, 1.0, 50)
    pb = rng.uniform(0.0, 1.0 - pa)
    # pairs with pa - pb = 2 Delta(rho) up to an ulp
    pb_near = rng.uniform(0.0, 0.2, 15)
    pa_near = [float(Fraction(float(b)) + 2 * ref_delta(int(r), d, k)) for b, r in zip(pb_near, rng.integers(0, 3, 15))]
    pa = np.concatenate([pa, np.clip(pa_near, 0, 1), np.nextafter(np.clip(pa_near, 0, 1), 0.0)])
    pb = np.concatenate([pb, pb_near, pb_near])
    assert same(radius_cor2(pa, pb, d, k), [ref_cor2(float(a), float(b), d, k) for a, b in zip(pa, pb)])
    assert same(radius_jia(pa, pb, d, k), [ref_jia_topk(float(a), [float(b)], d, k, 1) for a, b in zip(pa, pb)])


def test_jia_discretisation_matters_for_small_n() -> None:
    # d=6, k=2: N = 15, Delta(1) = 1/3.  p_A >= 0.79 gives p_A >= 12/15 and p_B <= 0.13 gives
    # p_B <= 1/15, and 12/15 - 1/3 > 1/15 + 1/3, while Corollary 2 needs 0.79 - 0.13 > 2/3.
    d, k = 6, 2
    assert float(radius_cor2(0.79, 0.13, d, k)) == 0
    assert float(radius_jia(0.79, 0.13, d, k)) == 1
    # p_B <= 0.135 only gives p_B <= 2/15: 12/15 - 1/3 = 2/15 + 1/3 is not strict
    assert float(radius_jia(0.79, 0.135, d, k)) == 0
    # clipping: an upper bound of 0.5 is useless next to p_B <= 1 - p_A <= 0.3
    assert float(radius_jia(0.7, 0.5, d, k)) == 0 and float(radius_jia(0.85, 0.9, d, k)) == 1


@pytest.mark.parametrize(("d", "k"), [(6, 2), (10, 3), (64, 5), (784, 45)])
@pytest.mark.parametrize("top", [1, 2, 3])
def test_radius_jia_topk_matches_exact_reference(d: int, k: int, top: int) -> None:
    rng = np.random.default_rng(100 * top + k)
    weights = rng.dirichlet(np.full(5, 0.3), 40)
    pl = np.clip(weights[:, 0] - 0.01, 0, 1)
    others = np.clip(weights[:, 1:] + 0.01, 0, 1)
    got = radius_jia_topk(pl, others, d, k, top)
    assert same(got, [ref_jia_topk(float(a), [float(b) for b in row], d, k, top) for a, row in zip(pl, others)])
    if top == 1:
        assert same(got, radius_jia(pl, others.max(1), d, k))


def test_imagenet_scale_spot_checks() -> None:
    d, k = 50176, 1000
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0.5, 1.0, 6), near_threshold_p(rng, d, k, Fraction(1, 2), 2)[:6]])
    p = p[(p >= 0) & (p <= 1)]
    assert same(radius_cor1(p, d, k), [ref_cor1(float(x), d, k) for x in p])
    pa, pb = rng.uniform(0.6, 1.0, 4), rng.uniform(0.0, 0.05, 4)
    assert same(radius_cor2(pa, pb, d, k), [ref_cor2(float(a), float(b), d, k) for a, b in zip(pa, pb)])
    assert same(radius_jia(pa, pb, d, k), [ref_jia_topk(float(a), [float(b)], d, k, 1) for a, b in zip(pa, pb)])
    many = radius_cor1(rng.uniform(0.0, 1.0, 1000), d, k)
    assert many.shape == (1000,)


def test_radius_shapes_and_broadcasting() -> None:
    p = np.full((2, 3), 0.9)
    assert radius_cor1(p, 784, 45).shape == (2, 3)
    assert radius_cor2(p, 0.05, 784, 45).shape == (2, 3)
    assert np.ndim(radius_cor1(0.9, 784, 45)) == 0
    assert np.ndim(radius_jia_topk(0.9, [0.05, 0.04], 784, 45, 2)) == 0


# ----------------------------------------------------------------------------- (c) Clopper-Pearson


@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_clopper_pearson_matches_statsmodels_and_binomial_tails(alpha: float) -> None:
    for n in (1, 7, 100, 10_000):
        count = np.unique(np.linspace(0, n, 23).astype(int))
        lower, upper = clopper_pearson_lower(count, n, alpha), clopper_pearson_upper(count, n, alpha)
        sm_lower, sm_upper = proportion_confint(count, n, alpha=2 * alpha, method="beta")
        inner = (count > 0) & (count < n)
        np.testing.assert_allclose(lower[inner], sm_lower[inner], rtol=1e-9)
        np.testing.assert_allclose(upper[inner], sm_upper[inner], rtol=1e-9)
        # tail inversion: P(X >= c | lower) = alpha and P(X <= c | upper) = alpha
        positive, below = count > 0, count < n
        np.testing.assert_allclose(binom.sf(count[positive] - 1, n, lower[positive]), alpha, rtol=1e-6)
        np.testing.assert_allclose(binom.cdf(count[below], n, upper[below]), alpha, rtol=1e-6)
        assert (lower <= count / n).all() and (upper >= count / n).all()


def test_clopper_pearson_edge_cases() -> None:
    n, alpha = 50, 0.05
    assert clopper_pearson_lower(0, n, alpha) == 0.0
    assert clopper_pearson_upper(n, n, alpha) == 1.0
    assert math.isclose(clopper_pearson_lower(n, n, alpha), alpha ** (1 / n), rel_tol=1e-12)
    assert math.isclose(clopper_pearson_upper(0, n, alpha), 1 - alpha ** (1 / n), rel_tol=1e-12)
    tiny = 1e-20  # 1 - tiny == 1.0 in floats; the upper bound must still be < 1
    assert math.isclose(clopper_pearson_upper(0, n, tiny), 1 - tiny ** (1 / n), rel_tol=1e-12)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.93])
def test_clopper_pearson_coverage(p: float) -> None:
    alpha, n, trials = 0.05, 60, 2000
    counts = np.random.default_rng(int(p * 100)).binomial(n, p, trials)
    for misses in ((clopper_pearson_lower(counts, n, alpha) > p).sum(), (clopper_pearson_upper(counts, n, alpha) < p).sum()):
        assert binomtest(int(misses), trials, alpha, alternative="greater").pvalue > 1e-3


def test_class_bounds_are_simultaneous() -> None:
    alpha, n, trials = 0.1, 40, 2000
    probs = np.array([0.55, 0.25, 0.15, 0.05])
    counts = np.random.default_rng(5).multinomial(n, probs, trials)
    for selected in (None, np.zeros(trials, dtype=int)):
        lower, upper = class_bounds(counts, alpha, selected)
        failures = ((lower > probs) | (upper < probs)).any(1).sum()
        assert binomtest(int(failures), trials, alpha, alternative="greater").pvalue > 1e-3


def test_class_bounds_levels() -> None:
    counts = np.array([[30, 12, 8], [5, 5, 40]])
    lower, upper = class_bounds(counts, 0.06)
    np.testing.assert_allclose(lower, clopper_pearson_lower(counts, 50, 0.01))
    np.testing.assert_allclose(upper, clopper_pearson_upper(counts, 50, 0.01))
    lower, upper = class_bounds(counts, 0.06, selected=[0, 2])
    chosen = np.array([[True, False, False], [False, False, True]])
    np.testing.assert_allclose(lower[chosen], clopper_pearson_lower([30, 40], 50, 0.02))
    np.testing.assert_allclose(upper[~chosen], clopper_pearson_upper([12, 8, 5, 5], 50, 0.02))
    assert (lower[~chosen] == 0).all() and (upper[chosen] == 1).all()


# ----------------------------------------------------------------------------- (d) paper numbers


def test_mnist_thresholds_from_the_notes() -> None:
    d, k = 784, 45
    # rho = 1 needs p_lower > 0.557..., rho = 8 needs 0.878...
    assert 0.557 < 0.5 + float(ref_delta(1, d, k)) < 0.558
    assert 0.878 < 0.5 + float(ref_delta(8, d, k)) < 0.879
    assert same(radius_cor1([0.557, 0.558, 0.878, 0.879], d, k), [0, 1, 7, 8])
    # n = 10,000 and alpha = 0.05: the largest radius is 11
    assert float(max_certifiable_radius(10_000, 0.05, d, k)) == 11
    assert ref_cor1(0.05 ** (1 / 10_000), d, k) == 11


def test_constant_classifier_reaches_the_maximum_radius() -> None:
    n, alpha, d, k = 10_000, 0.05, 784, 45
    counts = np.zeros((3, 10), dtype=int)
    counts[np.arange(3), [0, 4, 9]] = n
    predict, p_lower, radius = certify_counts(counts, n, alpha, d, k, "cor1", selected=[0, 4, 9])
    np.testing.assert_allclose(p_lower, alpha ** (1 / n), rtol=1e-12)
    assert same(radius, np.full(3, max_certifiable_radius(n, alpha, d, k)))
    assert (predict == [0, 4, 9]).all()
    assert math.isnan(float(max_certifiable_radius(3, 0.05, d, k)))  # 0.05^(1/3) < 0.5: never certifies


def test_certify_counts_composes_bounds_and_radii() -> None:
    d, k, n, alpha = 784, 45, 1000, 0.05
    counts = np.array([[900, 60, 40], [480, 470, 50], [10, 20, 970]])
    predict, p_lower, radius = certify_counts(counts, n, alpha, d, k, "cor1", selected=[0, 0, 1])
    np.testing.assert_allclose(p_lower, clopper_pearson_lower([900, 480, 20], n, alpha))
    assert same(radius, radius_cor1(p_lower, d, k))
    assert list(predict) == [0, -1, -1] and math.isnan(radius[1])

    predict, p_lower, radius = certify_counts(counts, n, alpha, d, k, "cor1")
    np.testing.assert_allclose(p_lower, clopper_pearson_lower([900, 480, 970], n, alpha / 3))
    assert list(predict) == [0, -1, 2]

    for name, fn in (("cor2", radius_cor2), ("jia", radius_jia)):
        predict, p_lower, radius = certify_counts(counts, n, alpha, d, k, name)
        lower, upper = class_bounds(counts, alpha)
        np.testing.assert_allclose(p_lower, lower[[0, 1, 2], [0, 0, 2]])
        pb = np.array([upper[0, 1:].max(), upper[1, 1:].max(), upper[2, :2].max()])
        assert same(radius, fn(p_lower, pb, d, k))
        assert list(predict) == [0, -1, 2]


# ----------------------------------------------------------------------------- (f) bad input


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), "x", None])
def test_bad_alpha(alpha) -> None:
    with pytest.raises(ValueError, match="alpha"):
        check_alpha(alpha)
    with pytest.raises(ValueError, match="alpha"):
        clopper_pearson_lower(3, 10, alpha)


@pytest.mark.parametrize(
    ("d", "k", "message"),
    [(10, 11, "k=11 and d=10"), (10, 0, "k=0"), (10, -1, "k=-1"), (0, 0, "d=0"), (10.5, 3, "d must be an integer"),
     (10, 2.0, "k must be an integer")],
)
def test_bad_ablation_size(d, k, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_ablation_size(d, k)
    with pytest.raises(ValueError):
        radius_cor1(0.9, d, k)


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        clopper_pearson_lower(11, 10, 0.05)
    with pytest.raises(ValueError, match=">= 0"):
        clopper_pearson_upper(-1, 10, 0.05)
    with pytest.raises(ValueError, match="n must be >= 1"):
        clopper_pearson_lower(0, 0, 0.05)
    with pytest.raises(ValueError, match="integers"):
        clopper_pearson_lower(2.5, 10, 0.05)
    with pytest.raises(ValueError, match="sum to n"):
        certify_counts([[5, 4]], 10, 0.05, 784, 45)
    with pytest.raises(ValueError, match=">= 0"):
        certify_counts([[-1, 11]], 10, 0.05, 784, 45)
    with pytest.raises(ValueError, match="selected"):
        certify_counts([[6, 4]], 10, 0.05, 784, 45, selected=[2])
    with pytest.raises(ValueError, match="certificate"):
        certify_counts([[6, 4]], 10, 0.05, 784, 45, certificate="cor3")
    with pytest.raises(ValueError, match="C >= 2"):
        certify_counts([[10]], 10, 0.05, 784, 45, certificate="cor2")


@pytest.mark.parametrize("p", [-0.1, 1.1, float("nan"), float("inf")])
def test_bad_probabilities(p: float) -> None:
    with pytest.raises(ValueError, match="p_lower"):
        radius_cor1(p, 784, 45)
    with pytest.raises(ValueError, match="p_upper_b"):
        radius_cor2(0.9, p, 784, 45)
    with pytest.raises(ValueError, match="p_lower_a"):
        radius_jia(p, 0.1, 784, 45)


def test_bad_rho_and_top() -> None:
    with pytest.raises(ValueError, match="rho"):
        delta(785, 784, 45)
    with pytest.raises(ValueError, match="rho"):
        delta(-1, 784, 45)
    with pytest.raises(ValueError, match="top"):
        radius_jia_topk(0.9, [0.05, 0.05], 784, 45, 3)
    with pytest.raises(ValueError, match="top"):
        radius_jia_topk(0.9, [0.05, 0.05], 784, 45, 0)
