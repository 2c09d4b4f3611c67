"""Noise distributions of smoothed classifiers.

A noise object turns a batch of images ``x`` (B, C, H, W) with pixels in [0, 1] into a batch of
noisy inputs for the base classifier. It is called as ``noise(x, generator)``, reports how many
channels the base classifier sees (``channels(c)``) and serialises to JSON (``config()``) so
checkpoints and logs record exactly which noise a model was trained and certified with.

``Ablation`` is the randomized ablation of Levine & Feizi (2020), Preliminaries: keep k of the
d = H*W pixel positions, chosen uniformly without replacement (a colour pixel is one unit), and
replace every other pixel by NULL. NULL is encoded as in "Architectural and training
considerations": ``multichannel`` maps a pixel s to (s, 1-s) and NULL to 0 on every channel;
``mean`` keeps the channels and writes the training-set mean into ablated pixels (Table 8).

``Gaussian`` is the isotropic Gaussian noise of Cohen, Rosenfeld & Kolter (2019), certified in
L2 by :mod:`smoothcert.gaussian`.

Each noise lists the certificates it computes in ``certificates`` (the first is the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from .certificates import CERTIFICATES, certify_counts
from .gaussian import GAUSSIAN_CERTIFICATES, certify_gaussian, check_sigma

ENCODINGS = ("multichannel", "mean")


class Noise(Protocol):
    """What ``SmoothedClassifier`` and the trainers need from a noise distribution."""

    @property
    def certificates(self) -> tuple[str, ...]:
        """Names ``check_certificate`` accepts; the first is the default."""
        ...

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def channels(self, data_channels: int) -> int: ...

    def config(self) -> dict[str, Any]: ...

    def check_certificate(self, name: str) -> None: ...

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str
    ) -> tuple[float, float]: ...


def sample_keep_mask(
    n: int, d: int, k: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Boolean masks (n, d) with exactly k True entries per row, each k-subset equally likely.

    The k largest of d i.i.d. uniforms form a uniformly random k-subset (exchangeability); topk is
    several times faster than argsort or multinomial sampling (see BENCHMARKS.md).
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


@dataclass(frozen=True)
class Ablation:
    """Randomized ablation keeping ``k`` pixels (Levine & Feizi 2020).

    ``per_batch=True`` draws one mask for the whole minibatch (the paper's training choice);
    certification always uses an independent mask per sample (``per_batch=False``).
    """

    k: int
    encoding: str = "multichannel"
    mean: tuple[float, ...] | None = None
    per_batch: bool = False
    certificates: ClassVar[tuple[str, ...]] = CERTIFICATES

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; choose one of {ENCODINGS}")
        if self.encoding == "mean" and self.mean is None:
            raise ValueError("the mean encoding needs the training-set channel means (mean=...)")
        if self.mean is not None:
            object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))

    def channels(self, data_channels: int) -> int:
        return 2 * data_channels if self.encoding == "multichannel" else data_channels

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        d = h * w
        if self.k > d:
            raise ValueError(f"k={self.k} exceeds the number of pixels d={h}*{w}={d}")
        rows = 1 if self.per_batch else b
        keep = sample_keep_mask(rows, d, self.k, generator, x.device).expand(b, d)
        return ablate(x, keep, self.encoding, self.mean)

    def check_certificate(self, name: str) -> None:
        """Ablation certifies L0 radii by Corollary 1 (``cor1``), Corollary 2 (``cor2``) or Jia et al. (``jia``)."""
        if name not in CERTIFICATES:
            raise ValueError(f"unknown certificate {name!r} for ablation; choose one of {CERTIFICATES}")

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "cor1"
    ) -> tuple[float, float]:
        """(p_lower, L0 radius) of class ``top`` from vote ``counts``; radius NaN means abstain."""
        h, w = image_size
        _, p_lower, radius = certify_counts(counts, int(counts.sum()), alpha, h * w, self.k, certificate, selected=top)
        return float(p_lower), float(radius)

    def config(self) -> dict[str, Any]:
        cfg = asdict(self)
        cfg["noise"] = "ablation"
        cfg["mean"] = list(self.mean) if self.mean is not None else None
        return cfg


@dataclass(frozen=True)
class Gaussian:
    """Isotropic Gaussian noise ``x + N(0, sigma^2 I)`` (Cohen, Rosenfeld & Kolter 2019).

    Added in [0, 1] pixel space and not clamped, as in Cohen et al.: any input normalisation is
    the model's first layer, so certified L2 radii are in pixel units.  Every sample gets its own
    noise, drawn from ``generator``.
    """

    sigma: float
    certificates: ClassVar[tuple[str, ...]] = GAUSSIAN_CERTIFICATES

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_sigma(self.sigma))

    def channels(self, data_channels: int) -> int:
        return data_channels

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def check_certificate(self, name: str) -> None:
        """Gaussian noise certifies L2 radii by Cohen et al.'s CERTIFY (``cohen``) or Theorem 1 with p_B (``two-class``)."""
        if name not in self.certificates:
            raise ValueError(f"unknown certificate {name!r} for gaussian noise; choose one of {self.certificates}")

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "cohen"
    ) -> tuple[float, float]:
        """(p_lower, L2 radius) of class ``top`` from vote ``counts``; radius NaN means abstain.
        ``image_size`` is unused: the L2 radius does not depend on the dimension."""
        _, p_lower, radius = certify_gaussian(counts, int(counts.sum()), alpha, self.sigma, certificate, selected=top)
        return float(p_lower), float(radius)

    def config(self) -> dict[str, Any]:
        return {"noise": "gaussian", "sigma": self.sigma}


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


NOISES = ("ablation", "gaussian", "none")


def make_noise(
    kind: str,
    *,
    k: int | None = None,
    encoding: str = "multichannel",
    train_mean: tuple[float, ...] | None = None,
    sigma: float | None = None,
) -> Noise:
    """The noise named by the CLI flags ``--noise``/``--k``/``--encoding``/``--sigma``; the mean
    encoding needs the training set's per-channel mean ``train_mean``.  Each kind reads only its
    own parameters (the CLI passes the others' defaults)."""
    if kind == "ablation":
        if k is None:
            raise ValueError("ablation noise needs --k")
        return Ablation(k, encoding, train_mean if encoding == "mean" else None)
    if kind == "gaussian":
        if sigma is None:
            raise ValueError("gaussian noise needs --sigma")
        return Gaussian(sigma)
    if kind == "none":
        return Clean()
    raise ValueError(f"unknown noise {kind!r}; choose one of {NOISES}")
