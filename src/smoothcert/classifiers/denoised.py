"""Denoised smoothing (Salman et al., NeurIPS 2020): the smoothed classifier of a denoiser D in
front of a frozen classifier f, certified as any smoothed classifier of D∘f. Denoisers are trained
by [`smoothcert.denoisers`][smoothcert.denoisers] (MSE, stability, DE-CROP)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

from ..checkpoint import load_checkpoint
from ..decrop import state_hash
from ..denoisers import denoised_classifier, load_denoiser
from ..noises import Noise, noise_from_config
from .smoothed import SmoothedClassifier


class DenoisedClassifier(SmoothedClassifier):
    """A [`SmoothedClassifier`][SmoothedClassifier] whose base is ``Sequential(denoiser, classifier)``.

    Args:
        base: ``Sequential(denoiser, classifier)``
            ([`denoised_classifier`][smoothcert.denoisers.denoised_classifier]).
        noise: The noise the denoiser was trained for.
        num_classes: How many classes the classifier's logits have.
        certificate: The certificate's name; None: the noise's first.
        batch_size: Most noisy copies per forward pass; None: the fastest measured for the model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Mixed precision, ``"bf16"`` or ``"fp16"`` (meant for CUDA); None: the model's own dtype.
        bounds: (lower, upper) of the input space images are given in.
        preprocessing: What maps a noisy copy to the denoiser's input, as for
            [`SmoothedClassifier`][SmoothedClassifier].
    """

    kind: ClassVar[str] = "denoised"
    certified: ClassVar[str] = "is certified by sampling through the denoiser"

    @classmethod
    def from_checkpoint(cls, path: str | Path, denoiser: str | Path | None = None, **kwargs: Any) -> DenoisedClassifier:
        """The denoised classifier of a classifier checkpoint ``path`` and a ``denoiser`` checkpoint.

        Args:
            path: The classifier's ``smoothcert train`` checkpoint.
            denoiser: The ``smoothcert denoise`` checkpoint (required).
            **kwargs: As for [`smoothed_denoised`][smoothed_denoised].
        """
        if denoiser is None:
            raise ValueError("a denoised classifier needs a denoiser checkpoint (--denoiser)")
        return smoothed_denoised(path, denoiser, **kwargs)


def smoothed_denoised(
    classifier_checkpoint: str | Path, denoiser_checkpoint: str | Path, *, noise: Noise | None = None,
    strict: bool = True, **kwargs: Any,
) -> DenoisedClassifier:
    """The smoothed classifier of D∘f from a classifier checkpoint and a denoiser checkpoint.

    Smooths with the noise the denoiser was trained for. A different classifier (weight hash) or a
    different ``noise`` than the denoiser's raises ValueError with ``strict``, else warns.
    ``kwargs`` go to ``SmoothedClassifier`` (certificate, batch_size, device).

    Args:
        classifier_checkpoint: The classifier's ``smoothcert train`` checkpoint.
        denoiser_checkpoint: The ``smoothcert denoise`` checkpoint trained for it.
        noise: The noise to smooth with; None: the denoiser's.
        strict: Whether a mismatch is a ValueError (else a warning).
        **kwargs: The [`SmoothedClassifier`][SmoothedClassifier]'s keyword arguments.

    Raises:
        ValueError: With ``strict``, for a classifier or noise other than the denoiser's.
    """
    classifier, cls_config = load_checkpoint(classifier_checkpoint)
    denoiser, config = load_denoiser(denoiser_checkpoint)
    trained_noise = noise_from_config(config["noise"])
    problems = []
    if state_hash(classifier) != config["classifier"].get("sha256"):
        problems.append(f"the denoiser was trained for the classifier at {config['classifier'].get('path')}, "
                        f"whose weights differ from {classifier_checkpoint}")
    if noise is not None and noise.to_config() != trained_noise.to_config():
        problems.append(f"the denoiser was trained for noise {trained_noise.to_config()}, not {noise.to_config()}")
    for problem in problems:
        if strict:
            raise ValueError(problem)
        warnings.warn(problem, stacklevel=2)
    return DenoisedClassifier(denoised_classifier(denoiser, classifier), trained_noise if noise is None else noise,
                              cls_config["num_classes"], **kwargs)
