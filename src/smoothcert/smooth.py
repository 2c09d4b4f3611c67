"""The smoothed classifier g(x) = argmax_c P(f(noise(x)) = c) and its PREDICT / CERTIFY.

Follows Cohen, Rosenfeld & Kolter (2019), used unchanged by Levine & Feizi (2020, Results):
CERTIFY picks the top class from ``n0`` samples and bounds its probability with ``n`` fresh
samples; PREDICT abstains unless a binomial test separates the top two classes. The noise object
(ablation, ...) supplies both the sampling and the matching certificate, so this class does not
know which threat model it certifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn

from .certificates import check_alpha
from .checkpoint import load_checkpoint, noise_from_config
from .noises import Noise
from .seeding import resolve_device

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Outcome of CERTIFY for one image: ``predict`` is ``ABSTAIN`` (-1) with radius NaN when the
    bound on the top class is too weak; ``count`` is that class's votes among ``n``."""

    predict: int
    count: int
    n: int
    p_lower: float
    radius: float


def check_count(name: str, value: int) -> int:
    """``value`` as an int; ValueError unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_image(x: torch.Tensor) -> torch.Tensor:
    """``x``; ValueError unless it is one (C, H, W) image with finite pixels in [0, 1]."""
    if x.dim() != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("pixel values must lie in [0, 1]")
    return x


class SmoothedClassifier:
    """A base classifier ``base`` smoothed by ``noise``.

    ``batch_size`` bounds how many noisy copies go through the model at once (memory cap);
    ``certificate`` names the certificate the noise computes (ablation: ``cor1``, ``cor2``, ``jia``;
    Gaussian: ``cohen``, ``two-class``); ``None`` takes the noise's first, the papers' choice.
    """

    def __init__(
        self,
        base: nn.Module,
        noise: Noise,
        num_classes: int,
        *,
        certificate: str | None = None,
        batch_size: int = 1000,
        device: str | torch.device = "auto",
    ) -> None:
        self.num_classes = check_count("num_classes", num_classes)
        self.batch_size = check_count("batch_size", batch_size)
        self.device = resolve_device(device)
        self.base = base.to(self.device).eval()
        self.noise = noise
        if getattr(noise, "per_batch", False):
            raise ValueError("certification needs an independent noise draw per sample: use per_batch=False")
        if certificate is None and not noise.certificates:
            noise.check_certificate(certificate)  # raises: this noise certifies nothing
        certificate = noise.certificates[0] if certificate is None else certificate
        noise.check_certificate(certificate)
        self.certificate = certificate

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> SmoothedClassifier:
        """The smoothed classifier of a ``smoothcert train`` checkpoint (model, noise, classes)."""
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], **kwargs)


    @torch.inference_mode()
    def sample(self, x: torch.Tensor, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Votes of the base classifier on ``num`` noisy copies of ``x``: an array (num_classes,)."""
        x = check_image(x).to(self.device)
        counts = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
        remaining = check_count("number of samples", num)
        while remaining > 0:
            b = min(self.batch_size, remaining)
            labels = self.base(self.noise(x.expand(b, *x.shape), generator)).argmax(1)
            counts += torch.bincount(labels, minlength=self.num_classes)
            remaining -= b
        return counts.cpu().numpy()

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: torch.Generator | None = None) -> int:
        """PREDICT: the top class of ``n`` noisy votes, or ``ABSTAIN`` (see ``predict_from_counts``)."""
        check_alpha(alpha)
        return self.predict_from_counts(self.sample(x, n, generator), alpha)

    @staticmethod
    def predict_from_counts(counts: np.ndarray, alpha: float) -> int:
        """The top class, or ``ABSTAIN`` if the two-sided binomial test of the top two counts has
        p-value above ``alpha`` (then the probability of returning a wrong class is at most ``alpha``)."""
        check_alpha(alpha)
        second, top = np.argsort(counts, kind="stable")[-2:]
        n_a, n_b = int(counts[top]), int(counts[second])
        if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
            return ABSTAIN
        return int(top)

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: torch.Generator | None = None
    ) -> Certificate:
        """CERTIFY: select the top class on ``n0`` samples, bound its probability on ``n`` fresh
        samples at level ``alpha``, and return the certified radius of the noise's threat model."""
        check_alpha(alpha)
        top = int(self.sample(x, n0, generator).argmax())
        counts = self.sample(x, n, generator)
        p_lower, radius = self.noise.certify(counts, top, alpha, tuple(x.shape[-2:]), self.certificate)
        if np.isnan(radius):
            return Certificate(ABSTAIN, int(counts[top]), n, float(p_lower), float("nan"))
        return Certificate(top, int(counts[top]), n, float(p_lower), float(radius))
