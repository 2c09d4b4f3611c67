"""The identity noise of undefended models (``--noise none``), and what every noise that a
``SmoothedClassifier`` cannot certify by sampling shares (``Unsampled``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch


class Unsampled:
    """A noise without a sampling certificate: ``check_certificate`` (and so a
    ``SmoothedClassifier``) refuses it with the reason in ``refusal``."""

    certificates: ClassVar[tuple[str, ...]] = ()

    @property
    def refusal(self) -> str:
        raise NotImplementedError

    def check_certificate(self, name: str | None) -> None:
        raise ValueError(self.refusal)

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = ""
    ) -> tuple[float, float]:
        self.check_certificate(certificate)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Clean(Unsampled):
    """No noise: the identity, for undefended models (``--noise none``) trained on clean images.

    It certifies nothing; a ``SmoothedClassifier`` refuses it.
    """

    refusal: ClassVar[str] = ("a model trained without noise (--noise none) has no certificate: certify it through a "
                              "denoiser (smoothcert denoise, then certify --denoiser), or attack it directly")

    def channels(self, data_channels: int) -> int:
        return data_channels

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x

    def config(self) -> dict[str, Any]:
        return {"noise": "none"}
