"""Isotropic Gaussian noise (Cohen, Rosenfeld & Kolter 2019), certified in L2 by
:mod:`smoothcert.gaussian`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..gaussian import (
    GAUSSIAN_CERTIFICATES,
    certify_gaussian,
    check_sigma,
    radius_cohen,
)
from .sampled import Sampled


@dataclass(frozen=True)
class Gaussian(Sampled):
    """Isotropic Gaussian noise ``x + N(0, sigma^2 I)`` (Cohen, Rosenfeld & Kolter 2019).

    Added in [0, 1] pixel space and not clamped, as in Cohen et al.: any input normalisation is
    the model's first layer, so certified L2 radii are in pixel units.  Every sample gets its own
    noise, drawn from ``generator``.
    """

    sigma: float
    kind: ClassVar[str] = "gaussian"
    # certifies L2 radii by Cohen et al.'s CERTIFY (``cohen``) or Theorem 1 with p_B (``two-class``)
    certificates: ClassVar[tuple[str, ...]] = GAUSSIAN_CERTIFICATES

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_sigma(self.sigma))

    def channels(self, data_channels: int) -> int:
        return data_channels

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "cohen"
    ) -> tuple[float, float]:
        """(p_lower, L2 radius) of class ``top`` from vote ``counts``; radius NaN means abstain.
        ``image_size`` is unused: the L2 radius does not depend on the dimension."""
        _, p_lower, radius = certify_gaussian(counts, int(counts.sum()), alpha, self.sigma, certificate, selected=top)
        return float(p_lower), float(radius)

    @property
    def radius_step(self) -> float:
        """The grid (sigma / 4) on which sequential CERTIFY decides that a larger L2 radius is out
        of reach; certified radii themselves are not rounded."""
        return self.sigma / 4

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float:
        """Cohen et al.'s radius ``sigma * Phi^-1(p_lower)`` (NaN: abstain); ``image_size`` is unused."""
        return float(radius_cohen(p_lower, self.sigma))

    def config(self) -> dict[str, Any]:
        return {"noise": self.kind, "sigma": self.sigma}
