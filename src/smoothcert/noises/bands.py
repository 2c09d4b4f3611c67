"""Structured ablation for patch attacks: column and block smoothing (Levine & Feizi, NeurIPS 2020,
"(De)Randomized Smoothing for Certifiable Defense against Patch Attacks", Section 3).

A *band* of width s keeps the columns j, j+1, ..., j+s-1 (mod W) and ablates every other pixel; a
*block* keeps the s x s square of rows i..i+s-1 (mod H) and columns j..j+s-1 (mod W). Bands and
blocks wrap around the image edge, so there are exactly W bands and H*W blocks and every pixel
lies in exactly s bands (s^2 blocks). NULL is encoded as in randomized ablation (multichannel:
a kept pixel v becomes (v, 1-v), an ablated one 0).

Training ablates each image to one uniformly random band (block); certification enumerates all
of them ([`smoothcert.classifiers.DeterministicClassifier`][smoothcert.classifiers.DeterministicClassifier]) and certifies patches by
[`smoothcert.certificates.bands`][smoothcert.certificates.bands].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..certificates.bands import SHAPES, largest_certified_patch, patch_certified
from .ablation import MULTICHANNEL_NOTE, ablate
from .base import NoiseContext, ThreatModel, register_noise


def _kept_range(start: torch.Tensor, s: int, size: int) -> torch.Tensor:
    """(N, size) booleans: position p is kept iff (p - start) mod size < s, for each start in ``start``."""
    return (torch.arange(size, device=start.device) - start[:, None]) % size < s


@register_noise
@dataclass(frozen=True)
class Bands(ThreatModel):
    """Column (``shape="columns"``) or block (``shape="blocks"``) smoothing with band size ``band`` (s).

    Args:
        shape: ``"columns"`` or ``"blocks"``.
        band: The band width (block side) s: each copy keeps s columns (an s x s block).
    """

    shape: str
    band: int
    kinds: ClassVar[tuple[str, ...]] = SHAPES
    input_note: ClassVar[str] = MULTICHANNEL_NOTE
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "band": {"type": int, "default": None,
                 "help": "band (block) size s of --noise columns|blocks (paper: 4 on MNIST)"},
    }
    classifier: ClassVar[str] = "deterministic"
    samplings: ClassVar[tuple[str, ...]] = ()
    default_vote: ClassVar[str] = "threshold"  # Levine & Feizi count every class with softmax >= theta
    certifies_patches: ClassVar[bool] = True

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Bands:
        if flags.get("band") is None:
            raise ValueError(f"{kind} smoothing needs --band")
        return cls(kind, flags["band"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Bands:
        return cls(config["noise"], config["band"])

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.shape

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown band shape {self.shape!r}; choose one of {SHAPES}")
        if isinstance(self.band, bool) or not isinstance(self.band, (int, np.integer)) or self.band < 1:
            raise ValueError(f"--band must be a positive integer, got {self.band!r}")
        object.__setattr__(self, "band", int(self.band))

    def _check_size(self, h: int, w: int) -> None:
        if self.band > w or (self.shape == "blocks" and self.band > h):
            raise ValueError(f"band size {self.band} exceeds the image size {h}x{w}")

    def channels(self, data_channels: int) -> int:
        return 2 * data_channels

    def keep_masks(self, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """All ablation sets, (N, h*w) booleans: band j (N = W, start column j) or block (i, j)
        (N = H*W, row-major)."""
        self._check_size(h, w)
        cols = _kept_range(torch.arange(w, device=device), self.band, w)  # (W, w)
        if self.shape == "columns":
            return cols[:, None, :].expand(w, h, w).reshape(w, h * w)
        rows = _kept_range(torch.arange(h, device=device), self.band, h)  # (H, h)
        return (rows[:, None, :, None] & cols[None, :, None, :]).reshape(h * w, h * w)

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The images ``x`` reduced to the ablation sets ``keep`` (B, H*W), multichannel NULL encoding."""
        return ablate(x, keep)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each image ablated to one uniformly random band (block): the training noise."""
        b, _, h, w = x.shape
        self._check_size(h, w)
        col = _kept_range(torch.randint(0, w, (b,), generator=generator, device=x.device), self.band, w)
        if self.shape == "columns":
            keep = col[:, None, :].expand(b, h, w)
        else:
            row = _kept_range(torch.randint(0, h, (b,), generator=generator, device=x.device), self.band, h)
            keep = row[:, :, None] & col[:, None, :]
        return self.apply(x, keep.reshape(b, h * w))

    def vote_radius(self, counts: np.ndarray, image_size: tuple[int, int], patch: int | None = None) -> int:
        """The certified patch side of the vote ``counts``: ``patch`` if every ``patch`` x ``patch``
        patch is certified (else 0), or with ``patch=None`` the largest certified side."""
        if patch is None:
            return largest_certified_patch(counts, self.band, self.shape, image_size)
        return patch if patch_certified(counts, patch, self.band, self.shape, image_size) else 0

    def describe(self, vote: str, theta: float, patch: int | None) -> str:
        """What the radius column means, for the logs' settings."""
        side = "largest certified side" if patch is None else f"{patch}x{patch}"
        return f"patch {side} ({vote} vote" + (f" theta={theta:g})" if vote == "threshold" else ")")

    @property
    def refusal(self) -> str:
        return (f"{self.shape} smoothing is deterministic: certify it with DeterministicClassifier "
                "(smoothcert certify does so for such checkpoints), not by sampling")

    def to_config(self) -> dict[str, Any]:
        return {"noise": self.shape, "band": self.band}
