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

from ..checkpoint import read_config
from ..classifiers import Sampling, SmoothedClassifier, load_classifier
from ..classifiers.checks import check_sampling
from ..errors import ArgumentError
from ..runtime.speed import Switch
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


ORACLES: dict[str, Callable[..., Oracle]] = {
    "model": lambda classifier, key, **query: ModelOracle(classifier.base, classifier.num_classes,
                                                          device=classifier.device, batch_size=classifier.batch_size),
    "deterministic": lambda classifier, key, **query: DeterministicOracle(classifier),
    "smoothed": lambda classifier, key, **query: SmoothedOracle(classifier, key=key, **query),
}
"""How an attack queries each classifier kind: the model itself, the exact vote, or PREDICT."""


def oracle_factory(
    checkpoint: str | Path, *, n: int | None = None, alpha: float | None = None, fixed: bool = True,
    n_check: int | None = None, seed: int = 0, batch_size: int | None = None, device: str | torch.device = "auto",
    vote: str | None = None, theta: float | None = None, sampling: Sampling | None = None,
    compile: Switch = "auto", channels_last: Switch = "auto",
) -> tuple[Callable[[int], Oracle], dict[str, Any]]:
    """``(make_oracle, config)`` for a ``smoothcert train`` checkpoint: ``make_oracle(idx)`` is a fresh
    oracle for image ``idx``: the model itself when it was trained without noise (undefended), the
    exact vote (``vote``, ``theta``) of a columns/blocks/partition model, else its smoothed
    classifier queried through PREDICT (``sampling``: fixed or sequential) with noise streams keyed
    by (seed, idx). ``n`` (default 1000), ``alpha`` (0.05) and ``sampling`` (fixed) are PREDICT's:
    checked by `check_sampling` for a smoothed classifier, refused when given for the others.
    All the oracles share one base classifier, accelerated by ``compile`` and ``channels_last``
    ([`prepare_base`][smoothcert.classifiers.base.prepare_base]: ``"auto"`` turns each on once the queries
    have done the evaluations that repay it, for models measured to gain; ``batch_size`` None is the
    fastest measured).

    Args:
        checkpoint: The ``smoothcert train`` checkpoint to attack.
        n: PREDICT's noise samples per query (at most, adaptive); None: 1000.
        alpha: PREDICT's level; None: 0.05.
        fixed: Whether every query of an image reuses one set of noise draws.
        n_check: Fresh samples that confirm an adversarial example; None: ``n``.
        seed: The seed of the noise streams (seed, idx).
        batch_size: Most copies per forward pass; None: the fastest measured for the model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        vote: The exact vote of a deterministic model: ``"argmax"`` or ``"threshold"``.
        theta: The softmax threshold of the ``threshold`` vote.
        sampling: PREDICT's sampling: ``"fixed"``, ``"adaptive"`` or an
            [`Adaptive`][smoothcert.certificates.sequential.Adaptive]; None: fixed.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.

    Returns:
        ``(make_oracle, config)``: the oracle of image ``idx``, and the checkpoint's config.
    """
    config = read_config(checkpoint)
    classifier = load_classifier(checkpoint, batch_size=batch_size, device=device, vote=vote, theta=theta,
                                 compile=compile, channels_last=channels_last)
    if isinstance(classifier, SmoothedClassifier):
        _, n, alpha, sampling = check_sampling(classifier, "predict", tuple(config["image_size"]),
                                               n=1000 if n is None else n, alpha=alpha,
                                               sampling="fixed" if sampling is None else sampling)
    else:
        what = "the model itself" if classifier.kind == "model" else "the exact vote"
        for name, value in (("n", n), ("alpha", alpha), ("sampling", sampling)):
            if value is not None:
                raise ArgumentError(name, value, "{name} {value}: " + f"attacks query {what} of a checkpoint "
                                    f"trained with --noise {classifier.noise.kind}, which samples nothing: drop {{name}}")
    query = {"n": n, "alpha": alpha, "fixed": fixed, "n_check": n_check, "sampling": sampling}
    return (lambda idx: ORACLES[classifier.kind](classifier, (seed, idx), **query)), config
