"""Empirical L0 attacks: upper bounds that check a certificate from above.

An attack is a small object holding its parameters (as in Foolbox 3), called as
``attack(oracle, x, label, key=(seed, idx))`` on one image. The *oracle* is what the adversary
queries:

- ``ModelOracle``: an undefended classifier (scores = logits, decision = argmax);
- ``SmoothedOracle``: the PREDICT of a ``SmoothedClassifier`` on ``n`` noise samples per query.
  Following Levine & Feizi (2020, Table 2) an input is adversarial when the smoothed classifier
  misclassifies it *or abstains*. The noise of a query can be a fixed set of ablations reused by
  every query of the image (``fixed=True``: a deterministic target, so the attack does not chase
  sampling noise), and an adversarial example is accepted only after ``confirm`` re-checks it with
  fresh samples.

Attacks change whole pixels (all channels), the unit of the L0 certificate, and count every
oracle query. ``Pointwise`` is decision-based (Schott et al. 2019): a salt-and-pepper start of
growing density, then passes that reset perturbed pixels while the input stays adversarial, best
of ``restarts``. ``SparseRS`` is score-based random search with a pixel budget (Croce et al. 2022)
on the margin of the oracle's scores (logits, or the vote counts of the smoothed classifier).
``PatchAttack`` is random search over the position and content of one m x m patch, the threat
model of column/block smoothing. ``DeterministicOracle`` lets every attack query the exact vote of
a ``DeterministicClassifier`` (column/block smoothing, partition voting).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint, noise_from_config
from ..deterministic import DeterministicClassifier
from ..noises import Bands, Clean, Partition
from ..smooth import Sampling, SmoothedClassifier
from .base import AttackResult, l0_pixels
from .oracles import DeterministicOracle, ModelOracle, Oracle, SmoothedOracle
from .patch import PatchAttack
from .pointwise import Pointwise
from .sparse_rs import SparseRS

ATTACKS = ("pointwise", "sparse-rs", "patch")

__all__ = ["ATTACKS", "AttackResult", "DeterministicOracle", "ModelOracle", "Oracle", "PatchAttack", "Pointwise",
           "SmoothedOracle", "SparseRS", "l0_pixels", "make_attack", "oracle_factory"]


def oracle_factory(
    checkpoint: str | Path, *, n: int = 1000, alpha: float = 0.05, fixed: bool = True, n_check: int | None = None,
    seed: int = 0, batch_size: int = 1000, device: str | torch.device = "auto", vote: str | None = None,
    theta: float = 0.2, sampling: Sampling = "fixed",
) -> tuple[Callable[[int], Oracle], dict[str, Any]]:
    """``(make_oracle, config)`` for a ``smoothcert train`` checkpoint: ``make_oracle(idx)`` is a fresh
    oracle for image ``idx``: the model itself when it was trained without noise (undefended), the
    exact vote (``vote``, ``theta``) of a columns/blocks/partition model, else its smoothed
    classifier queried through PREDICT (``sampling``: fixed or sequential) with noise streams keyed
    by (seed, idx)."""
    model, config = load_checkpoint(checkpoint)
    noise = noise_from_config(config["noise"])
    num_classes = config["num_classes"]
    if isinstance(noise, Clean):
        return (lambda idx: ModelOracle(model, num_classes, device=device, batch_size=batch_size)), config
    if isinstance(noise, (Bands, Partition)):
        classifier = DeterministicClassifier(model, noise, num_classes, tuple(config["image_size"]), vote=vote,
                                             theta=theta, batch_size=batch_size, device=device)
        return (lambda idx: DeterministicOracle(classifier)), config
    smoothed = SmoothedClassifier(model, noise, num_classes, batch_size=batch_size, device=device)
    return (lambda idx: SmoothedOracle(smoothed, n, alpha, fixed=fixed, key=(seed, idx), n_check=n_check,
                                       sampling=sampling)), config


def make_attack(name: str, **params: float | int | None) -> Pointwise | SparseRS | PatchAttack:
    """The attack named on the command line (``--attack``) with its parameters."""
    if name == "pointwise":
        return Pointwise(**params)
    if name == "sparse-rs":
        return SparseRS(**params)
    if name == "patch":
        return PatchAttack(**params)
    raise ValueError(f"unknown attack {name!r}; choose one of {ATTACKS}")
