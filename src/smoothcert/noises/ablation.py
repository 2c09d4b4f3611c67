"""Randomized ablation (Levine & Feizi 2020, Preliminaries): keep k of the d = H*W pixel positions,
chosen uniformly without replacement (a colour pixel is one unit), and replace every other pixel by
NULL. NULL is encoded as in "Architectural and training considerations": ``multichannel`` maps a
pixel s to (s, 1-s) and NULL to 0 on every channel; ``mean`` keeps the channels and writes the
training-set mean into ablated pixels (Table 8). Certified in L0 by [`smoothcert.certificates.ablation`][smoothcert.certificates.ablation].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..certificates.ablation import CERTIFICATES, certify_counts, max_certifiable_radius, radius_cor1
from ..certificates.information import mutual_information_ablation
from ..errors import ArgumentError
from .base import NoiseContext, ThreatModel, register_noise

ENCODINGS = ("multichannel", "mean")
MULTICHANNEL_NOTE = "the multichannel encoding doubles the channels (a kept pixel v becomes (v, 1 - v), an ablated one 0)"
"""What a base model for the multichannel encoding must know (the noises' ``input_note``)."""


def sample_keep_mask(
    n: int, d: int, k: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Boolean masks (n, d) with exactly k True entries per row, each k-subset equally likely.

    The k largest of d i.i.d. uniforms form a uniformly random k-subset (exchangeability); topk is
    several times faster than argsort or multinomial sampling (see BENCHMARKS.md).

    Args:
        n: How many masks.
        d: Pixels per image (H*W).
        k: Pixels each mask keeps, 1 <= k <= d.
        generator: The random stream; None: torch's global one.
        device: Where the masks are made.
    """
    if not 1 <= k <= d:
        raise ValueError(f"k must satisfy 1 <= k <= d, got k={k}, d={d}")
    scores = torch.rand(n, d, generator=generator, device=device)
    keep = scores.topk(k, dim=1, sorted=False).indices
    return torch.zeros(n, d, dtype=torch.bool, device=device).scatter_(1, keep, True)


def ablate(
    x: torch.Tensor, keep: torch.Tensor, encoding: str = "multichannel", mean: tuple[float, ...] | None = None
) -> torch.Tensor:
    """ABLATE(x, T): keep the pixels where ``keep`` (B, H*W) is True, NULL elsewhere.

    ``multichannel`` returns (B, 2C, H, W) = (x, 1-x) on kept pixels and 0 on ablated ones;
    ``mean`` returns (B, C, H, W) with ablated pixels set to the per-channel ``mean``.

    Args:
        x: Images (B, C, H, W).
        keep: Boolean masks (B, H*W), True where a pixel is kept
            ([`sample_keep_mask`][sample_keep_mask]).
        encoding: The NULL encoding: ``"multichannel"`` or ``"mean"``.
        mean: Per-channel NULL values of the ``mean`` encoding (the training set's channel means).
    """
    b, c, h, w = x.shape
    if keep.shape != (b, h * w):
        raise ValueError(f"keep mask must have shape {(b, h * w)}, got {tuple(keep.shape)}")
    keep = keep.view(b, 1, h, w)
    if encoding == "multichannel":
        return torch.cat((x, 1.0 - x), dim=1) * keep
    if encoding == "mean":
        if mean is None or len(mean) != c:
            raise ValueError(f"the mean encoding needs one mean value per channel ({c}), got {mean}")
        null = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        return torch.where(keep, x, null)
    raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")


@register_noise
@dataclass(frozen=True)
class Ablation(ThreatModel):
    """Randomized ablation keeping ``k`` pixels (Levine & Feizi 2020).

    ``per_batch=True`` draws one mask for the whole minibatch (the paper's training choice);
    certification always uses an independent mask per sample (``per_batch=False``).

    Args:
        k: Pixels kept per copy (the paper's MNIST choice: 45 of 784).
        encoding: ``"multichannel"`` (a kept pixel v becomes (v, 1 - v), an ablated one 0: the base
            classifier takes 2·C channels) or ``"mean"`` (ablated pixels set to ``mean``: C channels).
        mean: The ``mean`` encoding's per-channel NULL values.
        per_batch: One mask for the whole minibatch (training only).
    """

    k: int
    encoding: str = "multichannel"
    mean: tuple[float, ...] | None = None
    per_batch: bool = False
    kind: ClassVar[str] = "ablation"
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "k": {"type": int, "default": 45, "help": "pixels kept by randomized ablation (default 45)"},
        "encoding": {"choices": ENCODINGS, "default": "multichannel"},
    }
    # certifies L0 radii by Corollary 1 (``cor1``), Corollary 2 (``cor2``) or Jia et al. (``jia``)
    certificates: ClassVar[tuple[str, ...]] = CERTIFICATES
    denoisable: ClassVar[bool] = True
    masks: ClassVar[bool] = True
    """The noisy input depends on the kept pixels only: ``apply(x, sample_keep(...))``."""
    margin_scale: ClassVar[float] = 1.0
    """MACER's hinge acts on Phi^-1(p1) - Phi^-1(p2) unscaled: a margin surrogate, not a radius."""

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Ablation:
        """``--k`` and ``--encoding``; the mean encoding takes the training set's channel means."""
        if flags.get("k") is None:
            raise ValueError("ablation noise needs --k")
        encoding = flags.get("encoding", "multichannel")
        return cls(flags["k"], encoding, context.train_mean if encoding == "mean" else None)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ArgumentError("k", self.k, "{name} must be a positive integer, got {value}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; choose one of {ENCODINGS}")
        if self.encoding == "mean" and self.mean is None:
            raise ValueError("the mean encoding needs the training-set channel means (mean=...)")
        if self.mean is not None:
            object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))

    def channels(self, data_channels: int) -> int:
        return 2 * data_channels if self.encoding == "multichannel" else data_channels

    @property
    def input_note(self) -> str:
        """The multichannel encoding doubles the channels; the mean encoding keeps them."""
        if self.encoding != "multichannel":
            return ""
        return (f"{MULTICHANNEL_NOTE}; Ablation(k, encoding=\"mean\", mean=<the training set's channel means>) "
                "(smoothcert train --encoding mean) keeps the images' channels")

    def sample_keep(
        self, n: int, image_size: tuple[int, int], generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """``n`` uniformly random retained sets of k pixels: boolean masks (n, H*W)."""
        h, w = image_size
        if self.k > h * w:
            raise ArgumentError("k", self.k, "{name}={value} exceeds the number of pixels " + f"d={h}*{w}={h * w}")
        return sample_keep_mask(n, h * w, self.k, generator, device)

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """ABLATE(x, T) in this noise's encoding, for masks from [`sample_keep`][sample_keep]."""
        return ablate(x, keep, self.encoding, self.mean)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = len(x)
        keep = self.sample_keep(1 if self.per_batch else b, tuple(x.shape[-2:]), generator, x.device)
        return self.apply(x, keep.expand(b, keep.shape[1]))

    def clean_input(self, x: torch.Tensor) -> torch.Tensor:
        """ABLATE(x, all pixels kept) in the noise's encoding (the ablation with k = d), e.g. (x, 1 - x)."""
        b, _, h, w = x.shape
        return self.apply(x, torch.ones(b, h * w, dtype=torch.bool, device=x.device))

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "cor1"
    ) -> tuple[float, float]:
        """(p_lower, L0 radius) of class ``top`` from vote ``counts``; radius NaN means abstain."""
        h, w = image_size
        _, p_lower, radius = certify_counts(counts, int(counts.sum()), alpha, h * w, self.k, certificate, selected=top)
        return float(p_lower), float(radius)

    radius_step: ClassVar[float] = 1.0
    """L0 radii are integers: sequential CERTIFY stops when the next integer is out of reach."""

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float:
        """Corollary 1 (Eq. 14): the L0 radius certified by ``p_lower`` (NaN: abstain)."""
        h, w = image_size
        return float(radius_cor1(p_lower, h * w, self.k))

    def largest_radius(self, n: int, alpha: float, image_shape: tuple[int, int, int]) -> float:
        """The largest radius ``n`` samples at level ``alpha`` can certify on images of ``image_shape``."""
        return float(max_certifiable_radius(n, alpha, image_shape[1] * image_shape[2], self.k))

    def information(self, image_shape: tuple[int, int, int], levels: int = 256) -> float:
        """Bits one ablated sample carries about a uniform image of ``levels`` values (Eq. 20)."""
        return float(mutual_information_ablation(self.k, levels))

    def to_config(self) -> dict[str, Any]:
        cfg = asdict(self)
        cfg["noise"] = self.kind
        cfg["mean"] = list(self.mean) if self.mean is not None else None
        return cfg
