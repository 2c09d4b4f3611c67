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

from typing import Any

from .base import AttackResult, l0_pixels
from .oracles import DeterministicOracle, ModelOracle, Oracle, SmoothedOracle
from .patch import PatchAttack
from .pointwise import Pointwise
from .registry import (
    ATTACK_CLASSES,
    ATTACK_FLAGS,
    ATTACKS,
    PLUGIN_GROUP,
    attack_class,
    attack_flags,
    attack_names,
    make_attack,
    register_attack,
)
from .sparse_rs import SparseRS

__all__ = ["ATTACKS", "ATTACK_CLASSES", "ATTACK_FLAGS", "PLUGIN_GROUP", "AttackResult", "DeterministicOracle",
           "ModelOracle", "Oracle", "PatchAttack", "Pointwise", "SmoothedOracle", "SparseRS", "attack_class",
           "attack_flags", "attack_names", "l0_pixels", "make_attack", "oracle_factory", "register_attack"]


def __getattr__(name: str) -> Any:
    """``oracle_factory`` and ``ORACLES``, which moved to [`smoothcert.runner.jobs`][smoothcert.runner.jobs]
    (imported on first use: the jobs import the attacks)."""
    if name in ("ORACLES", "oracle_factory"):
        from ..runner import jobs
        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
