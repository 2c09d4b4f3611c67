"""Sequential CERTIFY and PREDICT (smoothcert.sequential): exact coverage of the time-uniform
bounds and of PREDICT by dynamic programming over binomial and multinomial paths, Monte-Carlo
coverage of the certificate and of PREDICT, and the cap / futility / target stops on toy classifiers."""

import math
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.signal import convolve2d
from scipy.stats import binom, multinomial
from torch import nn

from smoothcert.certificates import clopper_pearson_lower, delta, radius_cor1
from smoothcert.errors import ArgumentError
from smoothcert.noises import Ablation, Gaussian, Lee
from smoothcert.runtime.seeding import generator
from smoothcert.certificates.sequential import (
    ABSTAIN,
    DEFAULTS,
    Adaptive,
    GroupSequentialCP,
    MixtureCS,
    certify_steps,
    mixture_log_martingale,
    mixture_lower,
    mixture_upper,
    pair_log_evidence,
    predict_decision,
    predict_steps,
    spend,
    upgraded_record,
)
from smoothcert.runner.log import differing
from smoothcert.classifiers.smoothed import SmoothedClassifier


def worst_crossing(family, n_max: int, alpha: float, grid: np.ndarray) -> float:
    """max over p in ``grid`` of P_p(some look's lower bound exceeds p), exactly: a DP over the
    number of successes at each look, keeping only the paths that have not crossed yet."""
    looks = family.looks(n_max)
    lowers = [np.array([family.lower(s, int(m), j, len(looks), alpha) for s in range(m + 1)]) for j, m in enumerate(looks)]
    worst = 0.0
    for p in grid:
        alive, crossed, used = np.ones(1), 0.0, 0
        for look, lower in zip(looks, lowers):
            alive = np.convolve(alive, binom.pmf(np.arange(look - used + 1), look - used, p))
            used = int(look)
            crossed += alive[lower > p].sum()
            alive[lower > p] = 0.0
        worst = max(worst, crossed)
    return worst


class EveryLookCP:
    """Clopper-Pearson at full alpha at every look: the naive scheme that sequential testing breaks."""

    def __init__(self, step: int) -> None:
        self.family = MixtureCS(step)

    def looks(self, n_max: int) -> np.ndarray:
        return self.family.looks(n_max)

    def lower(self, count, n, look, looks, alpha):
        return float(clopper_pearson_lower(count, n, alpha))


P_GRID = np.linspace(0.02, 0.98, 49)


@pytest.mark.parametrize("family, n_max", [(GroupSequentialCP(4, 2.0), 64), (GroupSequentialCP(5, 1.5), 90),
                                           (GroupSequentialCP(3, 1.25), 80), (GroupSequentialCP(5, 1.5, 0.8), 90),
                                           (GroupSequentialCP(3, 1.25, 0.95), 80), (MixtureCS(1), 60),
                                           (MixtureCS(7), 120), (MixtureCS(7, 0.8), 120)])
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_bounds_cover_exactly(family, n_max, alpha):
    worst = worst_crossing(family, n_max, alpha, P_GRID)
    assert worst <= alpha + 1e-12
    assert worst > alpha / 20  # the DP sees crossings: the bound is not vacuous


def test_the_dynamic_program_catches_a_scheme_that_does_not_spend_alpha():
    worst = worst_crossing(EveryLookCP(1), 60, 0.05, P_GRID)
    assert worst > 0.08  # peeking at full alpha after every sample breaks the guarantee


def test_spending_sums_to_alpha_and_looks_end_at_n_max():
    for looks in (1, 2, 7):
        for last in (0.5, 0.8):
            levels = spend(0.05, looks, last)
            assert levels.sum() == pytest.approx(0.05)
            assert levels[-1] == pytest.approx(0.05 if looks == 1 else 0.05 * last)
    looks = GroupSequentialCP(100, 2.0).looks(10_000)
    assert looks[0] == 100 and looks[-1] == 10_000 and np.all(np.diff(looks) > 0)
    assert list(MixtureCS(300).looks(1000)) == [300, 600, 900, 1000]
    assert list(GroupSequentialCP(100, 2.0).looks(50)) == [50]


@pytest.mark.parametrize("options", [Adaptive(step=1, growth=1.2), Adaptive(step=3, growth=1.2, bound="looks"),
                                     Adaptive(step=1, growth=1.2, radius=2)])
def test_a_small_first_look_draws_new_samples_at_every_look(options):
    """First looks below 1 / (growth - 1) round several looks onto one (1, 1, 1, 2, ... at x1.2): each
    look is drawn once, so certify and predict run (they stopped at a look of no samples before)."""
    for family in (options.settled().family(), options.settled(predict=True).family()):
        looks = family.looks(200)
        assert looks[0] == options.step and looks[-1] == 200 and np.all(np.diff(looks) > 0)
    smoothed = SmoothedClassifier(Constant(), Ablation(45), 10, device="cpu")
    x = torch.full((1, 28, 28), 0.5)
    assert smoothed.predict(x, 200, 0.05, generator(0, 3), sampling=options) == 3
    cert = smoothed.certify(x, 10, 200, 0.05, generator(0, 3), sampling=options)
    assert cert.predict == 3 and cert.radius >= (options.radius or 0)


@pytest.mark.parametrize("count, n", [(1, 1), (0, 10), (7, 10), (10, 10), (950, 1000), (3, 4000)])
def test_mixture_bound_is_the_root_of_the_martingale(count, n):
    alpha = 0.05
    lower, upper = mixture_lower(count, n, alpha), mixture_upper(count, n, alpha)
    assert 0 <= lower <= count / n <= upper <= 1
    for bound in (lower, upper):
        if 0 < bound < 1:
            assert mixture_log_martingale(count, n, bound) == pytest.approx(math.log(1 / alpha), abs=1e-6)
    if count > 0:  # at the empirical mean the mixture is below 1 / alpha: p = count / n is never excluded
        assert mixture_log_martingale(count, n, min(count / n, 1 - 1e-12)) < math.log(1 / alpha)


def test_mixture_martingale_matches_numerical_integration():
    count, n, p = 13, 40, 0.2
    mixture, _ = integrate.quad(lambda q: q**count * (1 - q) ** (n - count) / (math.pi * math.sqrt(q * (1 - q))), 0, 1)
    assert mixture_log_martingale(count, n, p) == pytest.approx(
        math.log(mixture) - count * math.log(p) - (n - count) * math.log(1 - p), rel=1e-8)


@pytest.mark.parametrize("top, second", [(0, 0), (5, 3), (40, 2), (10, 30)])
def test_pair_evidence_matches_numerical_integration(top, second):
    value, _ = integrate.quad(lambda q: 2 * (2 * q) ** top * (2 * (1 - q)) ** second, 0.5, 1)
    assert pair_log_evidence(top, second) == pytest.approx(math.log(value), rel=1e-9, abs=1e-9)


def run_bernoulli(steps, p_top: float, rng: np.random.Generator, classes: int = 2):
    """Drive a coroutine with multinomial votes: class 0 with probability p_top, the rest spread."""
    probabilities = np.array([p_top] + [(1 - p_top) / (classes - 1)] * (classes - 1))
    try:
        num = next(steps)
        while True:
            num = steps.send(rng.multinomial(num, probabilities))
    except StopIteration as done:
        return done.value


D, K = 784, 45
TAU = 0.5 + delta(np.arange(12), D, K)  # tau_r = 1/2 + Delta(r): radius r needs p > tau_r


def cor1(p: float) -> float:
    """Corollary 1 for d = 784, k = 45 by table look-up (the Monte-Carlo tests call it often)."""
    r = int(np.searchsorted(TAU, p, side="left")) - 1
    return math.nan if r < 0 else float(r)


def test_table_radius_is_corollary_1():
    for p in np.linspace(0.4, 1.0, 301):
        assert cor1(p) == pytest.approx(float(radius_cor1(p, D, K)), nan_ok=True)


OLD_DEFAULTS = {"bound": "looks", "step": 100, "growth": 2.0, "futility": "threshold"}  # before issue 35
LOOKS = Adaptive(bound="looks")
OPTIONS = [LOOKS, Adaptive(bound="anytime"), Adaptive(bound="looks", radius=4), Adaptive(bound="anytime", radius=4),
           Adaptive(beta=0.2, **OLD_DEFAULTS), Adaptive(radius=4, beta=0.05, **OLD_DEFAULTS),
           Adaptive(bound="looks", beta=0.5, step=10, growth=1.25),
           Adaptive(bound="looks", radius=4, beta=0.5, step=10, growth=1.25),
           Adaptive(bound="looks", beta=0.5, step=10, growth=1.25, last=0.95),
           Adaptive(), Adaptive(radius=4), Adaptive(beta=0.9, step=5, growth=1.5, rho=0.25),
           Adaptive(radius=4, beta=0.9, step=5, rho=3.0)]


@pytest.mark.parametrize("case", range(len(OPTIONS)))
@pytest.mark.parametrize("r", [1, 4])
def test_sequential_certificate_is_wrong_at_most_alpha(case, r):
    """At p = tau_r the true radius is r - 1: a certificate of r or more is wrong."""
    alpha, runs, options = 0.1, 300, OPTIONS[case]
    rng = np.random.default_rng(10 * r + case)
    wrong = sum(run_bernoulli(certify_steps(cor1, 10, 2000, alpha, options), TAU[r], rng).radius >= r
                for _ in range(runs))
    assert wrong / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize("options", [Adaptive(), LOOKS, Adaptive(bound="anytime")])
def test_sequential_certificate_has_power_above_the_threshold(options):
    rng = np.random.default_rng(7)
    outcomes = [run_bernoulli(certify_steps(cor1, 10, 10_000, 0.05, options), TAU[4] + 0.03, rng) for _ in range(40)]
    assert np.mean([o.radius >= 4 for o in outcomes]) > 0.9
    assert max(o.n for o in outcomes) <= 10_000


@pytest.mark.parametrize("options", [Adaptive(bound="looks", beta=0.1, step=100, growth=1.5),
                                     Adaptive(bound="looks", radius=4, beta=0.1, step=50)])
def test_final_futility_stops_no_later_than_the_threshold_rule(options):
    """The last look's bound at the count U n_max is below U, so it rules a radius out whenever U does."""
    for seed in range(20):
        for p in (0.6, 0.7, TAU[4] - 0.01, 0.9):
            runs = {rule: run_bernoulli(certify_steps(cor1, 10, 10_000, 0.05, replace(options, futility=rule)), p,
                                        np.random.default_rng(seed)) for rule in ("threshold", "final")}
            assert runs["final"].n <= runs["threshold"].n


def test_unset_options_come_from_the_defaults_or_a_resumed_log():
    largest = {k: v for k, v in DEFAULTS["exact"]["largest"].items() if k != "n0"}
    assert Adaptive().settled() == Adaptive(bound="exact", **largest)
    assert Adaptive(radius=4).settled().beta == DEFAULTS["exact"]["target"]["beta"]
    assert Adaptive(bound="looks", radius=4).settled().beta == DEFAULTS["looks"]["target"]["beta"]
    assert (Adaptive().default_n0(), Adaptive(radius=2).default_n0()) == (100, 0)  # 0: the test selects
    assert Adaptive(bound="looks", radius=2).default_n0() == 30
    assert Adaptive(step=7).settled().step == 7  # a chosen option stays
    old = {"scheme": "adaptive", "bound": "looks", "radius": None, "beta": 0.2, "step": 50, "growth": 2.0}
    for given in (Adaptive(), Adaptive(bound="looks")):  # unset, the bound is the resumed log's own
        resumed = given.settled(old)
        assert (resumed.bound, resumed.beta, resumed.step, resumed.growth, resumed.futility, resumed.last,
                resumed.rho) == ("looks", 0.2, 50, 2.0, "threshold", 0.5, None)
        assert {"scheme": "adaptive", **resumed.record()} == old  # the recorded settings compare equal
    assert Adaptive(bound="exact").settled(old) == Adaptive().settled()  # another bound: its defaults
    assert Adaptive(radius=4).settled(old) == Adaptive(radius=4).settled()  # another question: the defaults
    exact = Adaptive().settled()
    assert exact.settled(exact.record()) == exact and "last" not in exact.record()
    predict = Adaptive().settled(predict=True)  # chosen by simulating PREDICT (2026-12-05)
    assert (predict.step, predict.growth) == (20, 1.2)
    looks = Adaptive(bound="looks").settled(predict=True)  # the schedule attack logs ran before they recorded it
    assert (looks.step, looks.growth) == (100, 2.0)


def test_a_bare_adaptive_record_is_the_legacy_predict_schedule():
    """Attack logs recorded ``"sampling": "adaptive"`` before they recorded PREDICT's options: such
    a log ran the looks bound's PREDICT schedule (first look 100, doubling), and resumes with it."""
    legacy = Adaptive().settled("adaptive", predict=True)
    assert (legacy.bound, legacy.step, legacy.growth) == ("looks", 100, 2.0)
    assert legacy.settled(predict=True) == legacy  # complete: nothing left to the defaults
    assert upgraded_record("adaptive") == {"scheme": "adaptive", **legacy.record()}
    assert differing({"sampling": "adaptive"}, {"sampling": upgraded_record("adaptive")}) == []
    current = {"scheme": "adaptive", **Adaptive().settled(predict=True).record()}
    assert differing({"sampling": "adaptive"}, {"sampling": current}) == ["sampling"]  # another schedule
    for other in ("fixed", current):
        assert upgraded_record(other) == other


def test_fixed_n_is_the_last_look_of_a_single_look_schedule():
    """With one look the sequential procedure is Clopper-Pearson at alpha on n samples."""
    rng = np.random.default_rng(3)
    outcome = run_bernoulli(certify_steps(cor1, 10, 500, 0.05, Adaptive(bound="looks", step=500)), 0.8, rng)
    assert outcome.n == 500
    assert outcome.p_lower == pytest.approx(float(clopper_pearson_lower(outcome.count, 500, 0.05)))


class Constant(nn.Module):
    """Always votes class ``c``."""

    def __init__(self, c: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.c, self.classes = c, classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(z),), self.c), self.classes).float()


class KeptPixels(nn.Module):
    """Votes how many of the first ``m`` pixels the ablation kept (multichannel: a channel is non-zero)."""

    def __init__(self, m: int) -> None:
        super().__init__()
        self.m = m

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        kept = (z.flatten(2)[:, :, : self.m] != 0).any(1).sum(1)
        return nn.functional.one_hot(kept, self.m + 1).float()


def test_cap_stop_for_a_classifier_that_never_errs():
    smoothed = SmoothedClassifier(Constant(), Ablation(45), 10, device="cpu")
    x = torch.full((1, 28, 28), 0.5)
    cert = smoothed.certify(x, 100, 10_000, 0.05, generator(0, 0), sampling="adaptive")
    cap = cor1(1.0)
    assert cap == 11  # tau_12 > 1 for d = 784, k = 45
    assert cert.predict == 3 and cert.radius == cap and cert.count == cert.n
    assert cert.n < 1000  # five looks (100, 150, 225, 338, 506) instead of 10,000 samples


def test_futility_stops_when_no_larger_radius_is_reachable():
    """4x4 images, k = 6: class 0 (pixel 0 ablated) has p = 10/16, above tau_0 = 1/2 but far below
    tau_1 = 1/2 + 6/16; radius 0 is certified and the upper bound soon rules out radius 1."""
    smoothed = SmoothedClassifier(KeptPixels(1), Ablation(6), 2, device="cpu")
    cert = smoothed.certify(torch.full((1, 4, 4), 0.5), 100, 100_000, 0.05, generator(0, 1), sampling="adaptive")
    assert cert.predict == 0 and cert.radius == 0
    assert cert.n <= 800


def test_futility_abstains_when_the_top_class_is_below_one_half():
    """k = 8: kept pixels among the first three are 1 or 2 with p = 0.4 each: nothing is certifiable."""
    smoothed = SmoothedClassifier(KeptPixels(3), Ablation(8), 4, device="cpu")
    cert = smoothed.certify(torch.full((1, 4, 4), 0.5), 100, 100_000, 0.05, generator(0, 1), sampling="adaptive")
    assert cert.predict == ABSTAIN and math.isnan(cert.radius)
    assert cert.n <= 800


def test_target_radius_stops_at_the_first_decisive_look():
    smoothed = SmoothedClassifier(Constant(), Ablation(45), 10, device="cpu")
    x = torch.full((1, 28, 28), 0.5)
    for options in (Adaptive(bound="looks", radius=2), Adaptive(radius=2)):
        cert = smoothed.certify(x, 30, 10_000, 0.05, generator(0, 2), sampling=options)
        assert cert.n == options.settled().step and cert.radius >= 2  # the first look decides
    never = smoothed.certify(x, 30, 10_000, 0.05, generator(0, 2), sampling=Adaptive(bound="looks", radius=12))
    assert never.n == 50 and never.radius < 12  # beyond the cap: decided "not certified" at once
    never = smoothed.certify(x, 30, 10_000, 0.05, generator(0, 2), sampling=Adaptive(radius=12))
    assert never.n == 0 and math.isnan(never.radius)  # the exact bound knows it before any estimation sample


def test_sequential_predict_is_wrong_at_most_alpha():
    """Class 0 is the true top (p = .34 vs .33 vs .33): returning another class is an error."""
    alpha, runs = 0.1, 400
    rng = np.random.default_rng(11)
    wrong = 0
    for _ in range(runs):
        decision, _ = run_bernoulli(predict_steps(3000, alpha, 3, Adaptive()), 0.34, rng, classes=3)
        wrong += decision not in (0, ABSTAIN)
    assert wrong / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def predict_paths(options: Adaptive, n_max: int, alpha: float, p: tuple[float, ...]) -> tuple[float, float]:
    """(P(a class other than 0), P(class 0)) of sequential PREDICT on votes drawn from ``p`` (two or
    three classes), exactly: the law of the vote counts look by look, less the paths that stopped.
    A path stops at an interim look as ``predict_steps`` documents it (the e-value of top against
    runner-up reaches 2 (C - 1) / alpha); at the last look it answers ``predict_decision``."""
    looks = options.settled(predict=True).family().looks(n_max)
    level = math.log(2 * (len(p) - 1) / alpha)
    evidence = np.vectorize(cache(lambda top, second: pair_log_evidence(int(top), int(second))))
    law, used, other, zero = np.ones((1,) * (len(p) - 1)), 0, 0.0, 0.0
    for j, look in enumerate(looks):
        fresh = int(look) - used
        if len(p) == 2:
            law = np.convolve(law, binom.pmf(np.arange(fresh + 1), fresh, p[0]))
        else:
            a, b = np.indices((fresh + 1, fresh + 1))
            step = np.where(a + b <= fresh, multinomial.pmf(np.stack([a, b, fresh - a - b], -1), fresh, p), 0.0)
            law = convolve2d(law, step)
        used = int(look)
        counts = np.stack([*np.indices(law.shape), used - np.indices(law.shape).sum(0)], -1)[..., : len(p)]
        possible = counts.min(-1) >= 0
        if j < len(looks) - 1:
            ranked = np.sort(np.where(possible[..., None], counts, 0), -1)
            stop = possible & (evidence(ranked[..., -1], ranked[..., -2]) >= level)
            answer = counts.argmax(-1)
        else:
            stop = possible
            answer = np.full(law.shape, ABSTAIN)
            for state in zip(*np.nonzero(possible)):
                answer[state] = predict_decision(counts[state], alpha, len(p))
        other += law[stop & (answer != 0) & (answer != ABSTAIN)].sum()
        zero += law[stop & (answer == 0)].sum()
        law = np.where(stop, 0.0, law)
    return float(other), float(zero)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("options", [Adaptive(), Adaptive(bound="looks")], ids=["exact", "looks"])
def test_sequential_predict_is_wrong_at_most_alpha_over_all_paths(alpha, options):
    """The worst case, the top two classes tied (class 0 counts as the top: the limit of its share
    just above the runner-up's), exactly over vote paths: two classes at n = 10,000; three at
    n = 120, tied, all equal, and class 0 just above. Not vacuous: with two classes it errs in more
    than alpha / 5 of the runs."""
    wrong, right = predict_paths(options, 10_000, alpha, (0.5, 0.5))
    assert alpha / 5 < wrong <= alpha and wrong == pytest.approx(right, abs=1e-9)
    for p in ((0.45, 0.45, 0.1), (1 / 3, 1 / 3, 1 / 3), (0.46, 0.44, 0.1)):
        assert predict_paths(options, 120, alpha, p)[0] <= alpha


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_sequential_predict_is_wrong_at_most_alpha_at_a_tie_by_monte_carlo(alpha):
    """The library's coroutine with the top two of ten classes tied, and with two classes, n = 10,000,
    class 0 counting as the top; with two classes its error rate agrees with the exact computation
    within Monte-Carlo error."""
    rng = np.random.default_rng(int(alpha * 1000))
    runs, rates = 1500, {}
    for p in ((0.45, 0.45, *[0.0125] * 8), (0.5, 0.5)):
        wrong = 0
        for _ in range(runs):
            steps = predict_steps(10_000, alpha, len(p), Adaptive())
            try:
                num = next(steps)
                while True:
                    num = steps.send(rng.multinomial(num, p))
            except StopIteration as done:
                wrong += done.value[0] not in (0, ABSTAIN)
        rates[len(p)] = wrong / runs
        assert rates[len(p)] <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    exact = predict_paths(Adaptive(), 10_000, alpha, (0.5, 0.5))[0]
    assert abs(rates[2] - exact) <= 4 * math.sqrt(exact * (1 - exact) / runs)


def test_sequential_predict_decides_clear_images_early():
    rng = np.random.default_rng(5)
    decision, counts = run_bernoulli(predict_steps(10_000, 0.05, 10, Adaptive()), 0.8, rng, classes=10)
    assert decision == 0 and counts.sum() < 100
    decision, counts = run_bernoulli(predict_steps(10_000, 0.05, 10, Adaptive()), 1.0, rng, classes=10)
    assert decision == 0 and counts.sum() == Adaptive().settled(predict=True).step  # unanimous: the first look


def test_predict_decision_is_what_sequential_predict_returned():
    rng = np.random.default_rng(8)
    seen = set()
    for p_top in (0.34, 0.36, 0.4, 0.45, 0.8):
        for _ in range(20):
            decision, counts = run_bernoulli(predict_steps(3000, 0.05, 3, Adaptive()), p_top, rng, classes=3)
            assert predict_decision(counts, 0.05, 3) == decision
            seen.add((decision, counts.sum() == 3000))
    assert {(ABSTAIN, True), (0, True), (0, False)} <= seen  # abstained, decided at n_max, decided early


@pytest.mark.parametrize("bad", [dict(bound="nope"), dict(beta=0.0), dict(radius=-1.0), dict(step=0), dict(growth=1.0),
                                 dict(futility="never"), dict(last=1.0), dict(last=0), dict(rho=0.0),
                                 dict(last=0.8), dict(futility="final"), dict(rho=1.0, bound="looks")])
def test_bad_options_are_refused_by_their_own_name(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        Adaptive(**bad)


@pytest.mark.parametrize("bad", [dict(bound="nope"), dict(futility="never"), dict(beta=1.5), dict(step=0),
                                 dict(radius=-1.0), dict(radius=math.inf), dict(radius="2"), dict(last=1.0),
                                 dict(rho=1.0, bound="looks")])
def test_bad_options_are_argument_errors_naming_their_option(bad):
    """Adaptive is the one validation of its options: the command line shows the flag from the error alone."""
    name = next(iter(bad))
    with pytest.raises(ArgumentError) as refused:
        Adaptive(**bad)
    assert refused.value.argument == name and refused.value.for_flag().startswith(f"--{name} ")


def test_adaptive_sampling_refuses_two_bound_certificates():
    smoothed = SmoothedClassifier(Constant(), Ablation(45), 10, certificate="cor2", device="cpu")
    with pytest.raises(ValueError, match="cor1 only"):
        smoothed.certify(torch.full((1, 28, 28), 0.5), 10, 100, 0.05, sampling="adaptive")


@pytest.mark.parametrize("noise", [Ablation(45), Gaussian(0.25), Lee(0.2)], ids=["ablation", "gaussian", "lee"])
def test_every_certifying_noise_certifies_adaptively(noise):
    smoothed = SmoothedClassifier(Constant(), noise, 10, device="cpu")
    x = torch.full((1, 28, 28), 0.5)
    cert = smoothed.certify(x, 100, 10_000, 0.05, generator(0, 3), sampling="adaptive")
    assert cert.predict == 3 and cert.count == cert.n
    assert cert.n < 10_000 or isinstance(noise, Gaussian)  # L0: stopped at the cap; L2 radii grow up to n_max
    assert cert.radius == noise.radius(cert.p_lower, (28, 28))
    assert cert.radius >= noise.radius(float(clopper_pearson_lower(10_000, 10_000, 0.025)), (28, 28)) - noise.radius_step
