"""Tests of smoothcert.certificates.information (Levine & Feizi 2020, Eq. 20-21)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smoothcert.certificates.information import mutual_information_ablation, mutual_information_lee


def brute_force_pixel_information(kappa: float, levels: int) -> float:
    """I(X_o; Y_o) in bits from the joint table of the supplement's Eq. 2 (X_o uniform on S)."""
    joint = np.full((levels, levels), (1 - kappa) / (levels * (levels - 1)))
    np.fill_diagonal(joint, kappa / levels)
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    positive = joint > 0
    return float((joint[positive] * np.log2(joint[positive] / (px * py)[positive])).sum())


def test_paper_imagenet_example() -> None:
    # Discussion: S = {0..255}, d = 3*224*224, kappa = 0.1 -> about 50590.4 bits; k = 14521 -> 116168 bits
    assert mutual_information_lee(3 * 224 * 224, 0.1) == pytest.approx(50590.4, abs=0.05)
    assert mutual_information_ablation(14521) == 116168
    assert mutual_information_ablation(14521, levels=256) > 2 * mutual_information_lee(3 * 224 * 224, 0.1)


@pytest.mark.parametrize("levels", [2, 3, 5, 16, 256])
def test_eq21_matches_the_joint_distribution(levels: int) -> None:
    d = 37
    for kappa in np.random.default_rng(levels).uniform(0, 1, 8).tolist() + [0.0, 0.3, 1.0]:
        expected = d * brute_force_pixel_information(kappa, levels)
        assert mutual_information_lee(d, kappa, levels) == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("levels", [2, 7, 256])
def test_eq21_edge_cases(levels: int) -> None:
    d = 100
    # kappa = 1: every pixel kept, full information, the same as ablation keeping all d pixels
    assert mutual_information_lee(d, 1.0, levels) == pytest.approx(d * math.log2(levels), rel=1e-12)
    assert mutual_information_lee(d, 1.0, levels) == pytest.approx(mutual_information_ablation(d, levels), rel=1e-12)
    # kappa = 1/|S|: Y_o is uniform whatever X_o is -> no information; it is the minimum
    assert mutual_information_lee(d, 1 / levels, levels) == pytest.approx(0.0, abs=1e-9)
    grid = np.linspace(0, 1, 201)
    assert min(mutual_information_lee(d, float(kappa), levels) for kappa in grid) >= -1e-12
    # kappa = 0: Y_o is never X_o, which still reveals log2(|S| / (|S| - 1)) bits per pixel
    assert mutual_information_lee(d, 0.0, levels) == pytest.approx(d * math.log2(levels / (levels - 1)), rel=1e-12)
    if levels > 2:  # (|S|-1)/|S| is not the uninformative point
        assert mutual_information_lee(d, (levels - 1) / levels, levels) > 1.0


def test_eq20_is_linear_in_k() -> None:
    assert mutual_information_ablation(0) == 0
    assert mutual_information_ablation(45, levels=2) == 45
    assert mutual_information_ablation(10, levels=8) == pytest.approx(30.0)


@pytest.mark.parametrize("kappa", [-0.1, 1.1, float("nan"), "a", None])
def test_bad_kappa(kappa) -> None:
    with pytest.raises(ValueError, match="kappa"):
        mutual_information_lee(10, kappa)


@pytest.mark.parametrize("levels", [1, 0, -3, 2.5])
def test_bad_levels(levels) -> None:
    with pytest.raises(ValueError, match="levels"):
        mutual_information_lee(10, 0.5, levels)
    with pytest.raises(ValueError, match="levels"):
        mutual_information_ablation(10, levels)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="d must"):
        mutual_information_lee(-1, 0.5)
    with pytest.raises(ValueError, match="k must"):
        mutual_information_ablation(-2)
    with pytest.raises(ValueError, match="k must"):
        mutual_information_ablation(3.5)
