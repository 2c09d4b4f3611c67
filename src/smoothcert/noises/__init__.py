"""Noise distributions of smoothed classifiers, one module per threat model.

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

``Lee`` is the discrete noise of Lee, Yuan, Chang & Jaakkola (2019), the L0 baseline of Levine &
Feizi's Table 7: keep each channel value with probability kappa, else replace it by another of
``levels`` values; certified in L0 by :mod:`smoothcert.lee`.

``Bands`` (column/block smoothing, Levine & Feizi, NeurIPS 2020) and ``Partition`` (feature
partition, Hammoudeh & Lowd, AAAI 2024) are deterministic: training draws one of finitely many
ablation sets, certification enumerates all of them (``keep_masks``) in
:class:`smoothcert.deterministic.DeterministicClassifier`.

Each noise lists the certificates it computes in ``certificates`` (the first is the default).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from .ablation import ENCODINGS, Ablation, ablate, sample_keep_mask
from .bands import Bands
from .clean import Clean
from .gaussian import Gaussian
from .lee import Lee
from .partition import Partition, partition_assignment

__all__ = ["ENCODINGS", "NOISES", "Ablation", "Bands", "Clean", "Gaussian", "Lee", "Noise", "Partition", "ablate",
           "make_noise", "partition_assignment", "sample_keep_mask"]


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

    # Sequential CERTIFY (smoothcert.sequential) needs the default certificate as a function of a
    # lower bound on the top class, and the radius grid on which it stops for futility.
    radius_step: float

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float: ...


NOISES = ("ablation", "gaussian", "lee", "none", "columns", "blocks", "partition")


def make_noise(
    kind: str,
    *,
    k: int | None = None,
    encoding: str = "multichannel",
    train_mean: tuple[float, ...] | None = None,
    sigma: float | None = None,
    kappa: float | None = None,
    levels: int = 256,
    band: int | None = None,
    groups: int | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
) -> Noise:
    """The noise named by the CLI flags ``--noise``/``--k``/``--encoding``/``--sigma``/``--kappa``/
    ``--levels``/``--band``/``--groups``; the mean encoding needs the training set's per-channel
    mean ``train_mean``, the partition the ``image_size`` and the ``seed`` of its shuffle.  Each
    kind reads only its own parameters (the CLI passes the others' defaults)."""
    if kind == "ablation":
        if k is None:
            raise ValueError("ablation noise needs --k")
        return Ablation(k, encoding, train_mean if encoding == "mean" else None)
    if kind == "gaussian":
        if sigma is None:
            raise ValueError("gaussian noise needs --sigma")
        return Gaussian(sigma)
    if kind == "lee":
        if kappa is None:
            raise ValueError("lee noise needs --kappa")
        return Lee(kappa, levels)
    if kind == "none":
        return Clean()
    if kind in ("columns", "blocks"):
        if band is None:
            raise ValueError(f"{kind} smoothing needs --band")
        return Bands(kind, band)
    if kind == "partition":
        if groups is None or image_size is None:
            raise ValueError("partition noise needs --groups (and the image size)")
        return Partition.create(groups, image_size, seed)
    raise ValueError(f"unknown noise {kind!r}; choose one of {NOISES}")
