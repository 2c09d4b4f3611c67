"""What the rest of the library asks of a noise, as typed protocols (see
[`smoothcert.noises.base`][smoothcert.noises.base]).

[`Noise`][Noise] is what every noise implements. A noise's class attributes advertise capabilities,
and each capability is a protocol of its own that says what it requires:

- [`SampledNoise`][SampledNoise]: certified by sampled votes (``classifier = "smoothed"``, or
  ``"fixed"`` in ``samplings``): ``certify`` and at least one name in ``certificates``;
- [`AdaptiveNoise`][AdaptiveNoise]: ``"adaptive"`` in ``samplings``: also ``radius`` and ``radius_step``;
- [`DeterministicNoise`][DeterministicNoise]: ``classifier = "deterministic"``: ``keep_masks``,
  ``apply``, ``vote_radius``, ``describe``, ``default_vote`` and ``certifies_patches``;
- [`MaskNoise`][MaskNoise]: ``masks = True``: ``sample_keep`` and ``apply``;
- [`BatchSharedNoise`][BatchSharedNoise]: a ``per_batch`` field (one draw per minibatch in training,
  refused by certification).

[`capability_problem`][capability_problem] is what ``register_noise`` asks of a class before it
registers it: a noise that advertises a capability without implementing it is refused there, not
deep inside a certification run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Noise(Protocol):
    """What the classifiers, the trainers and the CLI need from a noise (see
    [`smoothcert.noises.base`][smoothcert.noises.base])."""

    kind: str
    classifier: ClassVar[str]
    certificates: ClassVar[tuple[str, ...]]
    samplings: ClassVar[tuple[str, ...]]
    input_note: str

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def channels(self, data_channels: int) -> int: ...

    def clean_input(self, x: torch.Tensor) -> torch.Tensor: ...

    def to_config(self) -> dict[str, Any]: ...

    def check_certificate(self, name: str | None) -> None: ...


@runtime_checkable
class SampledNoise(Noise, Protocol):
    """A noise certified by sampled votes: fixed sampling's CERTIFY turns the votes into a radius."""

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str
    ) -> tuple[float, float]:
        """(p_lower, radius) of class ``top`` from the vote ``counts``; radius NaN abstains."""
        ...


@runtime_checkable
class AdaptiveNoise(SampledNoise, Protocol):
    """A sampled noise that offers adaptive sampling: sequential CERTIFY asks ``radius`` at every look
    and decides on the grid ``radius_step`` when a larger radius is out of reach."""

    radius_step: float

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float:
        """The radius that ``p_lower`` certifies (NaN: abstain)."""
        ...


@runtime_checkable
class MaskNoise(Noise, Protocol):
    """A noise whose draw is a keep mask: ``noise(x) == apply(x, sample_keep(...))``, and the noisy
    input depends on the kept pixels only (attack oracles reuse the votes of unchanged draws)."""

    def sample_keep(self, n: int, image_size: tuple[int, int], generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` keep masks, booleans (n, H*W)."""
        ...

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The images ``x`` (B, C, H, W) with the pixels of ``keep`` (B, H*W) kept, NULL elsewhere."""
        ...


@runtime_checkable
class DeterministicNoise(Noise, Protocol):
    """A noise certified by its exact vote over every ablation set (``DeterministicClassifier``)."""

    default_vote: str
    certifies_patches: bool

    def keep_masks(self, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """All ablation sets of an h x w image: booleans (copies, h*w)."""
        ...

    def apply(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The images ``x`` (B, C, H, W) reduced to the ablation sets ``keep`` (B, H*W)."""
        ...

    def vote_radius(self, counts: np.ndarray, image_size: tuple[int, int], patch: int | None = None) -> int:
        """The certified radius of the vote ``counts``."""
        ...

    def describe(self, vote: str, theta: float, patch: int | None) -> str:
        """What the radius column of a log means."""
        ...


@runtime_checkable
class BatchSharedNoise(Noise, Protocol):
    """A noise that training may draw once for a whole minibatch (``per_batch=True``); certification
    and denoiser training need a draw per image and refuse it."""

    per_batch: bool


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The members ``protocol`` declares, its bases' included (attributes and methods)."""
    names: dict[str, None] = {}
    for base in reversed(protocol.__mro__):
        if base is not Protocol and getattr(base, "_is_protocol", False):
            declared = (*base.__dict__.get("__annotations__", {}), *vars(base))
            names.update((name, None) for name in declared if not name.startswith("_") or name == "__call__")
    return tuple(names)


def implements(cls: type, name: str) -> bool:
    """Whether ``cls`` defines ``name`` (a class attribute, a method or a dataclass field), other than
    by a placeholder marked ``abstractmethod`` (the defaults of [`ThreatModel`][smoothcert.noises.base.ThreatModel])."""
    if name in getattr(cls, "__dataclass_fields__", {}):
        return True
    for base in cls.__mro__[:-1]:  # not object: every class has object's __init__, nothing of a noise
        if name in vars(base):
            return not getattr(vars(base)[name], "__isabstractmethod__", False)
    return False


CAPABILITIES: tuple[tuple[Callable[[Any], bool], type, str], ...] = (
    (lambda cls: True, Noise, "is a noise"),
    (lambda cls: cls.classifier == "smoothed" or "fixed" in cls.samplings, SampledNoise,
     "is certified by sampling (classifier 'smoothed' or 'fixed' in samplings)"),
    (lambda cls: "adaptive" in cls.samplings, AdaptiveNoise, "offers adaptive sampling ('adaptive' in samplings)"),
    (lambda cls: cls.classifier == "deterministic", DeterministicNoise,
     "is certified by a deterministic vote (classifier 'deterministic')"),
    (lambda cls: cls.masks, MaskNoise, "draws keep masks (masks = True)"),
)
"""(whether a noise class advertises it, the protocol it then implements, what it advertises)."""


def capability_problem(cls: type, kind: str) -> str | None:
    """One line saying what the noise class ``cls`` (registered as ``kind``) advertises without
    implementing it, or None when it implements every protocol it advertises."""
    for advertises, protocol, claim in CAPABILITIES:
        if not advertises(cls):
            continue
        missing = [name for name in protocol_members(protocol) if not implements(cls, name)]
        if missing:
            return (f"noise {kind!r} ({cls.__name__}) {claim} but does not implement {', '.join(missing)} "
                    f"({protocol.__name__}): implement {'them' if len(missing) > 1 else 'it'} or do not advertise it")
        if protocol is SampledNoise and not cls.certificates:
            return (f"noise {kind!r} ({cls.__name__}) {claim} but names no certificates: list them in "
                    "certificates (the first is the default)")
    return None
