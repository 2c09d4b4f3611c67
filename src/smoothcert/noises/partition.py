"""Feature partition for L0 attacks (Hammoudeh & Lowd, "Feature Partition Aggregation", AAAI 2024).

The d = H*W pixel positions are split into T disjoint groups by a seeded shuffle followed by a
round-robin deal (position ``perm[i]`` joins group ``i mod T``), so group sizes differ by at most
one. Copy t keeps group t and ablates every other pixel (multichannel NULL encoding, as in
randomized ablation). Each pixel lies in exactly one group, so changing r pixels changes at most
r of the T copies; the certified L0 radius is floor((n_y - n_y' - [y > y']) / 2)
([`smoothcert.certificates.partition.partition_radius`][smoothcert.certificates.partition.partition_radius]).

The assignment is stored in the checkpoint (``config()``), so certification uses exactly the
partition the model was trained on. One base classifier is trained on a random group of that
partition per image (Hammoudeh & Lowd train one model per group; the certificate is about the
votes, so a shared model keeps it valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..certificates.partition import partition_radius
from ..runtime.seeding import stream_seed
from .ablation import MULTICHANNEL_NOTE, ablate
from .base import NoiseContext, ThreatModel, register_noise

PARTITION_STREAM = 7  # the shuffle comes from stream (seed, PARTITION_STREAM)


def partition_assignment(d: int, groups: int, seed: int) -> tuple[int, ...]:
    """Group of each of the ``d`` pixel positions: a seeded shuffle dealt round-robin into ``groups``."""
    if not 1 <= groups <= d:
        raise ValueError(f"--groups must satisfy 1 <= T <= d = {d}, got {groups}")
    perm = np.random.Generator(np.random.PCG64(stream_seed(seed, PARTITION_STREAM))).permutation(d)
    assignment = np.empty(d, dtype=np.int64)
    assignment[perm] = np.arange(d) % groups
    return tuple(int(a) for a in assignment)


@register_noise
@dataclass(frozen=True)
class Partition(ThreatModel):
    """Partition voting over ``groups`` disjoint pixel groups; ``assignment[p]`` is pixel p's group
    (row-major over ``image_size``). Build it with [`create`][create].

    Args:
        groups: The number T of groups (and of copies that vote).
        image_size: (H, W) of the images it partitions.
        assignment: Each pixel's group, H*W entries in 0..T-1, every group non-empty.
        seed: The seed [`create`][create] drew the assignment with (recorded).
    """

    groups: int
    image_size: tuple[int, int]
    assignment: tuple[int, ...]
    seed: int = 0
    kind: ClassVar[str] = "partition"
    input_note: ClassVar[str] = MULTICHANNEL_NOTE
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "groups": {"type": int, "default": None, "help": "number of pixel groups T of --noise partition"},
    }
    classifier: ClassVar[str] = "deterministic"
    samplings: ClassVar[tuple[str, ...]] = ()
    default_vote: ClassVar[str] = "argmax"  # Hammoudeh & Lowd: each copy votes its argmax
    certifies_patches: ClassVar[bool] = False

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Partition:
        """``--groups``, the image size and the seed of the shuffle."""
        if flags.get("groups") is None or context.image_size is None:
            raise ValueError("partition noise needs --groups (and the image size)")
        return cls.create(flags["groups"], context.image_size, context.seed)

    @classmethod
    def create(cls, groups: int, image_size: tuple[int, int], seed: int = 0) -> Partition:
        """The seeded partition of an ``image_size`` image into ``groups`` groups.

        Args:
            groups: The number T of groups.
            image_size: (H, W) of the images.
            seed: The seed of the random assignment.
        """
        h, w = image_size
        return cls(groups, (h, w), partition_assignment(h * w, groups, seed), seed)

    def __post_init__(self) -> None:
        if isinstance(self.groups, bool) or not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            raise ValueError(f"--groups must be a positive integer, got {self.groups!r}")
        h, w = (int(v) for v in self.image_size)
        assignment = tuple(int(a) for a in self.assignment)
        if len(assignment) != h * w:
            raise ValueError(f"the partition assigns {len(assignment)} pixels, the image has {h}x{w}={h * w}")
        sizes = np.bincount(assignment, minlength=self.groups) if assignment and min(assignment) >= 0 else None
        if sizes is None or len(sizes) != self.groups or sizes.min() < 1:
            raise ValueError(f"the partition must put every pixel in one of {self.groups} non-empty groups")
        object.__setattr__(self, "groups", int(self.groups))
        object.__setattr__(self, "image_size", (h, w))
        object.__setattr__(self, "assignment", assignment)

    def channels(self, data_channels: int) -> int:
        return 2 * data_channels

    def _check_size(self, h: int, w: int) -> None:
        if (h, w) != self.image_size:
            raise ValueError(f"the partition is for {self.image_size[0]}x{self.image_size[1]} images, got {h}x{w}")

    def keep_masks(self, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(T, h*w) booleans: row t keeps group t."""
        self._check_size(h, w)
        groups = torch.tensor(self.assignment, device=device)
        return groups[None, :] == torch.arange(self.groups, device=device)[:, None]

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The images ``x`` reduced to the ablation sets ``keep`` (B, H*W), multichannel NULL encoding."""
        return ablate(x, keep)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each image ablated to one uniformly random group: the training noise."""
        b, _, h, w = x.shape
        self._check_size(h, w)
        chosen = torch.randint(0, self.groups, (b,), generator=generator, device=x.device)
        groups = torch.tensor(self.assignment, device=x.device)
        return self.apply(x, groups[None, :] == chosen[:, None])

    def vote_radius(self, counts: np.ndarray, image_size: tuple[int, int], patch: int | None = None) -> int:
        """The certified L0 radius of the vote ``counts`` (``patch`` must be None)."""
        if patch is not None:
            raise ValueError("--patch certifies column/block smoothing; a partition certifies L0 radii")
        return partition_radius(counts)

    def describe(self, vote: str, theta: float, patch: int | None) -> str:
        """What the radius column means, for the logs' settings."""
        return f"partition-l0 ({vote} vote)"

    @property
    def refusal(self) -> str:
        return ("partition voting is deterministic: certify it with DeterministicClassifier "
                "(smoothcert certify does so for such checkpoints), not by sampling")

    def to_config(self) -> dict[str, Any]:
        return {"noise": "partition", "groups": self.groups, "image_size": list(self.image_size),
                "assignment": list(self.assignment), "seed": self.seed}
