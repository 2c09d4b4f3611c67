"""Isotropic Gaussian noise (Cohen, Rosenfeld & Kolter 2019), certified in L2 by
[`smoothcert.certificates.gaussian`][smoothcert.certificates.gaussian]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..certificates.gaussian import (
    GAUSSIAN_CERTIFICATES,
    certify_gaussian,
    check_sigma,
    radius_cohen,
)
from .base import NoiseContext, ThreatModel, register_noise


@register_noise
@dataclass(frozen=True)
class Gaussian(ThreatModel):
    """Isotropic Gaussian noise ``x + N(0, sigma^2 I)`` (Cohen, Rosenfeld & Kolter 2019).

    Added in [0, 1] pixel space and not clamped, as in Cohen et al.: any input normalisation is
    the model's first layer, so certified L2 radii are in pixel units.  Every sample gets its own
    noise, drawn from ``generator``.

    Args:
        sigma: The noise's standard deviation, in pixel units (certified L2 radii scale with it).
    """

    sigma: float
    kind: ClassVar[str] = "gaussian"
    # certifies L2 radii by Cohen et al.'s CERTIFY (``cohen``) or Theorem 1 with p_B (``two-class``)
    certificates: ClassVar[tuple[str, ...]] = GAUSSIAN_CERTIFICATES
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "sigma": {"type": float, "default": None,
                  "help": "Gaussian noise level in [0, 1] pixel units (--noise gaussian)"},
    }
    denoisable: ClassVar[bool] = True
    denoise_defaults: ClassVar[dict[str, Any]] = {"sigma": 0.25}
    """Salman et al.'s (2020) sigma, unless ``denoise --sigma`` says otherwise."""
    additive: ClassVar[bool] = True
    """The noisy input is x plus noise independent of x (SmoothAdv's PGD needs this)."""

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Gaussian:
        if flags.get("sigma") is None:
            raise ValueError("gaussian noise needs --sigma")
        return cls(flags["sigma"])

    @property
    def margin_scale(self) -> float:
        """sigma / 2: MACER's hinge on (sigma/2)(Phi^-1(p1) - Phi^-1(p2)) acts on the L2 radius (Theorem 1)."""
        return self.sigma / 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_sigma(self.sigma))

    def clean_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself: the base classifier sees images in their own format."""
        return x

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

    def to_config(self) -> dict[str, Any]:
        return {"noise": self.kind, "sigma": self.sigma}
