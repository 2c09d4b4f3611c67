"""The identity noise of undefended models (``--noise none``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .base import NoiseContext, ThreatModel, register_noise


@register_noise
@dataclass(frozen=True)
class Clean(ThreatModel):
    """No noise: the identity, for undefended models (``--noise none``) trained on clean images.

    It certifies nothing: a smoothed classifier refuses it; attacks query the model directly.
    """

    kind: ClassVar[str] = "none"
    classifier: ClassVar[str] = "model"
    samplings: ClassVar[tuple[str, ...]] = ()
    refusal: ClassVar[str] = ("a model trained without noise (--noise none) has no certificate: certify it through a "
                              "denoiser (smoothcert denoise, then certify --denoiser), or attack it directly")

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Clean:
        return cls()

    def clean_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself: the base classifier sees images in their own format."""
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x

    def to_config(self) -> dict[str, Any]:
        return {"noise": "none"}
