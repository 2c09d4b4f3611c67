"""Discrete-noise L0 smoothing of Lee, Yuan, Chang & Jaakkola (NeurIPS 2019), the baseline of
Levine & Feizi (2020), Discussion and Table 7: every coordinate is kept with probability kappa and
otherwise replaced by one of the other ``levels - 1`` values uniformly; there is no NULL symbol.
Certified in L0 by [`smoothcert.certificates.lee`][smoothcert.certificates.lee].

As in Lee et al., a coordinate is one channel value: a colour pixel is three coordinates, and the
certified radius counts channel values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..certificates.lee import (
    LEE_CERTIFICATES,
    certify_lee,
    check_kappa,
    check_levels,
    max_certifiable_radius_lee,
    radius_lee,
)
from ..certificates.information import mutual_information_lee
from .base import NoiseContext, ThreatModel, register_noise


@register_noise
@dataclass(frozen=True)
class Lee(ThreatModel):
    """Keep each channel value with probability ``kappa``, else resample it uniformly among the
    other ``levels - 1`` values of the quantisation ``{0, 1/(levels-1), ..., 1}`` (Lee et al. 2019).

    Inputs are first rounded to that grid (the identity for 8-bit images with ``levels=256``).
    The keep decision compares a float64 uniform (a multiple of 2**-53) with kappa, so the keep
    probability differs from kappa by less than 2**-53.  Every sample gets its own noise.

    Args:
        kappa: The probability of keeping a value.
        levels: The number of values per channel (256 for 8-bit images).
    """

    kappa: float
    levels: int = 256
    kind: ClassVar[str] = "lee"
    # certifies L0 radii by Lee et al.'s tight Neyman-Pearson certificate (``lee``)
    certificates: ClassVar[tuple[str, ...]] = LEE_CERTIFICATES
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "kappa": {"type": float, "default": None, "help": "probability of keeping a channel value (--noise lee)"},
        "levels": {"type": int, "default": 256, "help": "values per channel, K (--noise lee, default 256)"},
    }

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Lee:
        if flags.get("kappa") is None:
            raise ValueError("lee noise needs --kappa")
        return cls(flags["kappa"], flags.get("levels", 256))

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", check_kappa(self.kappa))
        object.__setattr__(self, "levels", check_levels(self.levels))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        top = self.levels - 1
        value = torch.round(x * top).long()
        keep = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=x.device) < self.kappa
        offset = torch.randint(1, self.levels, x.shape, generator=generator, device=x.device)
        noisy = torch.where(keep, value, (value + offset) % self.levels)
        return noisy.to(x.dtype) / top

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "lee"
    ) -> tuple[float, float]:
        """(p_lower, L0 radius in channel values) of class ``top``; radius NaN means abstain.

        ``image_size`` (H, W) caps the radius at d = H*W; for C > 1 channels the true number of
        coordinates is C*H*W, so the cap is conservative (it binds only when p_lower is near 1).
        """
        self.check_certificate(certificate)
        h, w = image_size
        _, p_lower, radius = certify_lee(counts, int(counts.sum()), alpha, h * w, self.levels, self.kappa, selected=top)
        return float(p_lower), float(radius)

    radius_step: ClassVar[float] = 1.0
    """L0 radii are integers: sequential CERTIFY stops when the next integer is out of reach."""

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float:
        """Lee et al.'s radius certified by ``p_lower`` (NaN: abstain), capped at d = H*W as in ``certify``."""
        h, w = image_size
        return float(radius_lee(p_lower, h * w, self.levels, self.kappa))

    def largest_radius(self, n: int, alpha: float, image_shape: tuple[int, int, int]) -> float:
        """The largest radius ``n`` samples at level ``alpha`` can certify (Lee et al. count channel values)."""
        c, h, w = image_shape
        return float(max_certifiable_radius_lee(n, alpha, c * h * w, self.levels, self.kappa))

    def information(self, image_shape: tuple[int, int, int], levels: int | None = None) -> float:
        """Bits one noisy sample carries about a uniform image (Eq. 21; ``levels``: the noise's own)."""
        c, h, w = image_shape
        return float(mutual_information_lee(c * h * w, self.kappa, self.levels if levels is None else levels))

    def to_config(self) -> dict[str, Any]:
        return {"noise": self.kind, "kappa": self.kappa, "levels": self.levels}
