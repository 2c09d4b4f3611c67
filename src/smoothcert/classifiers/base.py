"""What every classifier of the library shares: the CERTIFY outcome, the image check, and the
interface that the dataset runner, the attacks' oracles and the reports rely on.

A *classifier* here is a base model together with the rule that turns its outputs on transformed
copies of an image into a prediction with a certificate: the smoothed classifier of a sampled
noise (:mod:`.smoothed`, Cohen et al. 2019; Levine & Feizi 2020), the exact vote of a deterministic
noise (:mod:`.deterministic`), the smoothed classifier of a denoiser in front of a frozen model
(:mod:`.denoised`), or an undefended model (:mod:`.undefended`, which certifies nothing).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T")
Steps = Generator[int, np.ndarray, T]
"""A sampling coroutine: yields sample counts, is sent vote counts, returns its outcome."""


@dataclass(frozen=True)
class Certificate:
    """Outcome of CERTIFY for one image: ``predict`` is ``ABSTAIN`` (-1) with radius NaN when the
    bound on the top class is too weak; ``count`` is that class's votes among ``n``."""

    predict: int
    count: int
    n: int
    p_lower: float
    radius: float


def check_image(x: torch.Tensor) -> torch.Tensor:
    """``x``; ValueError unless it is one (C, H, W) image with finite pixels in [0, 1]."""
    if x.dim() != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("pixel values must lie in [0, 1]")
    return x


class Classifier(Protocol):
    """The interface of every classifier kind (smoothed, deterministic, denoised, undefended).

    ``kind`` names it in logs and picks its oracle in :mod:`smoothcert.attacks`. ``sample_counts``
    says how many samples CERTIFY / PREDICT really draw and with which sampling (a deterministic
    vote evaluates each copy once, whatever was asked). ``certify_steps`` / ``predict_steps`` are
    the coroutines the dataset runner drives, with ``sample_many`` packing the samples of many
    images into full forward passes; ``certify`` / ``predict`` run them on one image.
    """

    kind: ClassVar[str]
    base: nn.Module
    num_classes: int
    device: torch.device
    certificate: str
    certified: ClassVar[str]
    """How the kind certifies, for messages ("is certified by sampling", ...)."""

    def sample_counts(self, n0: int | None, n: int, sampling: object) -> tuple[int | None, int, object]: ...

    def sample_many(self, requests: Sequence[tuple[torch.Tensor, int, torch.Generator | None]]) -> np.ndarray: ...

    def certify_steps(self, image_size: tuple[int, int], n0: int, n: int, alpha: float,
                      sampling: object = "fixed") -> Steps[Certificate]: ...

    def predict_steps(self, n: int, alpha: float, sampling: object = "fixed") -> Steps[tuple[int, np.ndarray]]: ...

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: torch.Generator | None = None, *,
                sampling: object = "fixed") -> Certificate: ...

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: torch.Generator | None = None, *,
                sampling: object = "fixed") -> int: ...
