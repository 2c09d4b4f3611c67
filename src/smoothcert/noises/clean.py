"""The identity noise of undefended models (``--noise none``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch


@dataclass(frozen=True)
class Clean:
    """No noise: the identity, for undefended models (``--noise none``) trained on clean images.

    It certifies nothing; a ``SmoothedClassifier`` refuses it.
    """

    certificates: ClassVar[tuple[str, ...]] = ()

    def channels(self, data_channels: int) -> int:
        return data_channels

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x

    def check_certificate(self, name: str | None) -> None:
        raise ValueError("a model trained without noise (--noise none) has no certificate: certify it through a "
                         "denoiser (smoothcert denoise, then certify --denoiser), or attack it directly")

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = ""
    ) -> tuple[float, float]:
        self.check_certificate(certificate)
        raise AssertionError("unreachable")

    def config(self) -> dict[str, Any]:
        return {"noise": "none"}
