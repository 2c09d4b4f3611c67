"""What every L0 attack shares: its result, the pixel-wise L0 distance, query counting and the
confirmation of candidates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..classifiers.base import check_image
from .oracles import Oracle


@dataclass(frozen=True)
class AttackResult:
    """One image's attack: the adversarial ``x_adv`` (the clean image when ``success`` is False),
    its L0 distance in pixels (``inf`` on failure), the oracle queries spent (re-checks
    included) and the oracle's confirmed decision on ``x_adv`` (``ABSTAIN`` = -1)."""

    x_adv: torch.Tensor
    l0: float
    queries: int
    success: bool
    decision: int


def l0_pixels(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of pixels (all channels together) where images ``a`` and ``b`` (C, H, W) differ."""
    return int((a != b).any(0).sum())


def label_margin(scores: torch.Tensor, label: int) -> torch.Tensor:
    """Score of ``label`` minus the best other score (negative: another class wins)."""
    others = scores.clone()
    others[:, label] = -math.inf
    return scores[:, label] - others.max(1).values


def queried(oracle: Oracle) -> int:
    return oracle.queries + oracle.checks


def smallest(x: torch.Tensor, label: int, confirmed: list[tuple[torch.Tensor, int]], queries: int) -> AttackResult:
    """The result for the smallest of the ``confirmed`` (image, decision) pairs, or a failure."""
    if not confirmed:
        return AttackResult(x.clone(), math.inf, queries, False, label)
    adv, decision = min(confirmed, key=lambda pair: l0_pixels(pair[0], x))
    return AttackResult(adv, float(l0_pixels(adv, x)), queries, True, decision)


def best_confirmed(oracle: Oracle, x: torch.Tensor, label: int, found: list[torch.Tensor], spent: int) -> AttackResult:
    """The smallest of the ``found`` adversarial candidates that survives ``confirm``."""
    for adv in sorted(found, key=lambda a: l0_pixels(a, x)):
        ok, decision = oracle.confirm(adv, label)
        if ok:
            return smallest(x, label, [(adv, decision)], queried(oracle) - spent)
    return smallest(x, label, [], queried(oracle) - spent)


MAX_QUERIES_FLAG: dict[str, Any] = {
    "type": int, "help": "query budget per restart (pointwise, default 5000), per pixel budget tried (sparse-rs, "
    "default 1000) or per image (patch, default 1000)"}
"""``--max-queries``, which every built-in attack reads (a flag several attacks read is declared identically)."""


class L0Attack:
    """What every attack does around its search: check the image, count the queries it spends, and
    return at L0 = 0 when the oracle already gets the clean image wrong (confirmed).

    Subclasses are frozen dataclasses of their parameters with a ``name`` (the ``--attack`` name)
    and ``flags``: each command-line flag they read (argparse dest) -> its argparse settings, with
    ``"attribute"`` naming the parameter it sets when that is not the dest (see
    [`smoothcert.attacks.registry`][smoothcert.attacks.registry]); they implement ``attack``.
    """

    name: ClassVar[str]
    flags: ClassVar[dict[str, dict[str, Any]]] = {}

    def __call__(self, oracle: Oracle, x: torch.Tensor, label: int, *, key: tuple[int, ...] = (0,)) -> AttackResult:
        x = check_image(x).cpu()
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < oracle.num_classes:
            raise ValueError(f"label must be a class index in 0..{oracle.num_classes - 1} (the oracle's "
                             f"num_classes={oracle.num_classes}), got {label!r}")
        spent = queried(oracle)
        if int(oracle.decide(oracle.scores(x[None]))[0]) != label:
            ok, decision = oracle.confirm(x, label)
            if ok:
                return smallest(x, label, [(x.clone(), decision)], queried(oracle) - spent)
        return self.attack(oracle, x, label, key, spent)

    def attack(self, oracle: Oracle, x: torch.Tensor, label: int, key: tuple[int, ...], spent: int) -> AttackResult:
        raise NotImplementedError

    def check_image_size(self, image_size: tuple[int, int]) -> None:
        """ValueError if the attack's parameters do not fit images of ``image_size`` (H, W)."""
