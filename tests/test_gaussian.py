import math

import numpy as np
import pytest
import torch
from scipy.stats import beta, norm
from statsmodels.stats.proportion import proportion_confint
from torch import nn

from smoothcert.noises import noise_from_config
from smoothcert.certificates.gaussian import (
    GAUSSIAN_CERTIFICATES,
    certify_gaussian,
    max_gaussian_radius,
    radius_cohen,
    radius_lipschitz,
    radius_lp,
    radius_two_class,
)
from smoothcert.noises import NOISES, Ablation, Gaussian, make_noise
from smoothcert.classifiers.smoothed import SmoothedClassifier


class Constant(nn.Module):
    """A base classifier that always answers ``label``."""

    def __init__(self, label: int, num_classes: int = 10) -> None:
        super().__init__()
        self.label, self.num_classes = label, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), self.label), self.num_classes).float()


class Linear(nn.Module):
    """f(x) = 1 if w.x + b > 0 else 0, on flattened inputs."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w.flatten(), b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive = (x.flatten(1) @ self.w + self.b > 0).long()
        return nn.functional.one_hot(positive, 2).float()


# ----------------------------------------------------------------------------- radius formulas


def test_radius_cohen_matches_scipy_and_abstains_at_or_below_half():
    p = np.array([0.0, 0.3, 0.5, 0.5 + 1e-12, 0.6, 0.9, 0.999, 1.0])
    r = radius_cohen(p, 0.25)
    assert np.isnan(r[:3]).all()  # p <= 0.5: Theorem 1 certifies the empty ball
    for pi, ri in zip(p[3:7], r[3:7]):
        assert ri == pytest.approx(0.25 * norm.ppf(pi), rel=1e-12)
        assert ri > 0
    assert r[-1] == math.inf
    assert radius_cohen(0.84134474606854293, 0.5) == pytest.approx(0.5, rel=1e-9)  # Phi(1)


def test_two_class_formula_and_cohen_special_case():
    pa = np.array([0.7, 0.9, 0.55, 0.4, 0.3, 1.0])
    pb = np.array([0.2, 0.05, 0.45, 0.4, 0.5, 0.0])
    r = radius_two_class(pa, pb, 0.5)
    expected = 0.25 * (norm.ppf(pa[:3]) - norm.ppf(pb[:3]))
    np.testing.assert_allclose(r[:3], expected, rtol=1e-12)
    assert np.isnan(r[3:5]).all()  # p_A <= p_B
    assert r[5] == math.inf
    # p_B = 1 - p_A reduces Theorem 1 to CERTIFY's sigma * Phi^-1(p_A)
    q = np.array([0.51, 0.7, 0.99])
    np.testing.assert_allclose(radius_two_class(q, 1 - q, 0.3), radius_cohen(q, 0.3), rtol=1e-9)
    # equal bounds at the ends: no radius, no warning
    with np.errstate(all="raise"):
        assert np.isnan(radius_two_class([0.0, 1.0], [0.0, 1.0], 1.0)).all()


def test_two_class_is_lipschitz_view_with_constant_one_over_sigma():
    """Lecture: Phi^-1 of the smoothed scores is 1/sigma-Lipschitz; Theorem 0 on them gives Theorem 1."""
    pa, pb, sigma = 0.8, 0.15, 0.7
    by_theorem0 = (norm.ppf(pa) - norm.ppf(pb)) / (2 * (1 / sigma))
    assert radius_two_class(pa, pb, sigma) == pytest.approx(by_theorem0, rel=1e-12)


def test_lp_radius_reduces_to_l2_at_p2_and_scales_with_dimension():
    pa, pb = np.array([0.9, 0.6, 0.3]), np.array([0.05, 0.3, 0.4])
    np.testing.assert_array_equal(radius_lp(pa, pb, 0.5, 784, 2), radius_two_class(pa, pb, 0.5))
    d, p, sigma = 3072, 4.0, 0.25
    r2 = radius_two_class(0.9, 0.05, sigma)
    r4 = radius_lp(0.9, 0.05, sigma, d, p)
    assert r4 == pytest.approx(sigma / (2 * d**0.25) * (norm.ppf(0.9) - norm.ppf(0.05)), rel=1e-12)
    assert radius_lp(0.9, 0.05, sigma, d, math.inf) == pytest.approx(r2 / math.sqrt(d), rel=1e-12)
    # worst case of the norm inequality: equal entries with ||delta||_p = r_p have ||delta||_2 = r_2
    delta = np.full(d, r4 * d ** (-1 / p))
    assert np.sum(delta**p) ** (1 / p) == pytest.approx(r4, rel=1e-9)
    assert np.linalg.norm(delta) == pytest.approx(r2, rel=1e-9)
    assert np.isnan(radius_lp(0.3, 0.4, sigma, d, p))


def test_lipschitz_radius_on_a_piecewise_linear_classifier():
    """f(x) = (clip(1/2 + a x), 1 - clip(1/2 + a x)) on R: each score has slope a, so the score
    vector is a*sqrt(2)-Lipschitz in L2; at x0 with 1/2 + a x0 <= 1, P_A - P_B = 2 a x0 and
    Theorem 0 gives 2 a x0 / (2 a sqrt(2)) = x0 / sqrt(2)."""
    a, x0 = 0.8, 0.4

    def scores(x):
        s = np.clip(0.5 + a * x, 0.0, 1.0)
        return np.stack([s, 1.0 - s])

    pa, pb = scores(x0)
    eps = radius_lipschitz(pa, pb, a * math.sqrt(2))
    assert eps == pytest.approx(x0 / math.sqrt(2), rel=1e-12)
    shifted = scores(x0 + np.linspace(-eps, eps, 1001))
    assert (shifted[0] >= shifted[1]).all()  # class A keeps the top score within the radius
    assert eps <= x0  # the true distance to the boundary x = 0
    np.testing.assert_allclose(radius_lipschitz([0.9, 0.5], [0.1, 0.5], 2.0), [0.2, np.nan])


def test_max_gaussian_radius():
    assert max_gaussian_radius(100_000, 0.001, 1.0) == pytest.approx(norm.ppf(0.001 ** (1 / 100_000)), rel=1e-9)
    assert max_gaussian_radius(100_000, 0.001, 1.0) == pytest.approx(3.81, abs=0.005)  # Cohen et al.'s 3.81 sigma
    assert max_gaussian_radius(10_000, 0.05, 0.5) == pytest.approx(0.5 * norm.ppf(0.05**1e-4), rel=1e-9)
    assert np.isnan(max_gaussian_radius(1, 0.05, 1.0))  # alpha^(1/1) = 0.05 < 0.5


# ----------------------------------------------------------------------------- linear classifier


def test_cohen_radius_with_exact_probability_is_the_distance_to_a_linear_boundary():
    """f(x) = sign(w.x + b): w.(x + eps) + b ~ N(w.x + b, sigma^2 ||w||^2), so the smoothed top
    class has probability Phi(|w.x + b| / (sigma ||w||)) and Cohen's radius is exactly the L2
    distance |w.x + b| / ||w|| to the decision boundary (Theorem 1 is tight for half-spaces)."""
    rng = np.random.default_rng(0)
    w, b, sigma = rng.normal(size=20), 0.3, 0.4
    xs = rng.normal(size=(50, 20)) * 0.1
    margin = np.abs(xs @ w + b)
    distance = margin / np.linalg.norm(w)
    p = norm.cdf(margin / (sigma * np.linalg.norm(w)))
    keep = p < 1 - 1e-12  # Phi^-1 is ill-conditioned next to 1
    np.testing.assert_allclose(radius_cohen(p[keep], sigma), distance[keep], rtol=1e-7)


def test_sampled_probability_and_certificate_of_a_linear_classifier():
    w, b, sigma = torch.tensor([[0.5, -1.0], [2.0, 0.0]]), -0.3, 0.5  # one 1x2x2 image
    x = torch.tensor([[[0.8, 0.1], [0.4, 0.6]]])
    score = float((x.flatten() * w.flatten()).sum()) + b
    distance = abs(score) / float(w.norm())
    exact = norm.cdf(abs(score) / (sigma * float(w.norm())))
    smoothed = SmoothedClassifier(Linear(w, b), Gaussian(sigma), 2, certificate="cohen", device="cpu")
    n = 20_000
    counts = smoothed.sample(x, n, torch.Generator().manual_seed(0))
    assert abs(counts[int(score > 0)] / n - exact) < 4 * math.sqrt(exact * (1 - exact) / n)
    cert = smoothed.certify(x, 100, n, 0.001, torch.Generator().manual_seed(1))
    assert cert.predict == int(score > 0)
    assert 0.8 * distance < cert.radius < distance  # sound, and close to the tight radius


# ----------------------------------------------------------------------------- certify from counts


def test_certify_gaussian_cohen_against_statsmodels():
    counts = np.array([[0, 9500, 300, 200], [10, 480, 500, 10], [1000, 0, 0, 0]])
    predict, p_lower, radius = certify_gaussian(counts, counts.sum(1), 0.01, 0.25, selected=[1, 2, 0])
    for i, (top, count) in enumerate([(1, 9500), (2, 500), (0, 1000)]):
        n = counts[i].sum()
        expected = proportion_confint(count, n, alpha=0.02, method="beta")[0]
        assert p_lower[i] == pytest.approx(expected, rel=1e-9)
    assert radius[0] == pytest.approx(0.25 * norm.ppf(p_lower[0]), rel=1e-12)
    assert predict.tolist() == [1, -1, 0]  # 500/1000 gives p_lower < 0.5
    assert np.isnan(radius[1])
    assert radius[2] == pytest.approx(0.25 * norm.ppf(0.01 ** (1 / 1000)), rel=1e-9)


def test_certify_gaussian_edge_counts_and_unselected_argmax():
    # count 0 of the selected class: p_lower = 0, abstain
    predict, p_lower, radius = certify_gaussian([0, 100], 100, 0.05, 1.0, selected=0)
    assert (predict, p_lower) == (-1, 0.0) and np.isnan(radius)
    # all n votes: p_lower = alpha^(1/n), the largest radius
    predict, p_lower, radius = certify_gaussian([0, 100], 100, 0.05, 1.0, selected=1)
    assert predict == 1 and p_lower == pytest.approx(0.05 ** (1 / 100), rel=1e-12)
    assert radius == pytest.approx(max_gaussian_radius(100, 0.05, 1.0), rel=1e-9)
    # selected=None certifies the argmax at level alpha / C (Bonferroni over the classes)
    predict, p_lower, _ = certify_gaussian([[5, 90, 5]], 100, 0.05, 1.0)
    assert predict.tolist() == [1]
    assert p_lower[0] == pytest.approx(beta.ppf(0.05 / 3, 90, 11), rel=1e-12)


def test_certify_gaussian_two_class():
    counts = np.array([[850, 100, 50], [400, 350, 250]])
    alpha, sigma = 0.05, 0.5
    predict, p_lower, radius = certify_gaussian(counts, 1000, alpha, sigma, "two-class", selected=[0, 0])
    # selected class at level alpha / C from below, the others at alpha / C from above
    pa = beta.ppf(alpha / 3, 850, 151)
    pb = min(beta.ppf(1 - alpha / 3, 101, 900), 1 - pa)
    assert p_lower[0] == pytest.approx(pa, rel=1e-9)
    assert radius[0] == pytest.approx(sigma / 2 * (norm.ppf(pa) - norm.ppf(pb)), rel=1e-9)
    # 400 vs 350 votes: p_B's upper bound is not below p_A's lower bound
    assert predict.tolist() == [0, -1] and np.isnan(radius[1])
    # with the clipping p_B <= 1 - p_A, two-class is never weaker than Cohen at the same level
    _, _, cohen = certify_gaussian(counts[:1], 1000, alpha / 3, sigma, "cohen", selected=[0])
    assert radius[0] >= cohen[0] - 1e-12


def test_certify_gaussian_bad_inputs():
    with pytest.raises(ValueError, match="certificate"):
        certify_gaussian([1, 2], 3, 0.05, 1.0, "cor1")
    with pytest.raises(ValueError, match="sum to n"):
        certify_gaussian([1, 2], 4, 0.05, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        certify_gaussian([1, 2], 3, 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        certify_gaussian([1, 2], 3, 0.05, 0.0)
    with pytest.raises(ValueError, match="selected"):
        certify_gaussian([1, 2], 3, 0.05, 1.0, selected=2)
    with pytest.raises(ValueError, match="C >= 2"):
        certify_gaussian([3], 3, 0.05, 1.0, "two-class")
    with pytest.raises(ValueError, match="counts"):
        certify_gaussian([-1, 4], 3, 0.05, 1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: radius_cohen(0.9, 0.0), "sigma"),
        (lambda: radius_cohen(0.9, -1.0), "sigma"),
        (lambda: radius_cohen(0.9, math.inf), "sigma"),
        (lambda: radius_cohen(0.9, "big"), "sigma"),
        (lambda: radius_cohen(1.2, 1.0), "p_lower"),
        (lambda: radius_cohen(math.nan, 1.0), "p_lower"),
        (lambda: radius_two_class(0.9, -0.1, 1.0), "p_upper_b"),
        (lambda: radius_lp(0.9, 0.1, 1.0, 784, 1), "p >= 2"),
        (lambda: radius_lp(0.9, 0.1, 1.0, 784, math.nan), "p >= 2"),
        (lambda: radius_lp(0.9, 0.1, 1.0, 0, 3), "d must be"),
        (lambda: radius_lp(0.9, 0.1, 1.0, 7.5, 3), "d must be"),
        (lambda: radius_lipschitz(0.9, 0.1, 0.0), "Lipschitz"),
        (lambda: radius_lipschitz(1.5, 0.1, 1.0), "p_a"),
        (lambda: max_gaussian_radius(0, 0.05, 1.0), "n must be"),
        (lambda: max_gaussian_radius(100, 0.0, 1.0), "alpha"),
    ],
)
def test_radius_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- the noise object


def test_gaussian_noise_moments_reproducibility_and_no_clamping():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = Gaussian(0.5)
    draws = torch.stack([noise(x, torch.Generator().manual_seed(s)) for s in range(200)])
    eps = draws - x
    m = eps.numel()
    assert abs(float(eps.mean())) < 4 * 0.5 / math.sqrt(m)
    assert float(eps.std()) == pytest.approx(0.5, abs=4 * 0.5 / math.sqrt(2 * m))
    assert draws.min() < 0 and draws.max() > 1  # pixel space, not clamped
    assert torch.equal(noise(x, torch.Generator().manual_seed(7)), noise(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(eps[0, 0], eps[0, 1])  # each image of the batch gets its own noise
    assert noise.channels(3) == 3


def test_gaussian_config_certificates_and_make_noise():
    noise = Gaussian(0.25)
    assert noise.config() == {"noise": "gaussian", "sigma": 0.25}
    assert noise_from_config(noise.config()) == noise
    assert noise.certificates == GAUSSIAN_CERTIFICATES and noise.certificates[0] == "cohen"
    assert Ablation(45).certificates[0] == "cor1" and "certificates" not in Ablation(45).config()
    noise.check_certificate("two-class")
    with pytest.raises(ValueError, match="gaussian"):
        noise.check_certificate("cor1")
    assert "gaussian" in NOISES
    assert make_noise("gaussian", k=None, sigma=0.5) == Gaussian(0.5)  # k is ablation's: None means not given
    with pytest.raises(ValueError, match="k 45 is not a parameter of gaussian noise"):
        make_noise("gaussian", k=45, sigma=0.5)  # given, it is refused rather than ignored
    with pytest.raises(ValueError, match="sigma"):
        make_noise("gaussian")
    for bad in (0, -0.1, math.nan, True, "0.5"):
        with pytest.raises(ValueError, match="sigma"):
            Gaussian(bad)


def test_constant_classifier_reaches_the_maximal_gaussian_radius():
    """All n votes for one class: p_lower = alpha^(1/n) and radius sigma * Phi^-1(alpha^(1/n))."""
    sigma, n, alpha = 0.5, 2000, 0.001
    smoothed = SmoothedClassifier(Constant(3), Gaussian(sigma), 10, certificate="cohen", device="cpu")
    cert = smoothed.certify(torch.rand(1, 6, 6), 50, n, alpha, torch.Generator().manual_seed(0))
    assert cert.predict == 3 and cert.count == n
    assert cert.p_lower == pytest.approx(alpha ** (1 / n), rel=1e-12)
    assert cert.radius == pytest.approx(sigma * norm.ppf(alpha ** (1 / n)), rel=1e-9)


def test_smoothed_classifier_rejects_ablation_certificates_for_gaussian_noise():
    with pytest.raises(ValueError, match="certificate"):
        SmoothedClassifier(Constant(0), Gaussian(0.5), 10, certificate="cor1", device="cpu")
    smoothed = SmoothedClassifier(Constant(0, 2), Gaussian(0.5), 2, certificate="two-class", device="cpu")
    cert = smoothed.certify(torch.rand(1, 4, 4), 10, 500, 0.05, torch.Generator().manual_seed(0))
    assert cert.predict == 0 and cert.radius > 0
