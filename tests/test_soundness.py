"""Certificates against exhaustive search and attacks where p can be computed exactly (tiny d).

On 3x3 binary images every ablation T (a k-subset of the 9 pixels) can be enumerated, so the
smoothed classifier's class probabilities are exact. Theorem 1 then says that no image within
the certified radius changes the smoothed prediction: checked here over *every* image at that
Hamming distance, and the attacks, run against the exact smoothed classifier, never succeed
inside the radius.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert.attacks import ModelOracle, Pointwise, SparseRS
from smoothcert.certificates import radius_cor1, radius_cor2
from smoothcert.noises import ablate

D, SIDE = 9, 3
ALL_IMAGES = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D))).view(-1, 1, SIDE, SIDE)


class ExactSmoothed(nn.Module):
    """Exact vote counts of ``base`` over all k-subsets of pixels (multichannel NULL encoding)."""

    def __init__(self, base: nn.Module, k: int) -> None:
        super().__init__()
        self.base = base
        subsets = list(itertools.combinations(range(D), k))
        self.keep = torch.zeros(len(subsets), D, dtype=torch.bool)
        for row, subset in enumerate(subsets):
            self.keep[row, list(subset)] = True

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = len(self.keep)
        ablated = ablate(x.repeat_interleave(t, 0), self.keep.repeat(len(x), 1))
        votes = self.base(ablated).argmax(1).view(len(x), t)
        classes = self.base(ablated[:1]).shape[1]
        return torch.stack([(votes == c).sum(1) for c in range(classes)], dim=1).float()


class KeptMajority(nn.Module):
    """Class 1 if most kept pixels are bright, else 0: a classifier whose certificate is tight."""

    def forward(self, ablated: torch.Tensor) -> torch.Tensor:
        bright, dark = ablated[:, 0].flatten(1).sum(1), ablated[:, 1].flatten(1).sum(1)
        return torch.stack([dark - bright + 0.5, bright - dark - 0.5], dim=1)


def _random_base(seed: int) -> nn.Module:
    """A random linear vote over the kept pixels (bias-free, so the kept pixels decide the class)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * D, 3, bias=False))


def _exact(smoothed: ExactSmoothed, x: torch.Tensor) -> np.ndarray:
    """Exact class probabilities, rounded one ulp down so the float never exceeds the rational."""
    counts = smoothed(x).numpy()
    return np.nextafter(counts / len(smoothed.keep), 0)


def _hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


@pytest.mark.parametrize(("base_seed", "k"), [(0, 1), (2, 1), (0, 2), (2, 2), (4, 2), (None, 1), (None, 2)])
def test_no_image_within_the_certified_radius_changes_the_exact_prediction(base_seed, k):
    base = KeptMajority() if base_seed is None else _random_base(base_seed)
    smoothed = ExactSmoothed(base, k)
    probs = _exact(smoothed, ALL_IMAGES)
    top = probs.argmax(1)
    second = np.sort(probs, 1)[:, -2]
    strict = probs.max(1) > second  # images whose exact prediction is not a tie
    r1 = radius_cor1(probs.max(1), D, k)
    r2 = radius_cor2(probs.max(1), second, D, k)
    checked = 0
    for i in range(len(ALL_IMAGES)):
        for radius in (r1[i], r2[i]):
            if math.isnan(radius) or radius < 1:
                continue
            neighbours = [j for j in range(len(ALL_IMAGES)) if _hamming(i, j) <= radius]
            # every image within the radius keeps the class, strictly ahead of all others
            assert (top[neighbours] == top[i]).all() and strict[neighbours].all(), (i, radius)
            checked += len(neighbours)
    assert len(np.unique(top)) > 1 and checked > 0  # not vacuous: several classes, certified radii >= 1


def test_the_certificate_is_tight_for_the_kept_majority_classifier():
    # k = 1: p_0(all dark) = 1, Delta(rho) = rho / 9, so Corollary 1 certifies rho = 4, and 5 bright
    # pixels give p_1 = 5/9 > 1/2: the attacks must find exactly 5
    oracle = ModelOracle(ExactSmoothed(KeptMajority(), 1), 2, device="cpu")
    x = torch.zeros(1, SIDE, SIDE)
    assert radius_cor1(_exact(oracle.model, x[None])[0, 0], D, 1) == 4
    for attack in (Pointwise(restarts=3), SparseRS(max_queries=200)):
        result = attack(oracle, x, 0)
        assert result.success and result.l0 == 5


@pytest.mark.parametrize(("base_seed", "k"), [(0, 1), (2, 2), (0, 2), (None, 2)])
def test_attacks_on_the_exact_smoothed_classifier_stay_outside_the_radius(base_seed, k):
    base = KeptMajority() if base_seed is None else _random_base(base_seed)
    oracle = ModelOracle(ExactSmoothed(base, k), 3 if base_seed is not None else 2, device="cpu")
    probs = _exact(oracle.model, ALL_IMAGES)
    top = probs.argmax(1)
    radius = radius_cor1(probs.max(1), D, k)
    # the exact smallest number of pixels to change (to 0 or 1, the values both attacks write) for
    # another prediction, by exhaustive search over all 2^9 binary images
    distance = np.array([[_hamming(i, j) for j in range(len(ALL_IMAGES))] for i in range(len(ALL_IMAGES))])
    minimal = np.where(top[None, :] != top[:, None], distance, D + 1).min(1)
    candidates = np.flatnonzero((radius >= 1) & (minimal <= D))
    assert len(candidates) >= 4  # certified images that can be broken: the test has something to check
    successes = 0
    for i in candidates[:: max(1, len(candidates) // 4)][:4]:
        assert minimal[i] > radius[i]  # the certificate holds against the exhaustive search
        for attack in (Pointwise(restarts=2, max_queries=300), SparseRS(max_queries=100)):
            result = attack(oracle, ALL_IMAGES[i], int(top[i]), key=(0, int(i)))
            if result.success:
                assert result.l0 >= minimal[i] > radius[i]
                assert int(oracle(result.x_adv[None])[0]) != top[i]
                successes += 1
    assert successes >= 4  # the attacks did break certified images, each outside its radius
