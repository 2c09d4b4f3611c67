import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert.certificates import (
    clopper_pearson_lower,
    max_certifiable_radius,
    radius_cor1,
)
from smoothcert.noises import Ablation
from smoothcert.classifiers.smoothed import ABSTAIN, SmoothedClassifier


class Constant(nn.Module):
    """A base classifier that always answers ``label``."""

    def __init__(self, label: int, num_classes: int = 10) -> None:
        super().__init__()
        self.label, self.num_classes = label, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.num_classes)
        out[:, self.label] = 1.0
        return out


class KeptPixel(nn.Module):
    """Class 1 if the first pixel is kept, else class 0 (multichannel: channels sum to 1 if kept)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = (x[:, :, 0, 0].sum(1) > 0.5).long()
        return nn.functional.one_hot(kept, 2).float()


def test_sample_counts_votes_with_bincount():
    smoothed = SmoothedClassifier(Constant(3), Ablation(45), 10, batch_size=300, device="cpu")
    counts = smoothed.sample(torch.rand(1, 28, 28), 1000, torch.Generator().manual_seed(0))
    assert counts.tolist() == [0, 0, 0, 1000, 0, 0, 0, 0, 0, 0]


def test_sample_frequency_matches_exact_probability():
    # d = 4, k = 2: the first pixel is kept in C(3,1)/C(4,2) = 1/2 of the ablations
    smoothed = SmoothedClassifier(KeptPixel(), Ablation(2), 2, batch_size=777, device="cpu")
    counts = smoothed.sample(torch.rand(1, 2, 2), 20_000, torch.Generator().manual_seed(1))
    assert counts.sum() == 20_000
    assert abs(counts[1] / 20_000 - 0.5) < 4 * math.sqrt(0.25 / 20_000)


def test_constant_classifier_gets_the_maximal_radius():
    """Issue test (d): all n votes for one class give p_lower = alpha^(1/n) and the largest radius."""
    n, alpha = 10_000, 0.05
    smoothed = SmoothedClassifier(Constant(7), Ablation(45), 10, device="cpu")
    cert = smoothed.certify(torch.rand(1, 28, 28), 100, n, alpha, torch.Generator().manual_seed(2))
    assert cert.predict == 7 and cert.count == n and cert.n == n
    assert cert.p_lower == pytest.approx(alpha ** (1 / n), rel=1e-12)
    assert cert.radius == max_certifiable_radius(n, alpha, 784, 45) == 11  # notes: n=10,000, alpha=0.05 -> 11


def test_even_split_abstains_in_predict_and_certify():
    smoothed = SmoothedClassifier(KeptPixel(), Ablation(2), 2, device="cpu")
    x = torch.rand(1, 2, 2)
    g = torch.Generator().manual_seed(3)
    assert smoothed.predict(x, 2000, 0.05, g) == ABSTAIN
    cert = smoothed.certify(x, 100, 2000, 0.05, g)
    assert cert.predict == ABSTAIN and math.isnan(cert.radius) and cert.p_lower < 0.5


def test_certify_uses_fresh_samples_and_matches_formula():
    """CERTIFY's p_lower is the Clopper-Pearson bound of the n estimation votes and the radius
    Corollary 1 of it; the n0 selection votes are not counted."""
    smoothed = SmoothedClassifier(KeptPixel(), Ablation(3), 2, device="cpu")
    x = torch.rand(1, 2, 2)  # d=4, k=3: first pixel kept with probability 3/4
    cert = smoothed.certify(x, 50, 4000, 0.05, torch.Generator().manual_seed(4))
    counts = smoothed.sample(x, 4000, _after_selection(seed=4, n0=50, smoothed=smoothed, x=x))
    assert cert.count == counts[1]
    assert cert.p_lower == pytest.approx(float(clopper_pearson_lower(counts[1], 4000, 0.05)))
    expected = radius_cor1(cert.p_lower, 4, 3)
    assert (math.isnan(cert.radius) and np.isnan(expected)) or cert.radius == expected


def _after_selection(seed, n0, smoothed, x):
    g = torch.Generator().manual_seed(seed)
    smoothed.sample(x, n0, g)
    return g


def test_predict_returns_top_class_when_clear():
    smoothed = SmoothedClassifier(KeptPixel(), Ablation(4), 2, device="cpu")  # k = d: pixel always kept
    assert smoothed.predict(torch.rand(1, 2, 2), 100, 0.001, torch.Generator().manual_seed(5)) == 1


def test_predict_from_counts_binomial_test():
    decide = SmoothedClassifier.predict_from_counts
    assert decide(np.array([0, 60, 40]), 0.05) == ABSTAIN  # p-value 0.057
    assert decide(np.array([0, 62, 38]), 0.05) == 1  # p-value 0.021
    assert decide(np.array([5, 0, 0]), 0.1) == 0


def test_same_seed_same_certificate():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Flatten(), nn.Linear(2 * 28 * 28, 10))
    smoothed = SmoothedClassifier(base, Ablation(45), 10, batch_size=256, device="cpu")
    x = torch.rand(1, 28, 28)
    a = smoothed.certify(x, 100, 1000, 0.05, torch.Generator().manual_seed(6))
    b = smoothed.certify(x, 100, 1000, 0.05, torch.Generator().manual_seed(6))
    assert a == b or (a.predict == b.predict == ABSTAIN and a.count == b.count)


@pytest.mark.parametrize(
    "x, message",
    [(torch.rand(28, 28), "one image"), (torch.rand(2, 2, 1, 28, 28), "one image"), ([torch.rand(28, 28)], "one image"),
     ([torch.rand(1, 28, 28), torch.rand(1, 8, 8)], "one shape"), (torch.full((1, 28, 28), 1.5), r"\[0, 1\]"), (torch.full((1, 28, 28), float("nan")), r"\[0, 1\]")],
)
def test_bad_images_rejected(x, message):
    smoothed = SmoothedClassifier(Constant(0), Ablation(45), 10, device="cpu")
    with pytest.raises(ValueError, match=message):
        smoothed.certify(x, 10, 10, 0.05)


def test_bad_parameters_rejected():
    with pytest.raises(ValueError, match="alpha"):
        SmoothedClassifier(Constant(0), Ablation(45), 10, device="cpu").certify(torch.rand(1, 28, 28), 10, 10, 1.5)
    with pytest.raises(ValueError, match="number of samples"):
        SmoothedClassifier(Constant(0), Ablation(45), 10, device="cpu").sample(torch.rand(1, 28, 28), 0)
    with pytest.raises(ValueError, match="batch_size"):
        SmoothedClassifier(Constant(0), Ablation(45), 10, batch_size=0, device="cpu")
    with pytest.raises(ValueError, match="certificate"):
        SmoothedClassifier(Constant(0), Ablation(45), 10, certificate="cor9", device="cpu")
    with pytest.raises(ValueError, match="k=45 exceeds"):
        SmoothedClassifier(Constant(0), Ablation(45), 10, device="cpu").sample(torch.rand(1, 4, 4), 10)


def test_shared_masks_are_refused_for_certification():
    """One mask per batch (a training choice) would make the votes dependent: Clopper-Pearson fails."""
    with pytest.raises(ValueError, match="independent"):
        SmoothedClassifier(Constant(0), Ablation(45, per_batch=True), 10, device="cpu")
