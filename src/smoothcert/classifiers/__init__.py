"""Classifiers behind two protocols: [`Classifier`][smoothcert.classifiers.base.Classifier], what every
kind has, and [`VotingClassifier`][smoothcert.classifiers.base.VotingClassifier], what the kinds that
certify by a vote add (all but `Undefended`).

- [`SmoothedClassifier`][SmoothedClassifier]: the smoothed classifier of a sampled noise (Cohen et al. 2019;
  Levine & Feizi 2020), with fixed or adaptive sampling;
- [`DeterministicClassifier`][DeterministicClassifier]: the exact vote over every ablation set of a deterministic
  noise (column/block smoothing, feature partition);
- [`DenoisedClassifier`][DenoisedClassifier]: the smoothed classifier of a denoiser in front of a frozen model;
- [`Undefended`][Undefended]: a model trained without noise, which attacks query directly.

[`load_classifier`][load_classifier] is the one place that picks the kind for a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..noises import noise_from_config
from .base import Certificate, Classifier, VotingClassifier, check_image
from .denoised import DenoisedClassifier, smoothed_denoised
from .deterministic import VOTES, DeterministicClassifier
from .smoothed import SAMPLINGS, Sampling, SmoothedClassifier, as_sampling
from .undefended import Undefended

KINDS: dict[str, type] = {"smoothed": SmoothedClassifier, "deterministic": DeterministicClassifier,
                          "model": Undefended}
"""The classifier of each noise's ``classifier`` kind."""

SPEED = ("batch_size", "device", "compile", "channels_last", "amp")
"""What every kind takes: where and how fast its base model runs (`base.prepare_base`)."""

OPTIONS: dict[type, tuple[str, ...]] = {
    SmoothedClassifier: ("denoiser", "certificate", *SPEED),
    DenoisedClassifier: ("denoiser", "certificate", *SPEED),
    DeterministicClassifier: ("vote", "theta", "patch", *SPEED),
    Undefended: ("denoiser", *SPEED),
}
"""The keyword arguments each kind takes from [`load_classifier`][load_classifier] (a ``denoiser`` turns a
smoothed or undefended checkpoint into a [`DenoisedClassifier`][DenoisedClassifier])."""


def load_classifier(checkpoint: str | Path, denoiser: str | Path | None = None, **options: Any) -> Classifier:
    """The classifier of a ``smoothcert train`` checkpoint, of the kind its noise names (with a
    ``denoiser`` checkpoint: the denoised classifier of the two).

    ``options`` are the classifier's keyword arguments (``certificate``, ``batch_size``,
    ``device``, ``compile``, ``channels_last``, ``amp``; ``vote``, ``theta``, ``patch`` for
    deterministic noises); ``None`` values mean the default. An option the kind does not take is
    a ValueError naming its flag, never ignored.

    Args:
        checkpoint: The folder ``smoothcert train`` wrote (its ``--out``).
        denoiser: A ``smoothcert denoise`` checkpoint trained for this classifier, or None.
        **options: The classifier's keyword arguments, as above.

    Returns:
        A [`SmoothedClassifier`][smoothcert.classifiers.smoothed.SmoothedClassifier],
        [`DeterministicClassifier`][smoothcert.classifiers.deterministic.DeterministicClassifier],
        [`DenoisedClassifier`][smoothcert.classifiers.denoised.DenoisedClassifier] or
        [`Undefended`][smoothcert.classifiers.undefended.Undefended].

    Raises:
        ValueError: For an option the checkpoint's kind does not take.
    """
    noise = noise_from_config(read_config(checkpoint)["noise"])
    given = {key: value for key, value in {**options, "denoiser": denoiser}.items() if value is not None}
    kind = KINDS[noise.classifier]
    if "denoiser" in given and "denoiser" in OPTIONS[kind]:
        kind = DenoisedClassifier
    foreign = sorted(set(given) - set(OPTIONS[kind]))
    if foreign:
        flags = " and ".join("--" + name.replace("_", "-") for name in foreign)
        raise ValueError(f"a checkpoint trained with --noise {noise.kind} {kind.certified}: drop {flags}")
    return kind.from_checkpoint(checkpoint, **given)


__all__ = ["KINDS", "SAMPLINGS", "VOTES", "Certificate", "Classifier", "DenoisedClassifier",
           "DeterministicClassifier", "Sampling", "SmoothedClassifier", "Undefended", "VotingClassifier", "as_sampling",
           "check_image", "load_classifier", "smoothed_denoised"]
