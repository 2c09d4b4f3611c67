"""Deterministic (derandomized) smoothed classifiers and their exact certificates.

Instead of sampling ablations, the classifier evaluates the base classifier once on every
ablation set of a deterministic noise (``noise.keep_masks``): the W bands or H*W blocks of
column/block smoothing (Levine & Feizi, NeurIPS 2020, Section 3) or the T groups of a feature
partition (Hammoudeh & Lowd, AAAI 2024). Each copy votes for its argmax class, or for every class
whose softmax is >= theta (Levine & Feizi's default, theta = 0.2). The prediction is the class
with most votes, ties going to the smaller class index.

A copy whose kept pixels are untouched by the attacker votes as before, and a changed copy moves
the gap n_c - n_c' between two classes by at most 2 (it can lose one vote for c and give one to
c'). If at most Delta copies can change, the prediction y is certified iff for its runner-up y'
(most votes, then smallest index) n_y - n_y' > 2 Delta, or n_y - n_y' = 2 Delta and y < y'.
For an m x m patch Delta = ``noise.patch_delta(m)``; for a partition Delta = r pixels, which gives
the L0 radius floor((n_y - n_y' - [y > y']) / 2). The certificates hold without probability:
``p_lower`` is NaN in the logs and ``n`` is the number of copies.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, noise_from_config
from .noises import Bands, Noise, Partition, ablate
from .seeding import resolve_device
from .smooth import Certificate, check_count, check_image

VOTES = ("argmax", "threshold")
DETERMINISTIC_NOISES = ("columns", "blocks", "partition")


def top_two(counts: np.ndarray) -> tuple[int, int]:
    """(prediction y, runner-up y'): most votes, ties to the smaller class index, for both."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(f"vote counts must be a 1-D array over at least two classes, got shape {counts.shape}")
    top = int(np.argmax(counts))  # argmax returns the first (smallest) index among ties
    others = counts.astype(float)
    others[top] = -math.inf
    return top, int(np.argmax(others))


def certified_against(counts: np.ndarray, delta: int) -> bool:
    """Whether the vote prediction survives any change of at most ``delta`` copies:
    n_y - n_y' > 2 delta, or = 2 delta and y < y' (the tie-break keeps y)."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    y, runner_up = top_two(counts)
    gap = int(counts[y]) - int(counts[runner_up])
    return gap > 2 * delta or (gap == 2 * delta and y < runner_up)


def partition_radius(counts: np.ndarray) -> int:
    """Certified L0 radius of partition voting: floor((n_y - n_y' - [y > y']) / 2) (Hammoudeh & Lowd)."""
    y, runner_up = top_two(counts)
    return (int(counts[y]) - int(counts[runner_up]) - int(y > runner_up)) // 2


def largest_certified_patch(counts: np.ndarray, delta_of: Any, max_side: int) -> int:
    """The largest patch side m <= ``max_side`` certified with ``delta_of(m)`` copies changed (0 if none).
    ``delta_of`` is non-decreasing in m, so the certified sides are 0..m."""
    m = 0
    while m < max_side and certified_against(counts, delta_of(m + 1)):
        m += 1
    return m


class DeterministicClassifier:
    """The vote of ``base`` over every ablation set of a deterministic ``noise`` (``Bands`` or ``Partition``).

    ``vote`` is ``argmax`` or ``threshold`` (every class with softmax >= ``theta``); ``None`` takes
    the noise's paper default (threshold 0.2 for bands and blocks, argmax for partitions). For band
    noises ``patch=M`` certifies M x M patches (radius M if certified, else 0); ``patch=None``
    reports the largest certified patch side. For a partition the radius is the L0 radius.
    ``batch_size`` bounds the copies per forward pass.
    """

    def __init__(
        self,
        base: nn.Module,
        noise: Noise,
        num_classes: int,
        image_size: tuple[int, int],
        *,
        vote: str | None = None,
        theta: float = 0.2,
        patch: int | None = None,
        batch_size: int = 1000,
        device: str | torch.device = "auto",
    ) -> None:
        if not isinstance(noise, (Bands, Partition)):
            raise ValueError(f"a deterministic classifier needs one of the noises {DETERMINISTIC_NOISES}, "
                             f"got {noise.config().get('noise')!r}")
        vote = noise.default_vote if vote is None else vote
        if vote not in VOTES:
            raise ValueError(f"unknown vote {vote!r}; choose one of {VOTES}")
        if not (isinstance(theta, (int, float)) and 0 < theta <= 1):
            raise ValueError(f"theta must lie in (0, 1], got {theta!r}")
        if patch is not None:
            if isinstance(noise, Partition):
                raise ValueError("--patch certifies column/block smoothing; a partition certifies L0 radii")
            check_count("patch", patch)
        self.num_classes = check_count("num_classes", num_classes)
        self.batch_size = check_count("batch_size", batch_size)
        self.device = resolve_device(device)
        self.base = base.to(self.device).eval()
        self.noise, self.vote, self.theta, self.patch = noise, vote, float(theta), patch
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.keep = noise.keep_masks(*self.image_size, device=self.device)
        self.copies = len(self.keep)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> DeterministicClassifier:
        """The deterministic classifier of a ``smoothcert train --noise columns|blocks|partition`` checkpoint."""
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], tuple(config["image_size"]),
                   **kwargs)

    @property
    def certificate(self) -> str:
        """What the radius column means, recorded in the logs' settings."""
        if isinstance(self.noise, Partition):
            return f"partition-l0 ({self.vote} vote)"
        side = "largest certified side" if self.patch is None else f"{self.patch}x{self.patch}"
        theta = f" theta={self.theta:g}" if self.vote == "threshold" else ""
        return f"patch {side} ({self.vote} vote{theta})"

    @torch.inference_mode()
    def copy_votes(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(copies, num_classes) 0/1 votes of the ablation sets ``rows`` (default all) on one image ``x``."""
        x = check_image(x).to(self.device)
        c, h, w = x.shape
        if (h, w) != self.image_size:
            raise ValueError(f"the classifier certifies {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w}")
        keep = self.keep if rows is None else self.keep[rows]
        out = []
        for i in range(0, len(keep), self.batch_size):
            chunk = keep[i:i + self.batch_size]
            logits = self.base(ablate(x.expand(len(chunk), c, h, w), chunk))
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
        copy is evaluated once)."""
        return self.votes(x)

    @staticmethod
    def predict_from_counts(counts: np.ndarray, alpha: float | None = None) -> int:
        """The class with most votes, ties to the smaller index; never abstains (``alpha`` unused)."""
        return top_two(counts)[0]

    def predict(self, x: torch.Tensor) -> int:
        return self.predict_from_counts(self.votes(x))

    def radius(self, counts: np.ndarray) -> int:
        """The certified radius of the vote ``counts``: L0 pixels (partition) or patch side (bands)."""
        if isinstance(self.noise, Partition):
            return partition_radius(counts)
        if self.patch is not None:
            return self.patch if certified_against(counts, self.noise.patch_delta(self.patch, self.image_size)) else 0
        return largest_certified_patch(counts, lambda m: self.noise.patch_delta(m, self.image_size),
                                       min(self.image_size))

    def certify(self, x: torch.Tensor, n0: int | None = None, n: int | None = None, alpha: float | None = None,
                generator: torch.Generator | None = None) -> Certificate:
        """The exact certificate of ``x`` (the sampling parameters of the runner's interface are unused)."""
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
