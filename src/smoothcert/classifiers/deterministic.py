"""Deterministic (derandomized) smoothed classifiers and their exact certificates.

Instead of sampling ablations, the classifier evaluates the base classifier once on every
ablation set of a deterministic noise (``noise.keep_masks``): the W bands or H*W blocks of
column/block smoothing (Levine & Feizi, NeurIPS 2020, Section 3) or the T groups of a feature
partition (Hammoudeh & Lowd, AAAI 2024). Each copy votes for its argmax class, or for every class
whose softmax is >= theta (Levine & Feizi's default, theta = 0.2). The prediction is the class
with most votes, ties going to the smaller class index; the noise turns the vote counts into its
certified radius (``noise.vote_radius``, [`smoothcert.certificates.votes`][smoothcert.certificates.votes]). The certificates
hold without probability: ``p_lower`` is NaN in the logs and ``n`` is the number of copies.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..certificates import top_two
from ..checkpoint import load_checkpoint
from ..errors import check_count
from ..noises import DeterministicNoise, noise_from_config
from ..runtime.speed import Switch
from .base import Certificate, base_logits, check_image, prepare_base
from .preprocessing import Bounds, Preprocessing, check_bounds

VOTES = ("argmax", "threshold")


class DeterministicClassifier:
    """The vote of ``base`` over every ablation set of a deterministic ``noise`` (``Bands``, ``Partition``).

    ``vote`` is ``argmax`` or ``threshold`` (every class with softmax >= ``theta``); ``None`` takes
    the noise's paper default (threshold 0.2 for bands and blocks, argmax for partitions). For band
    noises ``patch=M`` certifies M x M patches (radius M if certified, else 0); ``patch=None``
    reports the largest certified patch side. For a partition the radius is the L0 radius.
    ``batch_size`` (None: the fastest measured for the model) bounds how many copies go through the
    model at once (memory cap); ``compile``, ``channels_last`` (``"auto"``, ``"on"``, ``"off"``) and
    ``amp`` accelerate it ([`prepare_base`][smoothcert.classifiers.base.prepare_base]). ``bounds`` and
    ``preprocessing`` declare the input space and what the model sees, as for
    [`SmoothedClassifier`][smoothcert.classifiers.smoothed.SmoothedClassifier].

    Args:
        base: The base classifier: ablated copies (N, C', H, W) as ``noise`` encodes them to
            logits (N, ``num_classes``).
        noise: A deterministic noise: [`Bands`][smoothcert.noises.bands.Bands] or
            [`Partition`][smoothcert.noises.partition.Partition].
        num_classes: How many classes the logits have.
        image_size: (H, W) of the images it certifies.
        vote: ``"argmax"`` or ``"threshold"``; None: the noise's default.
        theta: The softmax threshold of the ``threshold`` vote, in (0, 1].
        patch: Band noises: the patch side M to certify; None: the largest certified side.
        batch_size: Most copies per forward pass; None: the fastest measured for the model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Mixed precision, ``"bf16"`` or ``"fp16"`` (meant for CUDA); None: the model's own dtype.
        bounds: (lower, upper) of the input space images are given in.
        preprocessing: What maps an ablated copy to the model's input, as for
            [`SmoothedClassifier`][smoothcert.classifiers.smoothed.SmoothedClassifier].

    Raises:
        ValueError: For a sampled noise, an unknown vote, ``theta`` outside (0, 1], or ``patch``
            with a partition.
    """

    kind: ClassVar[str] = "deterministic"
    certified: ClassVar[str] = "is certified exactly, every ablation set once"
    samples: ClassVar[bool] = False
    certifies: ClassVar[bool] = True

    def __init__(
        self,
        base: nn.Module,
        noise: DeterministicNoise,
        num_classes: int,
        image_size: tuple[int, int],
        *,
        vote: str | None = None,
        theta: float = 0.2,
        patch: int | None = None,
        batch_size: int | None = None,
        device: str | torch.device = "auto",
        compile: Switch = "auto",
        channels_last: Switch = "auto",
        amp: str | None = None,
        bounds: Bounds = (0.0, 1.0),
        preprocessing: Preprocessing = None,
    ) -> None:
        if noise.classifier != "deterministic":
            raise ValueError(f"a deterministic classifier needs a deterministic noise (columns, blocks, partition), "
                             f"got {noise.kind!r}")
        vote = noise.default_vote if vote is None else vote
        if vote not in VOTES:
            raise ValueError(f"unknown vote {vote!r}; choose one of {VOTES}")
        if not (isinstance(theta, (int, float)) and 0 < theta <= 1):
            raise ValueError(f"theta must lie in (0, 1], got {theta!r}")
        if patch is not None:
            if not noise.certifies_patches:
                raise ValueError(f"--patch certifies column/block smoothing; {noise.kind} noise certifies L0 radii")
            check_count("patch", patch)
        self.num_classes = check_count("num_classes", num_classes)
        self.bounds = check_bounds(bounds)
        self.base, self.device, self.batch_size = prepare_base(base, device, batch_size, compile=compile,
                                                               channels_last=channels_last, amp=amp,
                                                               preprocessing=preprocessing)
        self.noise, self.vote, self.theta, self.patch = noise, vote, float(theta), patch
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.keep = noise.keep_masks(*self.image_size, device=self.device)
        self.copies = len(self.keep)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> DeterministicClassifier:
        """The deterministic classifier of a ``smoothcert train --noise columns|blocks|partition`` checkpoint.

        Args:
            path: The checkpoint's folder.
            **kwargs: The constructor's keyword arguments (``vote``, ``theta``, ``patch``, ...).
        """
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], tuple(config["image_size"]),
                   **kwargs)

    @property
    def certificate(self) -> str:
        """What the radius column means, recorded in the logs' settings."""
        return self.noise.describe(self.vote, self.theta, self.patch)

    def sample_counts(self, n0: int, n: int, sampling: object) -> tuple[int, int, str]:
        """Every ablation set is evaluated once, exactly: (copies, copies, "fixed") whatever was asked."""
        return self.copies, self.copies, "fixed"

    @torch.inference_mode()
    def copy_votes(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(copies, num_classes) 0/1 votes of the ablation sets ``rows`` (default all) on one image ``x``."""
        x = check_image(x, self.bounds).to(self.device)
        c, h, w = x.shape
        if (h, w) != self.image_size:
            raise ValueError(f"the classifier certifies {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w}")
        keep = self.keep if rows is None else self.keep[rows]
        out = []
        for i in range(0, len(keep), self.batch_size):
            chunk = keep[i:i + self.batch_size]
            inputs = self.noise.apply(x.expand(len(chunk), c, h, w), chunk)
            logits = base_logits(self.base, inputs, self.num_classes, self.noise)
            if self.vote == "argmax":
                out.append(nn.functional.one_hot(logits.argmax(1), self.num_classes).bool())
            else:
                out.append(logits.float().softmax(1) >= self.theta)
        return torch.cat(out)

    def votes(self, x: torch.Tensor) -> np.ndarray:
        """Vote counts (num_classes,) over all copies."""
        return self.copy_votes(x).sum(0).cpu().numpy()

    def sample(self, x: torch.Tensor, num: int | None = None, generator: torch.Generator | None = None) -> np.ndarray:
        """The exact votes (the dataset runner's interface: ``num`` and ``generator`` are unused, every
        copy is evaluated once).

        Args:
            x: One image (C, H, W) within ``bounds``.
            num: Unused.
            generator: Unused.

        Returns:
            The vote counts (num_classes,) over all copies.
        """
        return self.votes(x)

    @staticmethod
    def predict_from_counts(counts: np.ndarray, alpha: float | None = None) -> int:
        """The class with most votes, ties to the smaller index; never abstains (``alpha`` unused)."""
        return top_two(counts)[0]

    def predict(self, x: torch.Tensor, n: int | None = None, alpha: float | None = None,
                generator: torch.Generator | None = None, *, sampling: object = "fixed") -> int:
        """The class with most votes over every ablation set of ``x``, ties to the smaller index.

        Args:
            x: One image (C, H, W) within ``bounds``.
            n: Unused (the runner's interface).
            alpha: Unused: the vote is exact.
            generator: Unused.
            sampling: Unused.
        """
        return self.predict_from_counts(self.votes(x))

    def radius(self, counts: np.ndarray) -> int:
        """The certified radius of the vote ``counts``: L0 pixels (partition) or patch side (bands)."""
        return self.noise.vote_radius(counts, self.image_size, self.patch)

    def certify(self, x: torch.Tensor, n0: int | None = None, n: int | None = None, alpha: float | None = None,
                generator: torch.Generator | None = None, *, sampling: object = "fixed") -> Certificate:
        """The exact certificate of ``x`` (the sampling parameters of the runner's interface are unused).

        Args:
            x: One image (C, H, W) within ``bounds``.
            n0: Unused.
            n: Unused.
            alpha: Unused: the certificate holds without probability.
            generator: Unused.
            sampling: Unused.

        Returns:
            The [`Certificate`][smoothcert.classifiers.base.Certificate]: the class, its votes, the
            number of copies, ``p_lower`` NaN and the radius (L0 pixels or patch side).
        """
        return self._certificate(self.votes(x))

    def _certificate(self, counts: np.ndarray) -> Certificate:
        top = self.predict_from_counts(counts)
        return Certificate(top, int(counts[top]), self.copies, float("nan"), float(self.radius(counts)))

    # The dataset runner's interface (smoothcert.runner): one request of every copy per image.

    def sample_many(self, requests: Sequence[tuple[torch.Tensor, int, torch.Generator | None]]) -> np.ndarray:
        """Exact votes (len(requests), num_classes) of each request's image; counts and generators are unused."""
        return np.stack([self.votes(x) for x, _, _ in requests])

    def certify_steps(self, image_size: tuple[int, int], n0: int, n: int, alpha: float,
                      sampling: object = "fixed") -> Generator[int, np.ndarray, Certificate]:
        """CERTIFY as the runner's coroutine: asks for the copies once, returns the exact certificate."""
        return self._certificate((yield self.copies))

    def predict_steps(self, n: int, alpha: float, sampling: object = "fixed") -> Generator[int, np.ndarray, tuple[int, np.ndarray]]:
        """PREDICT as the runner's coroutine: asks for the copies once, returns (class, votes)."""
        counts = yield self.copies
        return self.predict_from_counts(counts), counts
