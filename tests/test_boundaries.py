"""Exact group-sequential boundaries (smoothcert.certificates.boundaries) and the exact bound of
sequential CERTIFY: crossing probabilities checked by enumerating every vote path, and the
procedure's wrong-radius rate computed exactly over binomial paths (selection included), over
three-class multinomial paths for the test that selects its class itself (n0 = 0), and by
Monte-Carlo at the worst case, p exactly at a radius's threshold."""

import itertools
import math

import numpy as np
import pytest
from scipy.signal import fftconvolve
from scipy.stats import binom, multinomial

from smoothcert.certificates import delta
from smoothcert.certificates.boundaries import crossing_bounds, crossing_probability, futility_bounds, spent
from smoothcert.certificates.sequential import (Adaptive, ExactLooks, certify_steps, exact_thresholds, folded_level,
                                                 others_crossing)
from test_sequential import run_bernoulli

D, K = 784, 45
TAU = 0.5 + delta(np.arange(13), D, K)


def cor1(p: float) -> float:
    r = int(np.searchsorted(TAU, p, side="left")) - 1
    return math.nan if r < 0 else float(r)


LOOKS = np.array([2, 5, 9, 12])
PATHS = np.array(list(itertools.product([0, 1], repeat=int(LOOKS[-1]))))  # every vote path of 12 samples
COUNTS = np.cumsum(PATHS, axis=1)[:, LOOKS - 1]  # (paths, looks): the count at each look


def enumerated_crossing(bounds: np.ndarray, p: float) -> float:
    """P_p(exists j: S_j >= bounds[j]) summed over all 4,096 paths, independent of the DP."""
    weights = p ** PATHS.sum(1) * (1 - p) ** (len(PATHS[0]) - PATHS.sum(1))
    return float(weights[np.any(COUNTS >= bounds, axis=1)].sum())


@pytest.mark.parametrize("alpha", [0.05, 0.2])
@pytest.mark.parametrize("rho", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("tau", [0.3, 0.5, 0.7, 0.9])
def test_crossing_probability_is_at_most_alpha_by_enumeration(alpha, rho, tau):
    cumulative = spent(alpha, LOOKS, rho)
    bounds = crossing_bounds(tau, LOOKS, cumulative)
    exact = enumerated_crossing(bounds, tau)
    assert crossing_probability(bounds, LOOKS, tau) == pytest.approx(exact, abs=1e-12)
    assert exact <= alpha
    for p in (tau - 0.1, tau - 0.02):  # below tau the crossing is rarer
        assert enumerated_crossing(bounds, p) <= exact + 1e-15


def test_boundaries_spend_alpha_look_by_look():
    """At tau the probability of a first crossing by look j is at most the share spent by then, and
    a boundary is the smallest count that keeps it so (one count lower would overspend)."""
    for tau in (0.5, 0.8):
        cumulative = spent(0.2, LOOKS, 1.0)
        bounds = crossing_bounds(tau, LOOKS, cumulative)
        for j in range(len(LOOKS)):
            by_j = enumerated_crossing(np.where(np.arange(len(LOOKS)) <= j, bounds, LOOKS + 1), tau)
            assert by_j <= cumulative[j] + 1e-15
            if 0 < bounds[j] <= LOOKS[j]:
                tighter = np.where(np.arange(len(LOOKS)) <= j, bounds, LOOKS + 1)
                tighter[j] -= 1
                assert enumerated_crossing(tighter, tau) > cumulative[j]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_futility_stops_at_most_beta_at_theta(beta):
    for theta in (0.5, 0.8):
        bounds = futility_bounds(theta, LOOKS, spent(beta, LOOKS, 1.0))
        weights = theta ** PATHS.sum(1) * (1 - theta) ** (len(PATHS[0]) - PATHS.sum(1))
        stopped = float(weights[np.any(COUNTS <= bounds, axis=1)].sum())
        assert stopped <= beta
        assert np.any(bounds >= 0)  # it does stop some paths


def procedure_wrong_rate(p: float, wrong_from: int, options: Adaptive, n_max: int, alpha: float) -> float:
    """P_p(sequential CERTIFY with the exact bound certifies a radius >= ``wrong_from``), computed
    exactly by following every count path through the looks with its stops (cap, futility):
    the state is (count, best radius so far) on the paths still sampling."""
    options = options.settled()
    grid = exact_thresholds(cor1, 1.0, options.radius, options.family(), n_max, alpha, options.beta)
    rows = len(grid.radii)
    alive = np.zeros((rows + 1, 1))  # alive[b + 1, s]: best index b (-1: none), count s
    alive[0, 0] = 1.0
    used, wrong = 0, 0.0
    for j, look in enumerate(grid.looks):
        step = binom.pmf(np.arange(look - used + 1), look - used, p)
        alive = np.array([np.convolve(row, step) for row in alive])
        used = int(look)
        counts = np.arange(alive.shape[1])
        moved = np.zeros_like(alive)
        for b in range(-1, rows):
            best = np.maximum(b, (counts[:, None] >= grid.crossing[:, j]).sum(1) - 1)
            for nb in np.unique(best):
                moved[nb + 1, best == nb] += alive[b + 1, best == nb]
        reach = (counts[:, None] > grid.futility[:, j]).sum(1) - 1
        for b in range(-1, rows):
            if options.radius is None:
                stop = (b >= rows - 1) | (reach <= b)
            else:
                stop = np.full(counts.shape, b >= 0) | (reach < 0)
            certified = grid.radii[b] if b >= 0 else -1.0
            if certified >= wrong_from:
                wrong += moved[b + 1, stop].sum()
            moved[b + 1, stop] = 0.0
        alive = moved
    for b in range(rows):  # paths that ran to n_max
        if grid.radii[b] >= wrong_from:
            wrong += alive[b + 1].sum()
    return float(wrong)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("options", [Adaptive(), Adaptive(radius=4), Adaptive(beta=0.9, step=5, rho=0.25),
                                     Adaptive(radius=8, step=5, growth=1.5, rho=3.0)],
                         ids=["largest", "target4", "early", "target8-late"])
def test_exact_certify_is_wrong_at_most_alpha_over_all_paths(alpha, options):
    """Worst case p = tau_r (the true radius is r - 1), selection included: with three classes
    (tau_r, and the rest split) the class picked on n0 = 10 votes is the top one or one whose p is
    below 1/2, for which any certificate is wrong. Exact over vote paths and the selection's law."""
    n_max = 600
    for r in ([4] if options.radius == 4 else [8] if options.radius == 8 else [1, 4, 8]):
        p_top = TAU[r]
        rest = (1 - p_top) / 2
        n0 = 10
        pick_other = sum(multinomial.pmf([a, b, n0 - a - b], n0, [p_top, rest, rest])
                         for a in range(n0 + 1) for b in range(n0 + 1 - a)
                         if a + b <= n0 and max(b, n0 - a - b) > a)  # ties go to the top class (index 0)
        wrong_top = procedure_wrong_rate(p_top, r, options, n_max, alpha)
        wrong_other = procedure_wrong_rate(rest, 0, options, n_max, alpha)
        total = (1 - pick_other) * wrong_top + pick_other * wrong_other
        assert total <= alpha
        if options.radius is None and r == 1:
            assert wrong_top > alpha / 20  # the computation sees crossings: not vacuous


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("options", [Adaptive(), Adaptive(radius=4)], ids=["largest", "target4"])
def test_exact_certify_is_wrong_at_most_alpha_by_monte_carlo(alpha, options):
    """The library's own coroutine, at p = tau_4 with a runner-up at 1 - tau_4 (selection on 30 votes)."""
    rng = np.random.default_rng(int(alpha * 1000) + (options.radius is None))
    runs = 1500
    wrong = 0
    for _ in range(runs):
        outcome = run_bernoulli(certify_steps(cor1, 30, 2000, alpha, options), TAU[4], rng)
        wrong += outcome.radius >= 4 or (outcome.top != 0 and not math.isnan(outcome.radius))
    assert wrong / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def folded_wrong_rate(p: tuple[float, float, float], options: Adaptive, n_max: int, alpha: float) -> float:
    """P_p(the one-radius test with n0 = 0 certifies a class whose share is at most tau), exactly over
    the three classes' count paths: at each look the leading class (the first on ties) is certified
    once its count reaches the crossing boundary and given up at or below the futility one."""
    options = options.settled()
    level = folded_level(cor1, 1.0, options.radius, options.family(), n_max, alpha, options.beta, len(p))
    grid = exact_thresholds(cor1, 1.0, options.radius, options.family(), n_max, level, options.beta)
    law, used, wrong = np.ones((1, 1)), 0, 0.0
    for j, look in enumerate(grid.looks):
        fresh = int(look) - used
        a, b = np.indices((fresh + 1, fresh + 1))
        step = np.where(a + b <= fresh, multinomial.pmf(np.stack([a, b, np.maximum(fresh - a - b, 0)], -1), fresh, p),
                        0.0)
        law, used = np.clip(fftconvolve(law, step), 0.0, None), int(look)
        a, b = np.indices(law.shape)
        counts = np.stack([a, b, used - a - b], -1)
        possible = counts[..., 2] >= 0
        leader, count = counts.argmax(-1), counts.max(-1)
        certified = possible & (count >= grid.crossing[0, j])
        wrong += float(law[certified & (np.asarray(p)[leader] <= grid.tau[0])].sum())
        law = np.where(certified | (possible & (count <= grid.futility[0, j])), 0.0, law)
    return wrong


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("options", [Adaptive(radius=2), Adaptive(radius=4), Adaptive(radius=0),
                                     Adaptive(radius=4, beta=0.9, step=5, growth=1.5, rho=3.0)],
                         ids=["target2", "target4", "target0", "target4-late"])
def test_a_test_that_selects_its_class_is_wrong_at_most_alpha_over_all_paths(alpha, options):
    """n0 = 0: the worst cases with three classes, all at or below tau_R (any certificate is wrong):
    one class at tau_R and the rest on one or two others, two classes tied at 1/2 (at R = 0 both
    sit at the threshold: the level is about halved, and the error comes near alpha), and all
    three equal. Exact over vote paths."""
    n_max, tau = 300, TAU[int(options.radius)]
    level = folded_level(cor1, 1.0, options.radius, options.settled().family(), n_max, alpha,
                         options.settled().beta, 3)
    assert level <= alpha and (level < 0.6 * alpha if options.radius == 0 else level > 0.9 * alpha)
    rates = {p: folded_wrong_rate(p, options, n_max, alpha)
             for p in ((tau, 1 - tau, 0.0), (tau, (1 - tau) / 2, (1 - tau) / 2), (0.5, 0.5, 0.0), (1 / 3,) * 3)}
    assert max(rates.values()) <= alpha
    assert rates[(tau, 1 - tau, 0.0)] > alpha / 20  # the computation sees crossings: not vacuous


def test_the_other_classes_term_bounds_every_share_below_the_leader():
    """others_crossing bounds the sum of g(min(1/i, tau)) from above, within 0.1% (term by term,
    then the classes left at the last term), and grows with the number of classes."""
    looks = ExactLooks(20, 1.3, 0.25).looks(2000)
    for r in (0, 2):
        bounds = crossing_bounds(TAU[r], looks, spent(0.05, looks, 0.25))
        terms = [crossing_probability(bounds, looks, min(1 / i, TAU[r])) for i in range(2, 11)]
        assert sum(terms) <= others_crossing(bounds, looks, TAU[r], 10) <= 1.001 * sum(terms) + 1e-15
        assert sum(terms) <= others_crossing(bounds, looks, TAU[r], 1000) < 0.05
        assert others_crossing(bounds, looks, TAU[r], 2) == pytest.approx(terms[0], rel=1e-12)


class Unhashable:
    """Corollary 1 as a certificate that cannot be hashed (its tables are not cached)."""

    __hash__ = None

    def __call__(self, p: float) -> float:
        return cor1(p)


def test_the_folded_level_is_the_same_for_an_unhashable_certificate():
    family = Adaptive(radius=1).settled().family()
    cached = folded_level(cor1, 1.0, 1.0, family, 2000, 0.05, 0.6, 10)
    assert cached == folded_level(Unhashable(), 1.0, 1.0, family, 2000, 0.05, 0.6, 10) < 0.05


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_a_test_that_selects_its_class_is_wrong_at_most_alpha_by_monte_carlo(alpha):
    """The library's coroutine with n0 = 0 and ten classes: one at tau_4 and the rest spread, or all
    of the rest on a runner-up; every class is at or below tau_4, so any certificate is wrong."""
    rng = np.random.default_rng(int(alpha * 1000) + 7)
    runs = 1500
    for p in ((TAU[4], *[(1 - TAU[4]) / 9] * 9), (TAU[4], 1 - TAU[4], *[0.0] * 8)):
        wrong = 0
        for _ in range(runs):
            steps = certify_steps(cor1, 0, 2000, alpha, Adaptive(radius=4), num_classes=10)
            try:
                num = next(steps)
                while True:
                    num = steps.send(rng.multinomial(num, p))
            except StopIteration as done:
                wrong += not math.isnan(done.value.radius)
        assert wrong / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_a_test_that_selects_its_class_certifies_the_leader():
    """Class 2 leads: it is certified without selection samples, at the first look that crosses."""
    rng = np.random.default_rng(3)
    p = (0.05, 0.05, 0.9)
    steps = certify_steps(cor1, 0, 10_000, 0.05, Adaptive(radius=4), num_classes=3)
    num = next(steps)
    assert num == Adaptive(radius=4).settled().step  # the first look, not n0
    try:
        while True:
            num = steps.send(rng.multinomial(num, p))
    except StopIteration as done:
        outcome = done.value
    assert outcome.top == 2 and outcome.radius == 4 and outcome.n <= 60


def test_exact_certificate_reports_the_threshold_it_crossed():
    rng = np.random.default_rng(4)
    outcome = run_bernoulli(certify_steps(cor1, 30, 10_000, 0.05, Adaptive()), 0.9, rng)
    assert outcome.radius == cor1(outcome.p_lower)  # p_lower is the threshold shown exceeded
    assert outcome.p_lower > TAU[int(outcome.radius)] and outcome.radius in (7, 8)  # tau_8 = 0.878 < 0.9


def test_exact_family_refuses_bad_spending():
    with pytest.raises(ValueError, match="rho"):
        ExactLooks(20, 1.3, 0.0)


def test_the_path_computation_catches_boundaries_that_overspend(monkeypatch):
    """Boundaries three counts too low at every look break the level, and the exact computation says so."""
    honest = ExactLooks.crossing
    monkeypatch.setattr(ExactLooks, "crossing", lambda self, tau, n, a: np.maximum(honest(self, tau, n, a) - 3, 0))
    options = Adaptive(step=7)  # a schedule no other test caches
    assert procedure_wrong_rate(TAU[4], 4, options, 600, 0.05) > 0.05
