"""Lee et al. (2019) discrete noise and its L0 certificate (smoothcert.lee), checked against brute-force
enumeration of the noise distribution, a linear program (scipy), every deterministic base classifier
on a tiny input space, and the value Levine & Feizi (2020, Discussion) quote."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.stats import chisquare

from smoothcert.noises import noise_from_config
from smoothcert.cli import main
from smoothcert.certificates.information import mutual_information_lee
from smoothcert.certificates.lee import (
    certify_lee,
    exact_threshold,
    lee_threshold,
    max_certifiable_radius_lee,
    radius_lee,
    region_masses,
)
from smoothcert.noises import Lee, make_noise
from smoothcert.reproductions import reproduce_table7
from smoothcert.classifiers.smoothed import SmoothedClassifier

# (K, kappa): kappa above and below 1/K (the order of the likelihood-ratio regions flips), K = 2 (no
# "neither" values), kappa > 1/2 (the crossing region is the last one)
SETTINGS = [(2, 0.8), (2, 0.3), (3, 0.5), (3, 0.2), (4, 0.1), (4, 0.6), (5, 0.9)]


def _law(x, levels, kappa):
    """Exact P_x(z) for every z in {0..K-1}^d, by enumeration (the noise's definition, one coordinate at a time)."""
    keep, other = Fraction(kappa), (1 - Fraction(kappa)) / (levels - 1)
    space = list(itertools.product(range(levels), repeat=len(x)))
    return space, [math.prod(keep if zi == xi else other for zi, xi in zip(z, x)) for z in space]


def _brute_threshold(p_x, p_x_prime):
    """The p at which min{P_x'(A) : P_x(A) >= p} = 1/2, filling single points z in increasing P_x'/P_x."""
    filled_x = filled_x_prime = Fraction(0)
    for a, b in sorted(zip(p_x, p_x_prime), key=lambda ab: ab[1] / ab[0]):
        if filled_x_prime + b >= Fraction(1, 2):
            return filled_x + (Fraction(1, 2) - filled_x_prime) * a / b
        filled_x, filled_x_prime = filled_x + a, filled_x_prime + b
    raise AssertionError


def test_region_masses_match_enumeration():
    for levels, kappa in SETTINGS:
        for r in range(4):
            x, x_prime = (0,) * r, (1,) * r
            space, law = _law(x, levels, kappa)
            by_t = np.zeros(2 * r + 1)
            for z, prob in zip(space, law):
                t = sum(zi == b for zi, b in zip(z, x_prime)) - sum(zi == a for zi, a in zip(z, x))
                by_t[t + r] += float(prob)
            np.testing.assert_allclose(region_masses(r, levels, kappa), by_t, rtol=1e-12, atol=1e-15)


def test_threshold_equals_brute_force_for_every_x_prime():
    """Every x' in {0..K-1}^d (d <= 3) and every z: the exact threshold of each pair equals ours at r = ||x - x'||_0."""
    agree = total = 0
    for levels, kappa in SETTINGS:
        for d in (1, 2, 3):
            x = tuple(i % levels for i in range(d))
            _, law_x = _law(x, levels, kappa)
            for x_prime in itertools.product(range(levels), repeat=d):
                r = sum(a != b for a, b in zip(x, x_prime))
                _, law_x_prime = _law(x_prime, levels, kappa)
                brute = _brute_threshold(law_x, law_x_prime)
                total += 1
                agree += brute == exact_threshold(r, levels, kappa)
                assert abs(lee_threshold(r, levels, kappa) - float(brute)) < 1e-12
    assert agree == total == sum(k + k**2 + k**3 for k, _ in SETTINGS)  # 429 (x, x') pairs


def test_threshold_is_a_linear_program_optimum():
    """scipy's LP min{P_x'(A) : P_x(A) >= p, 0 <= A <= 1} crosses 1/2 at our threshold."""
    for levels, kappa in SETTINGS:
        x, x_prime = (0, 0), (1, 1)
        _, law_x = _law(x, levels, kappa)
        _, law_x_prime = _law(x_prime, levels, kappa)
        threshold = lee_threshold(2, levels, kappa)
        for p, above in ((threshold - 1e-6, False), (threshold + 1e-6, True)):
            if not 0 <= p <= 1:
                continue
            lp = linprog(np.array(law_x_prime, dtype=float), A_ub=-np.array([law_x], dtype=float), b_ub=[-p],
                         bounds=(0, 1), method="highs")
            assert lp.status == 0 and (lp.fun > 0.5) == above


def test_sound_for_every_deterministic_base_classifier():
    """d = 2, K = 3: for each of the 2^9 sets A of noisy inputs (a base classifier), every x' within the
    certified radius of p = P_x(A) keeps P_x'(A) > 1/2."""
    levels, d = 3, 2
    x = (0, 1)
    points = list(itertools.product(range(levels), repeat=d))
    for kappa in (0.2, 0.5, 0.8):
        _, law_x = _law(x, levels, kappa)
        laws = {xp: _law(xp, levels, kappa)[1] for xp in points}
        for mask in range(2 ** len(points)):
            chosen = [(mask >> i) & 1 for i in range(len(points))]
            p = sum(c * q for c, q in zip(chosen, law_x))
            below = float(p) if Fraction(float(p)) <= p else np.nextafter(float(p), 0)  # a valid lower bound
            radius = radius_lee(below, d, levels, kappa)
            for xp, law in laws.items():
                r = sum(a != b for a, b in zip(x, xp))
                if not np.isnan(radius) and r <= radius:
                    assert sum(c * q for c, q in zip(chosen, law)) > Fraction(1, 2)


def test_radius_equals_brute_force_radius():
    """The largest r with p > (brute-force threshold of every x' within r), for a grid of p."""
    rng = np.random.default_rng(0)
    for levels, kappa in SETTINGS:
        d = 3
        x = (0,) * d
        _, law_x = _law(x, levels, kappa)
        thresholds = [_brute_threshold(law_x, _law((1,) * r + (0,) * (d - r), levels, kappa)[1]) for r in range(d + 1)]
        ps = np.concatenate([rng.uniform(0, 1, 200), [float(t) for t in thresholds], [0.5, 1.0]])
        ours = radius_lee(ps, d, levels, kappa)
        for p, got in zip(ps, ours):
            held = [Fraction(float(p)) > t for t in thresholds]
            expected = (held + [False]).index(False) - 1
            assert (np.isnan(got) and expected < 0) or got == expected


def test_levine_feizi_check_value():
    """Levine & Feizi (2020), Discussion: kappa = 0.1, K = 256: one pixel of robustness needs p = .596."""
    threshold = lee_threshold(1, 256, 0.1)
    assert math.floor(1000 * threshold) / 1000 == 0.596
    kappa = Fraction(0.1)
    assert exact_threshold(1, 256, 0.1) == Fraction(1, 2) + kappa - (1 - kappa) / 255  # 0.59647...
    assert radius_lee(0.596, 150528, 256, 0.1) == 0 and radius_lee(0.597, 150528, 256, 0.1) == 1


def test_thresholds_non_decreasing_in_r_and_radius_in_p():
    for levels, kappa in [*SETTINGS, (256, 0.1), (256, 0.3)]:
        values = [exact_threshold(r, levels, kappa) for r in range(12)]
        assert values[0] == Fraction(1, 2)
        assert all(a <= b for a, b in itertools.pairwise(values))
    p = np.linspace(0, 1, 2001)
    for kappa in (0.1, 0.2, 0.5):
        radius = np.nan_to_num(radius_lee(p, 784, 256, kappa), nan=-1)
        assert np.all(np.diff(radius) >= 0) and radius[-1] > radius[1200]


def test_exact_decision_at_the_threshold():
    """p_lower a float next to the exact threshold: the radius follows the exact comparison."""
    for levels, kappa, r in ((256, 0.1, 3), (3, 0.5, 2), (2, 0.8, 1), (256, 0.2, 2)):
        exact = exact_threshold(r, levels, kappa)
        near = float(exact)
        for p in (np.nextafter(near, 0), near, np.nextafter(near, 1)):
            expected = r if Fraction(float(p)) > exact else r - 1
            got = radius_lee(p, 784, levels, kappa)
            assert (np.isnan(got) and expected < 0) or got == expected


def test_vectorised_capped_and_abstaining():
    p = np.array([[0.3, 0.5, 0.51], [0.9, 0.999, 1.0]])
    radius = radius_lee(p, 784, 256, 0.1)
    assert radius.shape == (2, 3) and np.isnan(radius[0, :2]).all() and radius[0, 2] == 0
    assert [radius_lee(q, 784, 256, 0.1) for q in p.ravel()][3:] == list(radius[1])
    assert radius_lee(1.0, 5, 256, 0.1) == 5  # never beyond d
    cap = max_certifiable_radius_lee(10_000, 0.001, 784, 256, 0.1)
    assert cap == radius_lee(0.001 ** (1 / 10_000), 784, 256, 0.1) and cap > 0


def test_certify_lee_from_counts():
    counts = np.array([[9990, 5, 5], [6000, 4000, 0], [10, 4990, 5000]])
    predict, p_lower, radius = certify_lee(counts, 10_000, 0.001, 784, 256, 0.1, selected=[0, 0, 2])
    assert list(predict[:2]) == [0, 0] and predict[2] == -1 and np.isnan(radius[2])
    np.testing.assert_array_equal(radius, radius_lee(p_lower, 784, 256, 0.1))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: radius_lee(0.9, 784, 256, 1.0), "kappa"),
        (lambda: radius_lee(0.9, 784, 256, 0.0), "kappa"),
        (lambda: radius_lee(0.9, 784, 1, 0.5), "levels"),
        (lambda: radius_lee(1.5, 784, 256, 0.5), "p_lower"),
        (lambda: radius_lee(0.9, 0, 256, 0.5), "d"),
        (lambda: Lee(0.5, 2.5), "levels"),
        (lambda: make_noise("lee"), "--kappa"),
    ],
)
def test_bad_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_noise_law_keep_rate_and_uniform_replacement():
    levels, kappa = 8, 0.3
    x = torch.full((1, 1, 4, 4), 3 / (levels - 1))
    noise = Lee(kappa, levels)
    z = noise(x.expand(20_000, 1, 4, 4), torch.Generator().manual_seed(0))
    values = torch.round(z * (levels - 1)).long().flatten().numpy()
    assert torch.allclose(z * (levels - 1), torch.round(z * (levels - 1)), atol=1e-5)  # on the grid
    counts = np.bincount(values, minlength=levels)
    expected = np.full(levels, (1 - kappa) / (levels - 1)) * values.size
    expected[3] = kappa * values.size
    assert chisquare(counts, expected).pvalue > 1e-3
    # the same test rejects a sampler that can draw the original value when it resamples (keep rate 0.3 + 0.7/8)
    leaky = np.full(levels, (1 - kappa) / levels) * values.size
    leaky[3] += kappa * values.size
    assert chisquare(counts, leaky).pvalue < 1e-6


def test_noise_quantises_and_is_seeded():
    noise = Lee(0.5, 2)
    x = torch.rand(3, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    a = noise(x, torch.Generator().manual_seed(7))
    b = noise(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0} and a.shape == x.shape
    assert noise.channels(3) == 3


def test_config_round_trip_and_smoothed_certify():
    noise = make_noise("lee", kappa=0.2, levels=16)
    assert noise_from_config(noise.config()) == noise == Lee(0.2, 16)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    smoothed = SmoothedClassifier(model, noise, 3, device="cpu")
    assert smoothed.certificate == "lee"
    cert = smoothed.certify(torch.rand(1, 4, 4), 20, 500, 0.05, torch.Generator().manual_seed(0))
    counts_radius = radius_lee(cert.p_lower, 16, 16, 0.2)
    assert (np.isnan(cert.radius) and np.isnan(counts_radius)) or cert.radius == counts_radius
    with pytest.raises(ValueError, match="certificate"):
        SmoothedClassifier(model, noise, 3, certificate="cor1", device="cpu")


def test_train_and_certify_lee_noise_from_the_cli(tmp_path, tiny_npz):
    data = tiny_npz(tmp_path / "tiny.npz", 0, 128, 6)
    model = tmp_path / "model"
    assert main(["train", "--dataset", data, "--model", "mnist_cnn", "--noise", "lee", "--kappa", "0.5", "--levels", "16",
                 "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--out", str(model), "--quiet"]) == 0
    assert json.loads((model / "config.json").read_text())["noise"] == {"noise": "lee", "kappa": 0.5, "levels": 16}
    out = tmp_path / "c.tsv"
    assert main(["certify", "--checkpoint", str(model), "--n0", "10", "--n", "100", "--max", "4", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    header = rows[0]
    for row in rows[1:]:
        values = dict(zip(header, row))
        expected = radius_lee(float(values["p_lower"]), 64, 16, 0.5)
        assert (np.isnan(expected) and values["radius"] == "nan") or float(values["radius"]) == expected



def test_reproduce_table7_prints_both_smoothings_beside_the_paper(tmp_path):
    small = {"epochs": 1, "max_images": 3, "n0": 10, "n": 50, "alpha": 0.05, "device": "cpu", "progress": False}
    text = reproduce_table7(out=tmp_path, kappas=(0.3,), ks=(45,), **small)
    rows = [line for line in text.splitlines() if line.startswith(("| Lee", "| ablation"))]
    assert len(rows) == 2 and all(line.count("|") == 13 for line in rows)
    lee_row, ablation_row = (line.split(" | ") for line in rows)
    assert lee_row[-1].rstrip(" |") == "4" and ablation_row[-1].rstrip(" |") == "8"  # Table 7, MNIST
    assert lee_row[-2] == f"{mutual_information_lee(784, 0.3):,.0f}" and ablation_row[-2] == "360"  # Eq. 21, Eq. 20
    assert lee_row[-3] == f"{max_certifiable_radius_lee(50, 0.05, 784, 256, 0.3):g}"
    assert "Best medians:" in text and (tmp_path / "table7.md").read_text() == text
    # a finished ablation model adds a row, certified beside the checkpoint, not into it
    reused = reproduce_table7(out=tmp_path, kappas=(0.3,), ks=(45,), ablation_checkpoint=tmp_path / "ablation-k45" / "model",
                              **small)
    assert "| ablation k=45 (reused) | 1 |" in reused and (tmp_path / "ablation-reused" / "certify.tsv").exists()
    with pytest.raises(ValueError, match="not trained with ablation"):
        reproduce_table7(out=tmp_path, kappas=(0.3,), ks=(45,), ablation_checkpoint=tmp_path / "lee-kappa0.3" / "model",
                         **small)
